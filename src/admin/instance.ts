// The instance dir and the registry the CLI finds running instances through.
//
//   <registry>/<name>/            0700, one per running holdfast
//     instance.json               InstanceInfo (snake_case, like status --json)
//     admin.sock                  the admin API (unless the path is too long for sun_path)
//     read_token, admin_token     0600, random
//
// An instance is live when its pid is alive and its admin socket accepts a connection. A dir whose
// pid is dead is stale and is removed by whoever meets it first (list, find or create).
//
// Nobody else may have a hand in any of it, root included: the registry must belong to the user
// and be writable by nobody else, or it is refused (start) or only read (status, ...). Nothing is
// ever followed through a symbolic link, and holdfast removes only what it made itself: the files
// it names, then the dir if that left it empty; a short socket dir outside the registry only when it
// is a real dir of ours holding the random marker that instance.json (in our registry) records.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rmdir, stat, lstat, unlink, writeFile, chmod } from 'node:fs/promises';
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
/** In a short socket dir: the random marker of the instance that made it. */
const MARKER_FILE = '.holdfast-marker';
/** Everything holdfast writes into an instance dir (plus `.instance.json.*` temp files). */
const INSTANCE_FILES = [INSTANCE_FILE, SOCKET_FILE, READ_TOKEN_FILE, ADMIN_TOKEN_FILE];
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
  /** Random, written by the instance that made the dir; a short socket dir must hold the same to be removed. */
  marker?: string;
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
  const owned = true;
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
      if (state.kind === 'foreign') throw foreign(dir, state.why);
      // A silent socket on a live pid is an instance still starting, or a pid reused after a crash.
      if (state.kind === 'unresponsive' && now() - Date.parse(state.info.started_at) < STARTING_GRACE_MS) {
        throw exists(opts.name, state.info.pid);
      }
      if (state.kind !== 'absent') await removeStale(dir, state.info, owned);
    }
  }

  let shortSocketDir: string | null = null;
  const marker = randomBytes(16).toString('hex');
  try {
    await chmod(dir, 0o700); // mkdir's mode is filtered by the umask; this is not
    let socketPath = join(dir, SOCKET_FILE);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      shortSocketDir = await makeShortSocketDir();
      await writeSecret(join(shortSocketDir, MARKER_FILE), marker);
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
      marker,
    };
    const readToken = newToken();
    const adminToken = newToken();
    await writeSecret(join(dir, READ_TOKEN_FILE), readToken);
    await writeSecret(join(dir, ADMIN_TOKEN_FILE), adminToken);
    // instance.json last: a dir with it is complete.
    await writeInfo(dir, info);
    return new OwnInstance(dir, info, readToken, adminToken, shortSocketDir);
  } catch (e) {
    await removeOwnDir(dir, INSTANCE_FILES);
    if (shortSocketDir) await removeOwnDir(shortSocketDir, [SOCKET_FILE, MARKER_FILE]);
    throw e instanceof HoldfastError ? e : registryError(`cannot set up the instance dir ${dir}: ${messageOf(e)}`, e);
  }
}

/** Live instances, sorted by name; stale dirs met on the way are removed (from a registry of our own only). */
export async function listInstances(registryDir?: string): Promise<InstanceRecord[]> {
  return (await scan(registryDir ?? defaultRegistryDir())).live;
}

