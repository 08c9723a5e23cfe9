// Smart spawning (Passenger's default for Ruby): a preloader loads the app once per generation and
// release, and each process of that generation is a fork of it, ready in milliseconds and sharing
// the loaded app's memory copy-on-write.
//
// The preloader is an ordinary launched process (its output, exit, usage and start_timeout as any
// app process's); it says it has loaded the app by listening on a control socket. holdfast connects
// once and asks for processes (`spawn <socket>` -> `ok <pid>` | `error <why>`); the preloader, their
// parent, reports each exit (`exit <pid> <code> <signal>`). A boot error is the preloader's own exit
// with the exception in its output: launch() makes the SpawnError of it, so deployment error
// resistance treats it as any other spawn error.
//
// A preloader is stopped once a newer generation has spawned and none of its processes is left, and
// when the spawner closes. Forked processes are their own process groups, registered with the
// watchdog as any app process, so nothing outlives holdfast.

import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { SpawnError, newErrorId } from '../errors';
import type { ConnectionTaker, ExitInfo, ProcessHandle, UpstreamTarget, UsageSample } from '../core/process-handle';
import { SerialHookChannel, type ChannelRelay, type RequestStatsListener } from './hook-channel';
import { LineSplitter, OutputTail } from './output-tail';
import { abortError, launch, type LaunchedProcess, type LaunchOptions, type LaunchPlan } from './spawned-process';
import { GroupTerminator } from './terminate';
import { GroupUsageSampler } from './usage';
import type { Watchdog } from './watchdog';

/** After the preloader is gone, an orphaned process's exit is noticed by polling its pid. */
const ORPHAN_POLL_MS = 500;
/** A forked process connects its stdout and stderr to holdfast within this, or keeps the preloader's. */
const OUTPUT_CONNECT_MS = 5000;
/** How long the last lines of a process that exited may still trickle in. */
const OUTPUT_FLUSH_MS = 500;

type OutputListener = (line: string, meta: { pid: number; stream: 'stdout' | 'stderr' }) => void;

/**
 * Where a forked process's stdout and stderr go: a private socket it connects to twice (first byte
 * "1" = stdout, "2" = stderr), so its lines carry its own pid and make its own output tail.
 */
class OutputSocket {
  readonly path: string;
  private readonly server: Server;
  private readonly tail = new OutputTail();
  private pid = 0;
  private readonly early: Array<[string, 'stdout' | 'stderr']> = [];
  private timer: NodeJS.Timeout;
  private listening = true;
  private readonly open = new Set<Socket>();
  private drained: (() => void) | undefined;

  constructor(socketDir: string, private readonly onOutput: OutputListener | undefined) {
    this.path = join(socketDir, `${randomBytes(4).toString('hex')}.out`);
    let accepted = 0;
    this.server = createServer((socket) => {
      if (++accepted >= 2) this.closeServer();
      this.open.add(socket);
      socket.once('close', () => {
        this.open.delete(socket);
        if (this.open.size === 0) this.drained?.();
      });
      socket.on('error', () => undefined);
      let stream: 'stdout' | 'stderr' | undefined;
      const splitter = new LineSplitter((line) => this.line(line, stream ?? 'stdout'));
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        if (stream === undefined) {
          stream = chunk.startsWith('2') ? 'stderr' : 'stdout';
          chunk = chunk.slice(1);
        }
        splitter.write(chunk);
      });
      socket.once('close', () => splitter.end());
      socket.unref();
    });
    this.server.on('error', () => undefined);
    this.server.listen(this.path);
    this.server.unref();
    this.timer = setTimeout(() => this.closeServer(), OUTPUT_CONNECT_MS);
    this.timer.unref();
  }

  /** The pid is known once the fork is answered; lines before that wait for it. */
  attach(pid: number): void {
    this.pid = pid;
    for (const [line, stream] of this.early.splice(0)) this.onOutput?.(line, { pid, stream });
  }

  lines(): readonly string[] {
    return this.tail.toArray();
  }

  closeServer(): void {
    if (!this.listening) return;
    this.listening = false;
    clearTimeout(this.timer);
    this.server.close();
    removeFile(this.path);
  }

  /** Resolves once the process's output connections are closed (its last lines are in), or after waitMs. */
  flushed(waitMs: number): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      timer.unref();
      this.drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private line(line: string, stream: 'stdout' | 'stderr'): void {
    this.tail.push(line);
    if (this.pid === 0) this.early.push([line, stream]);
    else this.onOutput?.(line, { pid: this.pid, stream });
  }
}

