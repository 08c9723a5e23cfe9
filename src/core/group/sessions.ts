// Session management (the proxy path): routing a request to a process, the queue when none can
// take it, and what the end of a session changes.

import { CapacityError } from '../../errors';
import type { HoldfastError } from '../../errors';
import type { AppProcess, RequestInfo } from '../app-process';
import type { AcquireOptions, Session } from '../leases';
import type { ProcessHandle } from '../process-handle';
import { pickProcess } from '../routing';
import type { RoutableProcess } from '../routing';
import type { GroupContext } from './context';
import { abortError } from './wait-queue';

export interface SessionHooks {
  restarting(): boolean;
  /** A session of the process ended (max_requests is decided per request). */
  closed(p: AppProcess): void;
  /** The session's request ran past max_request_time: the process is stopped and replaced. */
  stuck(p: AppProcess): void;
}

export class Sessions {
  constructor(
    private readonly ctx: GroupContext,
    private readonly hooks: SessionHooks,
  ) {}

  /**
   * A session at once when a process can take one and nobody waits before us; undefined when the
   * request would have to queue (or be refused): then acquire() decides. No promise, no timer.
   */
  tryAcquire(avoidPid: number | undefined, request: RequestInfo | undefined): Session | undefined {
    if (this.ctx.closing() || this.ctx.queue.length > 0) return undefined;
    const p = this.route(avoidPid);
    if (!p) return undefined;
    const session = this.open(p, request);
    this.ctx.reconsider();
    return session;
  }

  acquire(options: AcquireOptions): Promise<Session> {
    if (this.ctx.closing()) return Promise.reject(new CapacityError('HF_SHUTTING_DOWN', 'holdfast is stopping'));
    if (options.signal?.aborted) return Promise.reject(abortError());
    const session = this.tryAcquire(options.avoidPid, options.request);
    if (session) return Promise.resolve(session);
    // Nothing can take it now: fail fast when nothing will be able to either.
    const hopeless = this.hopelessError();
    if (hopeless) return Promise.reject(hopeless);
    const max = this.ctx.options.maxRequestQueueSize;
    if (max > 0 && this.ctx.queue.length >= max) return Promise.reject(new CapacityError('HF_QUEUE_FULL', `the request queue is full (${max} waiting)`));
    return new Promise<Session>((resolve, reject) => {
      this.ctx.queue.enqueue({ avoidPid: options.avoidPid, request: options.request, resolve, reject }, options.signal);
      this.ctx.reconsider();
    });
  }

  /** Hands queued requests to processes that can take them, oldest request first. */
  dispatch(): void {
    this.ctx.queue.dispatch((w) => {
      const p = this.route(w.avoidPid);
      return p ? this.open(p, w.request) : undefined;
    });
  }

  /** The error a new request gets at once because no process runs and none is on its way. */
  private hopelessError(): HoldfastError | undefined {
    const { processes } = this.ctx;
    if (processes.enabled().length > 0 || processes.spawningCount() > 0 || this.hooks.restarting() || processes.anyDraining()) return undefined;
    return this.ctx.resistance.hopelessError();
  }

  route(avoidPid: number | undefined): AppProcess | undefined {
    return this.pick(() => true, (p) => p.requests.open, avoidPid);
  }

  /** The limits a process takes new sessions under (max_requests is off while resisting). */
  limits(): { concurrency: number; maxRequests: number } {
    const o = this.ctx.options;
    return { concurrency: o.concurrency, maxRequests: this.ctx.resistance.mayRecycle() ? o.maxRequests : 0 };
  }

  /**
   * The least busy of the enabled processes that `admits`, by pickProcess: `count` is what "fewest"
   * compares (sessions for a request, connections for a connection). A broken generation is never preferred.
   */
  pick(admits: (p: AppProcess) => boolean, count: (p: AppProcess) => number, avoidPid: number | undefined): AppProcess | undefined {
    const now = this.ctx.clock.now();
    const limits = this.limits();
    const views: Array<RoutableProcess & { process: AppProcess }> = [];
    for (const p of this.ctx.processes.all()) {
      if (p.state !== 'enabled' || !admits(p)) continue;
      views.push({
        process: p,
        pid: p.pid,
        generation: this.ctx.resistance.isBroken(p.generation) ? 0 : p.generation,
        sessions: count(p),
        lastUsedAt: p.lastUsedAt,
        available: p.takesSession(now, limits),
        busy: p.isBusy(this.ctx.options),
      });
    }
    return pickProcess(views, avoidPid)?.process;
  }

  /**
   * Whether the process had started on the request when it died: its own report (the Node hook's);
   * without one, "no" when its death is blamed on its version (a deployment error, or a death within
   * probation_time: the version, not the request, is the likelier cause), so the request may go
   * elsewhere; else unknown.
   */
  private startedBeforeExit(p: AppProcess, handle: ProcessHandle, requestId: string, timeoutMs: number): Promise<boolean | undefined> {
    return new Promise((resolve) => {
      const timer = this.ctx.clock.setTimeout(() => resolve(undefined), timeoutMs);
      void handle.exited
        .then(() => handle.startedAtExit?.())
        .then((started) => {
          timer.cancel();
          if (started !== undefined) resolve(started.has(requestId));
          else resolve(p.blamedOnVersion ? false : undefined);
        });
    });
  }

  private open(p: AppProcess, request: RequestInfo | undefined): Session {
    const clock = this.ctx.clock;
    p.openSession(clock.now(), request);
    let open = true;
    const handle = p.handle!;
    return {
      pid: p.pid,
      generation: p.generation,
      target: p.target,
      startedBeforeExit: (requestId: string, timeoutMs: number) => this.startedBeforeExit(p, handle, requestId, timeoutMs),
      close: (outcome) => {
        if (!open) return;
        open = false;
        // Draining first: the slot this session frees must not go to a new request.
        if (outcome?.stuck === true) this.hooks.stuck(p);
        p.closeSession(clock.now(), request, outcome?.unreachable === true);
        this.ctx.processes.released(p);
        this.hooks.closed(p);
        this.ctx.reconsider();
      },
    };
  }
}