/** The live instances, and the dirs there that are not ours to read ("name: why"). */
async function scan(registry: string): Promise<{ live: InstanceRecord[]; foreign: string[] }> {
  let names: string[];
  try {
    names = await readdir(registry);
  } catch (e) {
    if (errno(e) === 'ENOENT') return { live: [], foreign: [] };
    const hint = errno(e) === 'EACCES' || errno(e) === 'EPERM' ? ` (permission denied: run holdfast as the user that owns it, or set ${REGISTRY_ENV})` : '';
    throw registryError(`cannot read the instance registry ${registry}: ${errno(e) ?? messageOf(e)}${hint}`, e);
  }
  const owned = await registryIsOurs(registry);
  const found: InstanceRecord[] = [];
  const foreignDirs: string[] = [];
  await Promise.all(
    names
      .filter((n) => !n.startsWith('.'))
      .map(async (n) => {
        const dir = join(registry, n);
        const state = await inspect(dir).catch(() => ({ kind: 'absent' }) as const);
        if (state.kind === 'live') found.push({ ...state.info, dir });
        else if (state.kind === 'stale') await removeStale(dir, state.info, owned);
        else if (state.kind === 'foreign') foreignDirs.push(`${n} ${state.why}`);
      }),
  );
  return { live: found.sort((a, b) => a.name.localeCompare(b.name)), foreign: foreignDirs.sort() };
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
    if (state.kind === 'foreign') throw foreign(dir, state.why);
    if (state.kind === 'unresponsive') {
      throw new HoldfastError(
        'HF_INSTANCE_NOT_FOUND',
        `holdfast instance "${name}" (pid ${state.info.pid}) does not answer on its admin socket ${state.info.socket_path}; it may be starting or hung`,
      );
    }
    if (state.kind === 'stale') await removeStale(dir, state.info, await registryIsOurs(registry));
    const others = await scan(registry);
    const hint = others.live.length > 0 ? `; running: ${others.live.map(describe).join(', ')}` : '';
    throw new HoldfastError('HF_INSTANCE_NOT_FOUND', `no running holdfast instance is named "${name}"${hint}${foreignHint(others.foreign)}`);
  }
  const { live, foreign: foreignDirs } = await scan(registry);
  if (live.length === 1) return live[0]!;
  if (live.length === 0) {
    throw new HoldfastError('HF_INSTANCE_NOT_FOUND', `no running holdfast instance found (registry ${registry})${foreignHint(foreignDirs)}`);
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

function foreignHint(dirs: readonly string[]): string {
  return dirs.length === 0 ? '' : `; not yours to read there: ${dirs.join(', ')} (run holdfast as the user that started it)`;
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
      const onDisk = await readInfo(this.dir).catch(() => null);
      if (onDisk === null || onDisk.marker === this.current.marker) await removeOwnDir(this.dir, INSTANCE_FILES);
      if (this.shortSocketDir) await removeOwnDir(this.shortSocketDir, [SOCKET_FILE, MARKER_FILE]);
    })();
    return this.removed;
  }
}

type DirState =
  | { kind: 'live'; info: InstanceInfo }
  | { kind: 'unresponsive'; info: InstanceInfo } // pid alive, socket silent: starting, hung, or a reused pid
  | { kind: 'creating'; info: InstanceInfo | null }
  | { kind: 'stale'; info: InstanceInfo | null }
  /** Not ours to judge: another user's, a symlink, or unreadable. Never removed. */
  | { kind: 'foreign'; why: string }
  | { kind: 'absent' };

async function inspect(dir: string): Promise<DirState> {
  let dirStat;
  try {
    dirStat = await lstat(dir);
  } catch (e) {
    if (errno(e) === 'ENOENT') return { kind: 'absent' };
    throw registryError(`cannot read the instance dir ${dir}: ${messageOf(e)}`, e);
  }
  if (dirStat.isSymbolicLink()) return { kind: 'foreign', why: 'is a symbolic link' };
  if (!dirStat.isDirectory()) return { kind: 'absent' };
  if (dirStat.uid !== myUid()) return { kind: 'foreign', why: `belongs to another user (uid ${dirStat.uid})` };
  let info: InstanceInfo | null;
  try {
    info = await readInfo(dir);
  } catch (e) {
    return { kind: 'foreign', why: `cannot be read (${errno(e) ?? messageOf(e)})` };
  }
  if (info === null) {
    return Date.now() - dirStat.mtimeMs < CREATING_GRACE_MS ? { kind: 'creating', info: null } : { kind: 'stale', info: null };
  }
  if (!pidAlive(info.pid)) return { kind: 'stale', info };
  if (await socketAnswers(info.socket_path)) return { kind: 'live', info };
  return { kind: 'unresponsive', info };
}

/**
 * Removes a dir judged stale, unless it changed hands since it was judged, or the registry is not
 * ours (then nothing is removed). Never throws: a dir that cannot be removed stays.
 */