export interface PreloaderInfo {
  pid: number;
  generation: number;
  release: string;
  /** Processes it forked that still run. */
  processes: number;
}

interface PendingFork {
  resolve(line: string): void;
}

/** One process forked by a preloader. */
class ForkedProcess implements ProcessHandle {
  readonly target: UpstreamTarget;
  readonly exited: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;
  private resolveExited!: (info: ExitInfo) => void;
  private readonly terminator: GroupTerminator;
  private readonly sampler: GroupUsageSampler;
  private orphanTimer: NodeJS.Timeout | undefined;
  /** The hand-off path: visitor connections go to it through the preloader's channel. */
  private readonly channel: SerialHookChannel | undefined;

  constructor(
    readonly pid: number,
    readonly loadedBy: number,
    socketPath: string,
    readonly release: string,
    readonly commit: string | undefined,
    private readonly watchdog: Watchdog,
    private readonly output: OutputSocket,
    private readonly relay: ChannelRelay | undefined,
    onStats: RequestStatsListener | undefined,
  ) {
    this.target = { kind: 'unix', socketPath };
    if (relay) {
      // It says no 'ready' of its own: the fork's answer is its readiness (it listens already).
      this.channel = new SerialHookChannel(relay.endpointFor(pid), () => undefined, onStats, true);
      this.channel.markIdle();
    }
    output.attach(pid);
    watchdog.register(pid, [socketPath]);
    this.terminator = new GroupTerminator(pid, () => this.exitInfo !== undefined);
    this.sampler = new GroupUsageSampler(pid);
    this.exited = new Promise<ExitInfo>((resolve) => (this.resolveExited = resolve));
  }

  /** Told by the preloader (or noticed by polling once it is gone). */
  markExited(info: ExitInfo): void {
    if (this.exitInfo !== undefined) return;
    this.exitInfo = info;
    if (this.orphanTimer !== undefined) clearInterval(this.orphanTimer);
    this.relay?.forget(this.pid);
    this.channel?.exited();
    this.output.closeServer();
    void Promise.all([this.terminator.sweep(), this.output.flushed(OUTPUT_FLUSH_MS)]).then(() => {
      this.watchdog.unregister(this.pid);
      removeFile(this.target.kind === 'unix' ? this.target.socketPath : '');
      this.resolveExited(info);
    });
  }

  /** The preloader is gone: nobody reports this process's exit any more, so look for it. */
  orphaned(): void {
    if (this.exitInfo !== undefined || this.orphanTimer !== undefined) return;
    this.orphanTimer = setInterval(() => {
      if (!alive(this.pid)) this.markExited({ code: null, signal: null });
    }, ORPHAN_POLL_MS);
    this.orphanTimer.unref();
  }

  eventLoopUtilization(): number | undefined {
    return this.channel?.eventLoopUtilization();
  }

  get connectionTaker(): ConnectionTaker | undefined {
    return this.channel;
  }

  /** The last lines the process wrote (stdout and stderr), oldest first. */
  recentOutput(): readonly string[] {
    return this.output.lines();
  }

  terminate(graceMs: number): Promise<ExitInfo> {
    this.terminator.begin(graceMs);
    return this.exited;
  }

  async sampleUsage(): Promise<UsageSample> {
    if (this.exitInfo !== undefined) return { rssBytes: 0, cpuPercent: 0 };
    return this.sampler.sample();
  }
}

/** A running preloader: the app loaded once, ready to fork processes. */
export class Preloader {
  private readonly pending: PendingFork[] = [];
  private readonly children = new Map<number, ForkedProcess>();
  private closed = false;
  /** Settles when the control connection is gone (the preloader exited or was stopped). */
  readonly gone: Promise<void>;

  private constructor(
    private readonly handle: LaunchedProcess,
    private readonly control: Socket,
    readonly generation: number,
    readonly release: string,
    private readonly commit: string | undefined,
    private readonly socketDir: string,
    private readonly watchdog: Watchdog,
    private readonly onIdle: (preloader: Preloader) => void,
    private readonly onOutput: OutputListener | undefined,
    private readonly onStats: RequestStatsListener | undefined,
  ) {
    const splitter = new LineSplitter((line) => this.onLine(line));
    control.setEncoding('utf8');
    control.on('data', (chunk: string) => splitter.write(chunk));
    control.on('error', () => undefined); // 'close' follows
    this.gone = new Promise((resolve) => control.once('close', () => resolve()));
    void this.gone.then(() => {
      this.closed = true;
      for (const p of this.pending.splice(0)) p.resolve('error the preloader exited');
      for (const child of this.children.values()) child.orphaned();
    });
    control.unref();
  }

