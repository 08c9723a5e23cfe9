// A spawner whose every spawn is a deferred the test settles, and whose processes die on command.
import { SpawnError } from '../../src/errors';
import type { SpawnErrorCategory } from '../../src/errors';
import type { ConnectionTaker, ExitInfo, ProcessHandle, UsageSample } from '../../src/core/process-handle';
import type { SpawnRequest, Spawner } from '../../src/core/spawner';

let nextPid = 10_000;

/** The hand-off side of a fake process: it keeps what it was given and settles it when the test says. */
export class FakeTaker implements ConnectionTaker {
  readonly held = new Map<unknown, (returned: boolean) => void>();
  drained = false;
  sheds: number[] = [];
  peak = 0;
  served = 0;
  limitListener: (() => boolean) | undefined;

  take(connection: unknown, done: (returned: boolean) => void): void {
    if (this.drained) return done(true);
    this.held.set(connection, done);
  }
  /** The process closed the connection (returned = false) or gave it back (true). */
  settle(connection: unknown, returned: boolean): void {
    const done = this.held.get(connection);
    this.held.delete(connection);
    done?.(returned);
  }
  drain(): void {
    this.drained = true;
  }
  shed(keep: number): void {
    this.sheds.push(keep);
  }
  peakRequests(): number {
    return this.peak;
  }
  servedRequests(): number {
    return this.served;
  }
  onLimit(listener: () => boolean): void {
    this.limitListener = listener;
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

/** A process that serves one request at a time (the Rack loader): busy while it says so. */
export class FakeSerialTaker extends FakeTaker {
  busy = false;
  availableListener: (() => void) | undefined;
  busyNow(): boolean {
    return this.busy;
  }
  onAvailable(listener: () => void): void {
    this.availableListener = listener;
  }
  /** It gave back its waiting connections (busy) or finished the long request (free). */
  setBusy(busy: boolean): void {
    this.busy = busy;
    if (!busy) this.availableListener?.();
  }
}

export class FakeHandle implements ProcessHandle {
  readonly pid = nextPid++;
  readonly target;
  readonly release: string;
  readonly commit = undefined;
  readonly exited: Promise<ExitInfo>;
  elu: number | undefined = undefined;
  usage: UsageSample = { rssBytes: 50 * 1024 * 1024, cpuPercent: 1 };
  /** When set, terminate() waits for the test to call die(). */
  ignoresSigterm = false;
  terminated = false;
  /** Set when the spawner's takesConnections is on: the process takes whole connections. */
  connectionTaker: FakeTaker | FakeSerialTaker | undefined;
  private resolveExit!: (e: ExitInfo) => void;
  private dead = false;

  constructor(release: string, readonly generation: number) {
    this.release = release;
    this.target = { kind: 'unix' as const, socketPath: `/fake/${this.pid}.sock` };
    this.exited = new Promise((r) => (this.resolveExit = r));
  }

  get alive(): boolean {
    return !this.dead;
  }

  eventLoopUtilization(): number | undefined {
    return this.elu;
  }

  die(exit: ExitInfo = { code: 1, signal: null }): void {
    if (this.dead) return;
    this.dead = true;
    this.resolveExit(exit);
  }

  terminate(): Promise<ExitInfo> {
    this.terminated = true;
    if (!this.ignoresSigterm) this.die({ code: null, signal: 'SIGTERM' });
    return this.exited;
  }

  sampleUsage(): Promise<UsageSample> {
    return this.dead ? Promise.reject(new Error('gone')) : Promise.resolve(this.usage);
  }

  recentOutput(): readonly string[] {
    return ['fake output line'];
  }
}

export interface PendingSpawn {
  request: SpawnRequest;
  release: string;
  succeed(): FakeHandle;
  fail(category?: SpawnErrorCategory, message?: string): SpawnError;
}

export class FakeSpawner implements Spawner {
  readonly pending: PendingSpawn[] = [];
  readonly handles: FakeHandle[] = [];
  readonly requests: SpawnRequest[] = [];
  /** What the app dir resolves to now (a deploy tool switching `current`). */
  currentRelease = '/srv/app/releases/1';
  /** Abort signals are not honoured: the spawn settles when the test says. */
  ignoreAbort = false;
  /** Settle every new spawn at once, successfully. */
  autoSucceed = false;
  /** New processes take whole connections (a FakeTaker each). */
  takesConnections = false;
  /** ...and serve them one request at a time (a FakeSerialTaker each). */
  serialTakers = false;

  describeCommand(): string {
    return 'node app.js';
  }

  spawn(request: SpawnRequest): Promise<ProcessHandle> {
    this.requests.push(request);
    const release = request.release ?? this.currentRelease;
    return new Promise<ProcessHandle>((resolve, reject) => {
      let settled = false;
      const entry: PendingSpawn = {
        request,
        release,
        succeed: () => {
          const h = new FakeHandle(release, request.generation);
          if (this.takesConnections) h.connectionTaker = this.serialTakers ? new FakeSerialTaker() : new FakeTaker();
          this.handles.push(h);
          this.remove(entry);
          if (!settled) {
            settled = true;
            resolve(h);
          }
          return h;
        },
        fail: (category = 'exited', message = 'app process exited with code 1 before it was ready') => {
          const err = new SpawnError(message, {
            category,
            errorId: 'e' + String(this.requests.length).padStart(7, '0'),
            command: 'node app.js',
            exitCode: category === 'exited' ? 1 : null,
            signal: null,
            outputTail: ['SyntaxError: Unexpected token'],
            release,
            generation: request.generation,
            at: 0,
          });
          this.remove(entry);
          if (!settled) {
            settled = true;
            reject(err);
          }
          return err;
        },
      };
      request.signal.addEventListener('abort', () => {
        if (this.ignoreAbort) return; // a spawner that finishes anyway: the pool must throw the result away
        this.remove(entry);
        if (!settled) {
          settled = true;
          const e = new Error('aborted');
          e.name = 'AbortError';
          reject(e);
        }
      }, { once: true });
      this.pending.push(entry);
      if (this.autoSucceed) entry.succeed();
    });
  }

  private remove(entry: PendingSpawn): void {
    const i = this.pending.indexOf(entry);
    if (i >= 0) this.pending.splice(i, 1);
  }

  alive(): FakeHandle[] {
    return this.handles.filter((h) => h.alive);
  }
}
