// health_check_path: a GET from holdfast itself to a new process before any visitor reaches it.
// Any answer but 2xx within the timeout, or no answer, is a spawn error (HF_HEALTH_CHECK).

import http from 'node:http';
import type { UpstreamTarget } from '../core/process-handle';

export interface HealthCheck {
  path: string;
  timeoutMs: number;
}

/** Resolves undefined when the process answered 2xx in time, else a sentence saying what happened. */
export function checkHealth(target: UpstreamTarget, check: HealthCheck, signal: AbortSignal): Promise<string | undefined> {
  return new Promise((resolve) => {
    const where = target.kind === 'unix' ? { socketPath: target.socketPath } : { host: target.host, port: target.port };
    let settled = false;
    const done = (verdict: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      req.destroy();
      resolve(verdict);
    };
    const req = http.request({ ...where, method: 'GET', path: check.path, agent: false, headers: { 'user-agent': 'holdfast-health-check', connection: 'close' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      done(status >= 200 && status < 300 ? undefined : `answered ${status} to GET ${check.path}`);
    });
    req.on('error', (err) => done(`did not answer GET ${check.path} (${(err as NodeJS.ErrnoException).code ?? err.message})`));
    const timer = setTimeout(() => done(`did not answer GET ${check.path} within ${Math.round(check.timeoutMs / 1000)} s`), check.timeoutMs);
    timer.unref();
    const onAbort = () => done('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}