async function removeStale(dir: string, judged: InstanceInfo | null, registryOwned: boolean): Promise<void> {
  if (!registryOwned) return;
  try {
    const s = await lstat(dir);
    if (!s.isDirectory() || s.uid !== myUid()) return;
    const now = await readInfo(dir);
    if (judged !== null && (now === null || now.pid !== judged.pid || now.started_at !== judged.started_at || now.marker !== judged.marker)) return;
    if (judged === null && now !== null) return;
    await removeOwnDir(dir, INSTANCE_FILES);
    if (judged && (await isOurSocketDir(judged))) await removeOwnDir(dirname(judged.socket_path), [SOCKET_FILE, MARKER_FILE]);
  } catch {
    // changed under us, or not ours to remove: leave it
  }
}

/** A short socket dir of our own making: hf-admin-XXXXXX in the temp dir, a real dir of ours, 0700, holding the instance's marker. */
async function isOurSocketDir(info: InstanceInfo): Promise<boolean> {
  if (typeof info.marker !== 'string' || info.marker.length < 16) return false;
  const socketDir = dirname(info.socket_path);
  if (!basename(socketDir).startsWith(SHORT_SOCKET_DIR_PREFIX)) return false;
  if (dirname(socketDir) !== tmpdir() && dirname(socketDir) !== '/tmp') return false;
  try {
    const s = await lstat(socketDir);
    if (!s.isDirectory() || s.uid !== myUid() || (s.mode & 0o077) !== 0) return false;
    const m = await lstat(join(socketDir, MARKER_FILE));
    if (!m.isFile() || m.uid !== myUid()) return false;
    return (await readFile(join(socketDir, MARKER_FILE), 'utf8')).trim() === info.marker;
  } catch {
    return false;
  }
}

/**
 * Removes the named files holdfast wrote in `dir` (and its own `.instance.json.*` temp files), then
 * the dir if that left it empty. Never recursive, never through a link: a foreign file stays, and so does the dir.
 */
async function removeOwnDir(dir: string, files: readonly string[]): Promise<void> {
  let names: string[];
  try {
    const s = await lstat(dir);
    if (!s.isDirectory() || s.uid !== myUid()) return;
    names = await readdir(dir);
  } catch {
    return;
  }
  const ours = names.filter((n) => files.includes(n) || n.startsWith(`.${INSTANCE_FILE}.`));
  await Promise.all(ours.map((n) => unlink(join(dir, n)).catch(() => undefined)));
  await rmdir(dir).catch(() => undefined);
}

/** null when there is none (or it is torn or foreign); throws when it is there but may not be read. */
async function readInfo(dir: string): Promise<InstanceInfo | null> {
  let raw: string;
  try {
    // O_NOFOLLOW: a link planted in place of instance.json is never read through.
    raw = await readFile(join(dir, INSTANCE_FILE), { encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW });
  } catch (e) {
    if (errno(e) === 'EACCES' || errno(e) === 'EPERM') throw e;
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
  const why = registryProblem(await stat(registry));
  if (why !== null) throw registryError(`the instance registry ${registry} ${why}; set ${REGISTRY_ENV} to a dir of your own (mode 0700)`);
}

/** Why a registry dir may not be trusted (root included), or null when it is ours and nobody else's to write. */
function registryProblem(s: { uid: number; mode: number }): string | null {
  if (s.uid !== myUid()) return `belongs to another user (uid ${s.uid})`;
  if ((s.mode & 0o022) !== 0) return `is writable by group or others (mode ${(s.mode & 0o777).toString(8).padStart(4, '0')})`;
  return null;
}

/** A registry we may remove stale dirs from: ours and nobody else's to write. */
async function registryIsOurs(registry: string): Promise<boolean> {
  try {
    return registryProblem(await stat(registry)) === null;
  } catch {
    return false;
  }
}

function myUid(): number {
  return process.getuid?.() ?? 0;
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

function foreign(dir: string, why: string): HoldfastError {
  return registryError(`the instance dir ${dir} ${why}: it is not yours to use; run the command as the user that started that instance`);
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