  /**
   * Launches a preloader (plan: the loader in preloader mode, whose target is the control socket)
   * and connects to it. Rejects as launch() does: a SpawnError with the boot error's output.
   */
  static async start(
    plan: LaunchPlan,
    options: LaunchOptions,
    socketDir: string,
    onIdle: (preloader: Preloader) => void,
  ): Promise<Preloader> {
    const handle = await launch(plan, options);
    const socketPath = plan.target.kind === 'unix' ? plan.target.socketPath : '';
    try {
      const control = await new Promise<Socket>((resolve, reject) => {
        const socket = connect({ path: socketPath });
        socket.once('connect', () => {
          socket.write('hello\n'); // tells it from the readiness probe, which hangs up at once
          resolve(socket);
        });
        socket.once('error', reject);
      });
      return new Preloader(
        handle,
        control,
        plan.generation,
        plan.release,
        plan.commit,
        socketDir,
        options.watchdog,
        onIdle,
        options.onOutput,
        options.onRequestStats,
      );
    } catch (cause) {
      await handle.terminate(0);
      throw new SpawnError(
        `the preloader loaded the app but its control socket refused holdfast (${(cause as NodeJS.ErrnoException).code ?? cause})`,
        {
          category: 'os',
          errorId: newErrorId(),
          command: plan.description,
          exitCode: null,
          signal: null,
          outputTail: handle.recentOutput?.() ?? [],
          release: plan.release,
          generation: plan.generation,
          at: Date.now(),
        },
        { cause },
      );
    }
  }

  get pid(): number {
    return this.handle.pid;
  }

  /** Processes it forked that still run, and forks under way. */
  get processCount(): number {
    return this.children.size + this.pending.length;
  }

  get alive(): boolean {
    return !this.closed;
  }

  info(): PreloaderInfo {
    return { pid: this.pid, generation: this.generation, release: this.release, processes: this.children.size };
  }

  /** Forks one process; resolves once it listens (the preloader binds its socket before forking). */
  async fork(signal: AbortSignal): Promise<ProcessHandle> {
    if (signal.aborted) throw abortError(signal);
    if (this.closed) throw this.forkError('the preloader is no longer running');
    const socketPath = join(this.socketDir, `${randomBytes(4).toString('hex')}.sock`);
    const output = new OutputSocket(this.socketDir, this.onOutput);
    const reply = await new Promise<string>((resolve) => {
      this.pending.push({ resolve });
      this.control.write(`spawn ${socketPath} ${output.path}\n`);
    });
    const ok = /^ok (\d+)$/.exec(reply);
    if (!ok) {
      output.closeServer();
      throw this.forkError(`the preloader could not fork a process: ${reply.replace(/^error /, '')}`);
    }
    const child = new ForkedProcess(Number(ok[1]), this.pid, socketPath, this.release, this.commit, this.watchdog, output, this.handle.relay, this.onStats);
    this.children.set(child.pid, child);
    if (this.closed) child.orphaned();
    if (signal.aborted) {
      await child.terminate(0);
      throw abortError(signal);
    }
    return child;
  }

  /** Stops the preloader (its processes are stopped on their own). Idempotent; resolves once it has exited. */
  async close(): Promise<void> {
    this.control.end();
    await this.handle.terminate(1000);
  }

  private onLine(line: string): void {
    const exit = /^exit (\d+) (\S+) (\S+)$/.exec(line);
    if (exit) {
      const pid = Number(exit[1]);
      const code = exit[2] === 'nil' ? null : Number(exit[2]);
      const signal = exit[3] === 'nil' ? null : signalName(Number(exit[3]));
      const child = this.children.get(pid);
      this.children.delete(pid);
      child?.markExited({ code, signal });
      if (this.children.size === 0) this.onIdle(this);
      return;
    }
    this.pending.shift()?.resolve(line);
  }

  private forkError(message: string): SpawnError {
    return new SpawnError(message, {
      category: 'os',
      errorId: newErrorId(),
      command: `preloader ${this.pid}`,
      exitCode: null,
      signal: null,
      outputTail: this.handle.recentOutput?.() ?? [],
      release: this.release,
      generation: this.generation,
      at: Date.now(),
    });
  }
}

function signalName(signo: number): string {
  const signals = constants.signals as Record<string, number>;
  return Object.keys(signals).find((name) => signals[name] === signo) ?? `signal ${signo}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function removeFile(path: string): void {
  if (path === '') return;
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
