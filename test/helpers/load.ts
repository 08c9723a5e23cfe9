// A load generator for tests: N keep-alive connections sending requests back to back for a while,
// counting every status and every failure. Real sockets, real HTTP, bounded in time.
import http from 'node:http';

export interface LoadResult {
  requests: number;
  ok: number;
  failed: number;
  statuses: Record<number, number>;
  errors: string[];
  bodies: Map<string, number>;
}

export interface LoadOptions {
  url: string;
  connections: number;
  durationMs: number;
  method?: string;
  /** Counts each distinct body (trimmed, first 80 chars) — which version answered. */
  countBodies?: boolean;
  /** Stop early when this signal aborts. */
  signal?: AbortSignal;
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections });
  const result: LoadResult = { requests: 0, ok: 0, failed: 0, statuses: {}, errors: [], bodies: new Map() };
  const deadline = Date.now() + o.durationMs;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.request(o.url, { method: o.method ?? 'GET', agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          result.requests++;
          result.statuses[res.statusCode!] = (result.statuses[res.statusCode!] ?? 0) + 1;
          if (res.statusCode! >= 200 && res.statusCode! < 400) result.ok++;
          else {
            result.failed++;
            if (result.errors.length < 20) result.errors.push(`${res.statusCode}: ${body.slice(0, 200)}`);
          }
          if (o.countBodies) {
            const key = body.trim().replace(/pid \d+/, 'pid N').slice(0, 80);
            result.bodies.set(key, (result.bodies.get(key) ?? 0) + 1);
          }
          resolve();
        });
        res.on('error', (e) => {
          result.requests++;
          result.failed++;
          if (result.errors.length < 20) result.errors.push(`response error: ${e.message}`);
          resolve();
        });
      });
      req.on('error', (e) => {
        result.requests++;
        result.failed++;
        if (result.errors.length < 20) result.errors.push(`request error: ${e.message}`);
        resolve();
      });
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.end();
    });
  const worker = async () => {
    while (Date.now() < deadline && !o.signal?.aborted) await one();
  };
  await Promise.all(Array.from({ length: o.connections }, worker));
  agent.destroy();
  return result;
}
