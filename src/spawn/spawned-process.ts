// One app process from the moment it is started: its output, its readiness, its exit, and the
// ProcessHandle core gets once it is ready. ChildSpawner decides what to run; this runs it.

import { spawn, type ChildProcess } from 'node:child_process';
import { unlinkSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { SpawnError, newErrorId, type SpawnErrorCategory } from '../errors';
import type { ConnectionTaker, ExitInfo, ProcessHandle, UpstreamTarget, UsageSample } from '../core/process-handle';
import { ChannelRelay, HookChannel, SerialHookChannel, childEndpoint, type RequestStatsListener } from './hook-channel';
import { LineSplitter, OutputTail } from './output-tail';
import { GroupTerminator, signalGroup } from './terminate';
import { GroupUsageSampler } from './usage';
import { waitUntilAccepting, waitUntilSocketAccepts } from './tcp';
import type { Watchdog } from './watchdog';

/** Written by node-hook.ts (which spells it itself) as a Node app process exits. */
const IN_PROGRESS_MARKER = 'holdfast-hook: requests in progress at exit: ';

/** Everything needed to start one process, decided by the spawner. */
export interface LaunchPlan {
  command: string;
  args: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Shown in errors: `node /srv/app/releases/3/app.js`, or the app start command. */
  description: string;
  target: UpstreamTarget;
  /**
   * 'hook': the Node hook says when the app listens (IPC on fd 3). 'tcp': poll the target's port.
   * 'socket': poll the target's Unix socket (a loader that listens once the app has loaded).
   */
  readiness: 'hook' | 'tcp' | 'socket';
  /** Run by /bin/sh -c, whose exit codes 126/127 mean "could not run the command". */
  viaShell: boolean;
  /**
   * A loader that reports a boot error on a line starting with this (the Rack loader): the rest
   * of its last such line goes into the spawn error's message, as Passenger shows the exception.
   */
  bootErrorMarker?: string;
  /**
   * The process serves handed-off connections one request at a time (the Rack loader): its channel
   * is a SerialHookChannel, and it reports no requests in progress at exit.
   */
  serialHandoff?: boolean;
  /**
   * An IPC channel without 'hook' readiness: a preloader, which relays it to the processes it forks
   * (LaunchedProcess.relay).
   */
  ipc?: boolean;
  release: string;
  commit: string | undefined;
  generation: number;
}

export interface LaunchOptions {
  startTimeoutMs: number;
  watchdog: Watchdog;
  signal: AbortSignal;
  onOutput?(line: string, meta: { pid: number; stream: 'stdout' | 'stderr' }): void;
  /** Request counts from the hand-off path, for metrics. */
  onRequestStats?: RequestStatsListener;
}

/** What launch() resolves with: a ProcessHandle, and the relay of a plan with ipc. */
export interface LaunchedProcess extends ProcessHandle {
  readonly relay: ChannelRelay | undefined;
}

/** fd of the hook's IPC channel in the app process (Node tells the app in NODE_CHANNEL_FD). */
export const CHANNEL_FD = 3;

/** How long output may still trickle in after the exit before the error is written. */
const OUTPUT_FLUSH_MS = 500;
/** A SIGKILLed process is reaped in milliseconds; this only guards against a process stuck in the kernel. */
const KILL_WAIT_MS = 5000;

export function abortError(signal: AbortSignal): Error {
  const error = new Error('the spawn was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as Error & { code: string }).code = 'ABORT_ERR';
  return error;
}

export function formatDuration(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Starts plan and resolves with its handle once it is ready; otherwise kills its process group,
 * waits until it is gone and rejects with a SpawnError (or an AbortError when options.signal fired).
 */
export async function launch(plan: LaunchPlan, options: LaunchOptions): Promise<LaunchedProcess> {
  if (options.signal.aborted) throw abortError(options.signal);
  const stdio: ('ignore' | 'pipe' | 'ipc')[] = ['ignore', 'pipe', 'pipe'];
  // Node's IPC channel (it sets NODE_CHANNEL_FD): the hook sees it close when holdfast dies, and
  // visitor connections can travel over it.
  if (plan.readiness === 'hook' || plan.ipc === true) stdio[CHANNEL_FD] = 'ipc';
  let child: ChildProcess;
  try {
    // detached: its own process group (pgid = pid), so it and everything it forks can be signalled together.
    child = spawn(plan.command, [...plan.args], { cwd: plan.cwd, env: plan.env, stdio, detached: true });
  } catch (cause) {
    throw osError(plan, cause);
  }
  if (child.pid === undefined) {
    const cause = await new Promise<unknown>((resolve) => child.once('error', resolve));
    throw osError(plan, cause);
  }
  const spawned = new SpawnedProcess(child, child.pid, plan, options);
  await spawned.becomeReady(options);
  return spawned;
}

function osError(plan: LaunchPlan, cause: unknown): SpawnError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const what =
    code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR'
      ? `${code} for ${plan.command} or its working dir ${plan.cwd}`
      : String((cause as Error | undefined)?.message ?? cause);
  return new SpawnError(
    `app process could not be started: ${what}`,
    {
      category: 'os',
      errorId: newErrorId(),
      command: plan.description,
      exitCode: null,
      signal: null,
      outputTail: [],
      release: plan.release,
      generation: plan.generation,
      at: Date.now(),
    },
    { cause },
  );
}

type Outcome = 'ready' | 'exited' | 'timeout' | 'aborted';

class SpawnedProcess implements LaunchedProcess {
  readonly target: UpstreamTarget;
  readonly release: string;
  readonly commit: string | undefined;
  readonly exited: Promise<ExitInfo>;
  /** Set once, by the 'exit' event; from then on the process group is being swept. */
  private exitInfo: ExitInfo | undefined;
  private readonly channel: HookChannel | undefined;
  readonly relay: ChannelRelay | undefined;
  private readonly tail = new OutputTail();
  private readonly outputDone: Promise<void>;
  /** The request ids the Node hook said were in progress as the process exited; undefined until it says. */
  private inProgressAtExit: Set<string> | undefined;
  private readonly terminator: GroupTerminator;
  private readonly sampler: GroupUsageSampler;
  private markReady!: () => void;
  private readonly readySignal = new Promise<void>((resolve) => (this.markReady = resolve));

  constructor(
    child: ChildProcess,
    readonly pid: number,
    private readonly plan: LaunchPlan,
    options: LaunchOptions,
  ) {
    this.target = plan.target;
    this.release = plan.release;
    this.commit = plan.commit;
    options.watchdog.register(pid, plan.target.kind === 'unix' ? [plan.target.socketPath] : []);
    this.sampler = new GroupUsageSampler(pid);
    child.on('error', () => undefined); // only kill() failures come here after a successful spawn; we never call it

    const streams = [this.pipeLines(child.stdout, 'stdout', options), this.pipeLines(child.stderr, 'stderr', options)];
    this.outputDone = Promise.all(streams).then(() => undefined);

    const Channel = plan.serialHandoff === true ? SerialHookChannel : HookChannel;
    this.channel = plan.readiness === 'hook' ? new Channel(childEndpoint(child), () => this.markReady(), options.onRequestStats) : undefined;
    this.relay = plan.ipc === true && plan.readiness !== 'hook' ? new ChannelRelay(child) : undefined;
    const channel = this.channel;

    this.terminator = new GroupTerminator(pid, () => this.exitInfo !== undefined);
    // Settles once the leader has exited and nothing of its group is left.
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        const info: ExitInfo = { code, signal };
        this.exitInfo = info;
        void this.terminator.sweep().then(() => {
          options.watchdog.unregister(pid);
          if (plan.target.kind === 'unix') removeFile(plan.target.socketPath);
          // Only now: connections still held are over, and closing the channel earlier would make the hook exit the app at once.
          channel?.exited();
          if (child.connected) child.disconnect();
          // An escaped grandchild may hold the pipes open for ever; give output a moment, then let go.
          void Promise.race([this.outputDone, delay(OUTPUT_FLUSH_MS * 2)]).then(() => {
            child.stdout?.destroy();
            child.stderr?.destroy();
          });
          resolve(info);
        });
      });
    });
  }

  eventLoopUtilization(): number | undefined {
    return this.channel?.eventLoopUtilization();
  }

  /** Only Node apps (the hook) report, not the Rack loader; the report comes on stderr, read in full shortly after the exit. */
  startedAtExit(): Promise<ReadonlySet<string> | undefined> {
    if (this.plan.readiness !== 'hook' || this.plan.serialHandoff === true) return Promise.resolve(undefined);
    return this.exited
      .then(() => Promise.race([this.outputDone, delay(OUTPUT_FLUSH_MS)]))
      .then(() => this.inProgressAtExit ?? (this.exitInfo?.signal ? undefined : new Set<string>()));
  }

  get connectionTaker(): ConnectionTaker | undefined {
    return this.channel?.takesConnections ? this.channel : undefined;
  }

  terminate(graceMs: number): Promise<ExitInfo> {
    this.terminator.begin(graceMs);
    return this.exited;
  }

  async sampleUsage(): Promise<UsageSample> {
    if (this.exitInfo !== undefined) return { rssBytes: 0, cpuPercent: 0 };
    return this.sampler.sample();
  }

  /** The last lines the process wrote (stdout and stderr), oldest first. */
  recentOutput(): readonly string[] {
    return this.tail.toArray();
  }

  async becomeReady(options: LaunchOptions): Promise<void> {
    let decided = false;
    const { signal, startTimeoutMs } = options;
    let onAbort: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    let outcome = await new Promise<Outcome>((resolve) => {
      const decide = (o: Outcome): void => {
        if (decided) return;
        decided = true;
        resolve(o);
      };
      timer = setTimeout(() => decide('timeout'), Math.max(0, startTimeoutMs));
      timer.unref();
      onAbort = () => decide('aborted');
      if (signal.aborted) decide('aborted');
      else signal.addEventListener('abort', onAbort, { once: true });
      void this.exited.then(() => decide('exited'));
      void this.readySignal.then(() => decide('ready'));
      const stop = () => decided || this.exitInfo !== undefined;
      if (this.plan.target.kind === 'tcp') {
        const { host, port } = this.plan.target;
        void waitUntilAccepting(host, port, stop).then((ok) => {
          if (ok) this.markReady();
        });
      } else if (this.plan.readiness === 'socket') {
        void waitUntilSocketAccepts(this.plan.target.socketPath, stop).then((ok) => {
          if (ok) this.markReady();
        });
      }
    });
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
    if (outcome === 'ready' && this.exitInfo !== undefined) outcome = 'exited';
    if (outcome === 'ready') {
      this.channel?.markIdle();
      return;
    }

    if (outcome !== 'exited') signalGroup(this.pid, 'SIGKILL'); // it never served anyone: no grace
    await Promise.race([this.exited, delay(KILL_WAIT_MS)]);
    await Promise.race([this.outputDone, delay(OUTPUT_FLUSH_MS)]);
    if (outcome === 'aborted') throw abortError(signal);
    throw this.spawnError(outcome === 'timeout' ? 'timeout' : 'exited', startTimeoutMs);
  }

  private spawnError(kind: 'timeout' | 'exited', startTimeoutMs: number): SpawnError {
    const info = this.exitInfo ?? { code: null, signal: null };
    let category: SpawnErrorCategory = kind;
    let message: string;
    if (kind === 'timeout') {
      message =
        this.plan.readiness === 'hook'
          ? `app process did not listen within ${formatDuration(startTimeoutMs)} (holdfast waits for its first server.listen())`
          : this.plan.readiness === 'socket'
            ? `app process did not load the app within ${formatDuration(startTimeoutMs)} (its loader listens once the app is loaded)`
            : `app process did not accept connections on port ${(this.plan.target as { port: number }).port} within ${formatDuration(startTimeoutMs)}`;
    } else if (this.plan.viaShell && (info.code === 127 || info.code === 126)) {
      // POSIX shells reserve these: 127 command not found, 126 found but not executable.
      category = 'os';
      message = `app start command could not run: /bin/sh says ${info.code === 127 ? 'a command was not found' : 'a command is not executable'} (exit code ${info.code})`;
    } else if (info.signal === 'SIGKILL') {
      message = 'app process was killed by SIGKILL before it was ready; memory may have run out (the usual cause)';
    } else if (info.signal !== null) {
      message = `app process was killed by ${info.signal} before it was ready`;
    } else {
      message = `app process exited with code ${info.code} before it was ready`;
    }
    const marker = this.plan.bootErrorMarker;
    const reported = marker === undefined ? undefined : this.tail.toArray().findLast((line) => line.startsWith(marker));
    if (reported !== undefined) message += `: ${reported.slice(marker!.length)}`;
    return new SpawnError(message, {
      category,
      errorId: newErrorId(),
      command: this.plan.description,
      exitCode: kind === 'timeout' ? null : info.code,
      signal: kind === 'timeout' ? null : info.signal,
      outputTail: this.tail.toArray(),
      release: this.plan.release,
      generation: this.plan.generation,
      at: Date.now(),
    });
  }

  private pipeLines(stream: Readable | null, name: 'stdout' | 'stderr', options: LaunchOptions): Promise<void> {
    if (!stream) return Promise.resolve();
    const splitter = new LineSplitter((line) => {
      if (name === 'stderr' && line.startsWith(IN_PROGRESS_MARKER)) {
        // A long report comes as several lines, each with the marker.
        this.inProgressAtExit ??= new Set();
        for (const id of line.slice(IN_PROGRESS_MARKER.length).split(' ')) if (id !== '') this.inProgressAtExit.add(id);
        return; // holdfast's own evidence, not the app's output
      }
      this.tail.push(line);
      options.onOutput?.(line, { pid: this.pid, stream: name });
    });
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => splitter.write(chunk));
    return new Promise((resolve) => {
      stream.once('close', () => {
        splitter.end();
        resolve();
      });
      stream.on('error', () => undefined); // 'close' follows
    });
  }

}

function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone (the app's server removes it on close)
  }
}
