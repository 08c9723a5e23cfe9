// The instance dir and the registry the CLI finds running instances through.
//
//   <registry>/<name>/            0700, one per running holdfast
//     instance.json               InstanceInfo (snake_case, like status --json)
//     admin.sock                  the admin API (unless the path is too long for sun_path)
//     read_token, admin_token     0600, random
//
// An instance is live when its pid is alive and its admin socket accepts a connection. A dir whose
// pid is dead is stale and is removed by whoever meets it first (list, find or create).

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, lstat, writeFile, chmod } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, basename, dirname } from 'node:path';
import { HoldfastError } from '../errors';
import { VERSION } from '../version';

export const REGISTRY_ENV = 'HOLDFAST_INSTANCE_REGISTRY_DIR';
export const INSTANCE_FILE = 'instance.json';
export const SOCKET_FILE = 'admin.sock';
export const READ_TOKEN_FILE = 'read_token';
export const ADMIN_TOKEN_FILE = 'admin_token';

/** Linux allows 107 bytes in sun_path, macOS 103; stay under both. */
const MAX_SOCKET_PATH_BYTES = 103;
/** A dir without a readable instance.json younger than this is being created by someone; leave it. */
const CREATING_GRACE_MS = 10_000;
const SOCKET_PROBE_TIMEOUT_MS = 1_000;
/** An instance whose admin socket is silent this long after it started is taken over by a new one. */
const STARTING_GRACE_MS = 30_000;
const SHORT_SOCKET_DIR_PREFIX = 'hf-admin-';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** What instance.json holds. */
export interface InstanceInfo {
  name: string;
  pid: number;
  address: string;
  port: number;
  app_root: string;
  version: string;
  started_at: string;
  socket_path: string;
  /** The status page (status_address), port resolved; null or absent when there is none. */
  status_url?: string | null;
  /** The token-less metrics listener (metrics_address); null or absent when there is none. */
  metrics_url?: string | null;
}

/** A live instance as the CLI finds it. */
export interface InstanceRecord extends InstanceInfo {
  /** The instance dir (holds the token files). */
  dir: string;
}

/** The running process's own instance: created by the supervisor, removed when it stops. */
export interface Instance {
  readonly name: string;
  readonly dir: string;
  readonly socketPath: string;
  readonly readToken: string;
  readonly adminToken: string;
  /** What instance.json says right now. */
  readonly info: Readonly<InstanceInfo>;
  /** Rewrites instance.json (atomically), e.g. with the port once the public socket is bound. */
  update(partial: Partial<Pick<InstanceInfo, 'address' | 'port' | 'app_root' | 'status_url' | 'metrics_url'>>): Promise<void>;
  /** Removes the dir (and the short socket dir, if any). Idempotent. Close the admin server first. */
  remove(): Promise<void>;
}

export interface CreateInstanceOptions {
  name: string;
  registryDir?: string;
  address: string;
  /** May be 0 until the public socket is bound; then call update({ port }). */
  port: number;
  appRoot: string;
  /** Default process.pid. */
  pid?: number;
  /** Default Date.now(). */
  now?: () => number;
}

export function defaultRegistryDir(): string {
  const fromEnv = process.env[REGISTRY_ENV];
  return fromEnv && fromEnv.length > 0 ? fromEnv : join(tmpdir(), 'holdfast-instances');
}

export function validateInstanceName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new HoldfastError(
      'HF_CONFIG_INVALID',
      `--name "${name}" is not a valid instance name: use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
}

export async function createInstance(opts: CreateInstanceOptions): Promise<Instance> {
  validateInstanceName(opts.name);
  const registry = opts.registryDir ?? defaultRegistryDir();
  await ensureRegistry(registry);
  const dir = join(registry, opts.name);
  const pid = opts.pid ?? process.pid;
  const now = opts.now ?? Date.now;

  // mkdir is the atomic claim on the name; a clash is inspected once and, if stale, taken over.
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(dir, { mode: 0o700 });
      break;
    } catch (e) {
      if (errno(e) !== 'EEXIST' || attempt > 0) {
        if (errno(e) === 'EEXIST') throw exists(opts.name, null);
        throw registryError(`cannot create the instance dir ${dir}: ${messageOf(e)}`, e);
      }
      const state = await inspect(dir);
      if (state.kind === 'live') throw exists(opts.name, state.info.pid);
      if (state.kind === 'creating') throw exists(opts.name, null);
      // A silent socket on a live pid is an instance still starting, or a pid reused after a crash.
      if (state.kind === 'unresponsive' && now() - Date.parse(state.info.started_at) < STARTING_GRACE_MS) {
        throw exists(opts.name, state.info.pid);
      }
      if (state.kind !== 'absent') await removeStale(dir, state.info);
    }
  }

  let shortSocketDir: string | null = null;
  try {
    await chmod(dir, 0o700); // mkdir's mode is filtered by the umask; this is not
    let socketPath = join(dir, SOCKET_FILE);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      shortSocketDir = await makeShortSocketDir();
      socketPath = join(shortSocketDir, SOCKET_FILE);
    }
    const info: InstanceInfo = {
      name: opts.name,
      pid,
      address: opts.address,
      port: opts.port,
      app_root: opts.appRoot,
      version: VERSION,
      started_at: new Date(now()).toISOString(),
      socket_path: socketPath,
    };
    const readToken = newToken();
    const adminToken = newToken();
    await writeSecret(join(dir, READ_TOKEN_FILE), readToken);
    await writeSecret(join(dir, ADMIN_TOKEN_FILE), adminToken);
    // instance.json last: a dir with it is complete.
    await writeInfo(dir, info);
    return new OwnInstance(dir, info, readToken, adminToken, shortSocketDir);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    if (shortSocketDir) await rm(shortSocketDir, { recursive: true, force: true });
    throw e instanceof HoldfastError ? e : registryError(`cannot set up the instance dir ${dir}: ${messageOf(e)}`, e);
  }
}

/** Live instances, sorted by name; stale dirs met on the way are removed. */
export async function listInstances(registryDir?: string): Promise<InstanceRecord[]> {
  const registry = registryDir ?? defaultRegistryDir();
  let names: string[];
  try {
    names = await readdir(registry);
  } catch (e) {
    if (errno(e) === 'ENOENT') return [];
    throw registryError(`cannot read the instance registry ${registry}: ${messageOf(e)}`, e);
  }
  const found: InstanceRecord[] = [];
  await Promise.all(
    names
      .filter((n) => !n.startsWith('.'))
      .map(async (n) => {
        const dir = join(registry, n);
        const state = await inspect(dir);
        if (state.kind === 'live') found.push({ ...state.info, dir });
        else if (state.kind === 'stale') await removeStale(dir, state.info);
      }),
  );
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The one instance a command talks to: the named one, or the only one running.
 * Throws HF_INSTANCE_NOT_FOUND or HF_INSTANCE_AMBIGUOUS (whose message lists the running ones).
 */
export async function findInstance(name: string | undefined, registryDir?: string): Promise<InstanceRecord> {
  const registry = registryDir ?? defaultRegistryDir();
  if (name !== undefined) {
    validateInstanceName(name);
    const dir = join(registry, name);
    const state = await inspect(dir);
    if (state.kind === 'live') return { ...state.info, dir };
    if (state.kind === 'unresponsive') {
      throw new HoldfastError(
        'HF_INSTANCE_NOT_FOUND',
        `holdfast instance "${name}" (pid ${state.info.pid}) does not answer on its admin socket ${state.info.socket_path}; it may be starting or hung`,
      );
    }
    if (state.kind === 'stale') await removeStale(dir, state.info);
    const others = await listInstances(registry);
    const hint = others.length > 0 ? `; running: ${others.map(describe).join(', ')}` : '';
    throw new HoldfastError('HF_INSTANCE_NOT_FOUND', `no running holdfast instance is named "${name}"${hint}`);
  }
  const live = await listInstances(registry);
  if (live.length === 1) return live[0]!;
  if (live.length === 0) {
    throw new HoldfastError('HF_INSTANCE_NOT_FOUND', `no running holdfast instance found (registry ${registry})`);
  }
  throw new HoldfastError(
    'HF_INSTANCE_AMBIGUOUS',
    `${live.length} holdfast instances are running, pick one with --name: ${live.map(describe).join(', ')}`,
  );
}

/** True while a process with this pid exists (EPERM: it exists, it is just not ours). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === 'EPERM';
  }
}

/** True when something accepts a connection on the Unix socket. */
export function socketAnswers(socketPath: string, timeoutMs = SOCKET_PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    timer.unref();
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function describe(i: InstanceInfo): string {
  return `${i.name} (pid ${i.pid}, ${i.address}:${i.port}, ${i.app_root})`;
}

class OwnInstance implements Instance {
  private current: InstanceInfo;
  private removed: Promise<void> | null = null;

  constructor(
    readonly dir: string,
    info: InstanceInfo,
    readonly readToken: string,
    readonly adminToken: string,
    private readonly shortSocketDir: string | null,
  ) {
    this.current = info;
  }

  get name(): string {
    return this.current.name;
  }

  get socketPath(): string {
    return this.current.socket_path;
  }

  get info(): Readonly<InstanceInfo> {
    return this.current;
  }

  async update(partial: Partial<Pick<InstanceInfo, 'address' | 'port' | 'app_root' | 'status_url' | 'metrics_url'>>): Promise<void> {
    const next: InstanceInfo = { ...this.current };
    if (partial.address !== undefined) next.address = partial.address;
    if (partial.port !== undefined) next.port = partial.port;
    if (partial.app_root !== undefined) next.app_root = partial.app_root;
    if (partial.status_url !== undefined) next.status_url = partial.status_url;
    if (partial.metrics_url !== undefined) next.metrics_url = partial.metrics_url;
    await writeInfo(this.dir, next);
    this.current = next;
  }

  remove(): Promise<void> {
    this.removed ??= (async () => {
      // Another process may have taken the name over since (it judged us dead): leave its dir alone.
      const onDisk = await readInfo(this.dir);
      if (onDisk === null || (onDisk.pid === this.current.pid && onDisk.started_at === this.current.started_at)) {
        await rm(this.dir, { recursive: true, force: true });
      }
      if (this.shortSocketDir) await rm(this.shortSocketDir, { recursive: true, force: true });
    })();
    return this.removed;
  }
}

type DirState =
  | { kind: 'live'; info: InstanceInfo }
  | { kind: 'unresponsive'; info: InstanceInfo } // pid alive, socket silent: starting, hung, or a reused pid
  | { kind: 'creating'; info: InstanceInfo | null }
  | { kind: 'stale'; info: InstanceInfo | null }
  | { kind: 'absent' };

async function inspect(dir: string): Promise<DirState> {
  let dirStat;
  try {
    dirStat = await lstat(dir);
  } catch (e) {
    if (errno(e) === 'ENOENT') return { kind: 'absent' };
    throw registryError(`cannot read the instance dir ${dir}: ${messageOf(e)}`, e);
  }
  if (!dirStat.isDirectory()) return { kind: 'absent' };
  const info = await readInfo(dir);
  if (info === null) {
    return Date.now() - dirStat.mtimeMs < CREATING_GRACE_MS ? { kind: 'creating', info: null } : { kind: 'stale', info: null };
  }
  if (!pidAlive(info.pid)) return { kind: 'stale', info };
  if (await socketAnswers(info.socket_path)) return { kind: 'live', info };
  return { kind: 'unresponsive', info };
}

/** Removes a dir judged stale, unless it changed hands since it was judged. */
async function removeStale(dir: string, judged: InstanceInfo | null): Promise<void> {
  const now = await readInfo(dir);
  if (judged !== null && (now === null || now.pid !== judged.pid || now.started_at !== judged.started_at)) return;
  if (judged === null && now !== null) return;
  await rm(dir, { recursive: true, force: true });
  const socketDir = judged ? dirname(judged.socket_path) : null;
  // Only ever remove a short socket dir of our own making (hf-admin-XXXXXX holding the socket).
  if (socketDir && socketDir !== dir && basename(socketDir).startsWith(SHORT_SOCKET_DIR_PREFIX)) {
    await rm(socketDir, { recursive: true, force: true });
  }
}

async function readInfo(dir: string): Promise<InstanceInfo | null> {
  let raw: string;
  try {
    raw = await readFile(join(dir, INSTANCE_FILE), 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(raw) as Partial<InstanceInfo>;
    if (
      typeof v.name === 'string' &&
      typeof v.pid === 'number' &&
      typeof v.address === 'string' &&
      typeof v.port === 'number' &&
      typeof v.app_root === 'string' &&
      typeof v.version === 'string' &&
      typeof v.started_at === 'string' &&
      typeof v.socket_path === 'string'
    ) {
      return v as InstanceInfo;
    }
  } catch {
    // torn or foreign file: treated as missing
  }
  return null;
}

async function writeInfo(dir: string, info: InstanceInfo): Promise<void> {
  const tmp = join(dir, `.${INSTANCE_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
  await writeFile(tmp, JSON.stringify(info, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  await rename(tmp, join(dir, INSTANCE_FILE));
}

async function writeSecret(path: string, value: string): Promise<void> {
  await writeFile(path, value + '\n', { mode: 0o600, flag: 'wx' });
  await chmod(path, 0o600);
}

async function ensureRegistry(registry: string): Promise<void> {
  try {
    const created = await mkdir(registry, { recursive: true, mode: 0o700 });
    if (created !== undefined) await chmod(registry, 0o700);
  } catch (e) {
    throw registryError(`cannot create the instance registry ${registry}: ${messageOf(e)}`, e);
  }
  const s = await stat(registry);
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0 && s.uid !== uid) {
    throw registryError(
      `the instance registry ${registry} belongs to another user (uid ${s.uid}); set ${REGISTRY_ENV} to a dir of your own`,
    );
  }
}

async function makeShortSocketDir(): Promise<string> {
  const base = Buffer.byteLength(join(tmpdir(), 'hf-admin-XXXXXX', SOCKET_FILE)) <= MAX_SOCKET_PATH_BYTES ? tmpdir() : '/tmp';
  const dir = await mkdtemp(join(base, SHORT_SOCKET_DIR_PREFIX)); // mkdtemp makes it 0700
  await chmod(dir, 0o700);
  return dir;
}

function newToken(): string {
  return randomBytes(32).toString('base64url');
}

function exists(name: string, pid: number | null): HoldfastError {
  const who = pid === null ? 'is being started by another process' : `is already running (pid ${pid})`;
  return new HoldfastError(
    'HF_INSTANCE_EXISTS',
    `a holdfast instance named "${name}" ${who}; stop it or pick another name with --name`,
  );
}

// The catalog has no registry-specific code; these surface as "cannot find/create an instance".
function registryError(message: string, cause?: unknown): HoldfastError {
  return new HoldfastError('HF_INSTANCE_NOT_FOUND', message, { cause });
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
