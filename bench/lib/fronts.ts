// The ways the benchmark serves one Node app: directly (one Node process), behind holdfast
// (2 processes, hand-off or proxy path), behind nginx (2 direct Node processes as a keep-alive
// upstream), and in PM2's cluster mode (2 workers).

import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CpuParties } from './cpu';
import { which } from './load';
import { alive, APPS_DIR, childrenOf, CLI, freePort, readLines, REPO_ROOT, type Resources, sleep, waitForHttp } from './processes';

/** holdfast: the default (Node apps take whole connections); holdfast-proxy: connection_handoff off, every request proxied. */
export type FrontName = 'direct' | 'holdfast' | 'holdfast-proxy' | 'nginx' | 'pm2';

export interface Front {
  readonly name: FrontName;
  readonly label: string;
  readonly port: number;
  url(path?: string): string;
  /** Whose CPU counts as the front's and as the apps', for CpuMeter. */
  cpuParties(): CpuParties;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;
/** holdfast is started with --start-timeout 120 (a first Rails boot is slow): wait as long. */
const HOLDFAST_READY_TIMEOUT_MS = 120_000;
/** holdfast's default probation_time. */
const PROBATION_MS = 3000;

function urlOf(port: number, path = '/'): string {
  return `http://127.0.0.1:${port}${path}`;
}

async function startNodeApp(resources: Resources, app: string): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = resources.spawn(process.execPath, [join(APPS_DIR, app, 'app.js')], {
    env: { ...process.env, PORT: String(port), NODE_ENV: 'production' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitForHttp(urlOf(port), START_TIMEOUT_MS, child);
  return { child, port };
}

export async function startDirect(resources: Resources, app: string): Promise<Front> {
  const { child, port } = await startNodeApp(resources, app);
  return {
    name: 'direct',
    label: 'direct, 1 process',
    port,
    url: (p) => urlOf(port, p),
    cpuParties: () => ({ front: [], apps: [child.pid!] }),
    stop: () => resources.stop(child),
  };
}

// ---- holdfast ----

export interface HoldfastFront extends Front {
  readonly pid: number;
  readonly version: string;
  readonly appPids: readonly number[];
  /** Log lines holdfast has written so far (it should write none per request). */
  logLines(): number;
  status(): Promise<HoldfastStatus>;
  /** SIGTERM (a clean stop: app processes go, a --cpu-prof profile is written); bounded. */
  stop(): Promise<void>;
}

export interface HoldfastStatus {
  groups: Array<{ processes: Array<{ pid: number; state: string; processed: number; rss_bytes: number }> }>;
}

/** A running `holdfast start`, ready: what both the Node-app fronts and the app-server comparisons build on. */
export interface HoldfastLaunch {
  readonly child: ChildProcess;
  readonly port: number;
  readonly version: string;
  /** The ready app processes, in order, and each one's spawn_ms. */
  readonly appPids: number[];
  readonly spawnMs: number[];
  /** Log lines holdfast has written so far. */
  logLines(): number;
  /** `holdfast status --json` of this instance. */
  status(): Promise<HoldfastStatus>;
  /** SIGTERM (a clean stop: app processes go, a --cpu-prof profile is written); bounded. */
  stop(): Promise<void>;
}

/**
 * `holdfast start DIR` in production on a free port of 127.0.0.1, with its own instance registry,
 * until it serves and `processes` app processes are ready. Log level info: holdfast logs lifecycle
 * events at info and nothing per request, so this costs nothing under load (the bench counts the
 * lines written during the runs to keep that true), and it is how the bench learns the port and
 * sees the app processes ready.
 */
export async function launchHoldfast(
  resources: Resources,
  appDir: string,
  args: readonly string[],
  processes: number,
  options: { nodeArgs?: readonly string[]; name: string },
): Promise<HoldfastLaunch> {
  const registryDir = resources.tempDir('hf-bench-reg-');
  const env = { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registryDir };
  const child = resources.spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), CLI, 'start', appDir, '--port', '0', '--address', '127.0.0.1', '--environment', 'production', '--log-level', 'info', '--start-timeout', '120', '--name', options.name, ...args],
    { env, cwd: REPO_ROOT },
  );
  let port = 0;
  let version = 'unknown';
  let lines = 0;
  let spawnError: string | undefined;
  const appPids: number[] = [];
  const spawnMs: number[] = [];
  const { tail } = readLines(child, (raw) => {
    lines++;
    let line: { event?: unknown; msg?: unknown; port?: unknown; app_pid?: unknown; spawn_ms?: unknown; version?: unknown };
    try {
      line = JSON.parse(raw) as typeof line;
    } catch {
      return;
    }
    if (line.event === 'serving' && typeof line.port === 'number') {
      port = line.port;
      if (typeof line.version === 'string') version = line.version;
    }
    if (line.event === 'process_ready' && typeof line.app_pid === 'number') {
      appPids.push(line.app_pid);
      if (typeof line.spawn_ms === 'number') spawnMs.push(line.spawn_ms);
    }
    if (line.event === 'spawn_error') spawnError = String(line.msg ?? 'spawn error');
  });
  const stop = async () => {
    await resources.stop(child, 'SIGTERM', 40_000);
    resources.removeDir(registryDir);
  };
  const deadline = Date.now() + HOLDFAST_READY_TIMEOUT_MS;
  while (port === 0 || appPids.length < processes) {
    if (!alive(child) || spawnError || Date.now() > deadline) {
      await stop();
      const why = spawnError ?? (alive(child) ? `not ready within ${HOLDFAST_READY_TIMEOUT_MS} ms` : `exited with ${child.exitCode ?? child.signalCode}`);
      throw new Error(`holdfast did not start ${appDir} (${why}):\n${tail.join('\n')}`);
    }
    await sleep(50);
  }
  await waitForHttp(urlOf(port), HOLDFAST_READY_TIMEOUT_MS, child);
  return {
    child,
    port,
    version,
    appPids,
    spawnMs,
    logLines: () => lines,
    status: () =>
      new Promise((resolve, reject) => {
        execFile(process.execPath, [CLI, 'status', '--json', '--name', options.name], { env, timeout: 20_000 }, (err, stdout) => {
          if (err) reject(err);
          else resolve(JSON.parse(stdout) as HoldfastStatus);
        });
      }),
    stop,
  };
}

export async function startHoldfast(
  resources: Resources,
  app: string,
  options: { nodeArgs?: string[]; instances?: number; handoff?: boolean; extraArgs?: string[] } = {},
): Promise<HoldfastFront> {
  const instances = options.instances ?? 2;
  const handoff = options.handoff ?? true;
  const args = ['--min-instances', String(instances), '--max-pool-size', String(instances), ...(handoff ? [] : ['--no-connection-handoff']), ...(options.extraArgs ?? [])];
  const run = await launchHoldfast(resources, join(APPS_DIR, app), args, instances, {
    name: `bench-${app}-${handoff ? '' : 'proxy-'}${process.pid}`,
    ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
  });
  // A process takes connections once through probation_time (3 s by default); until then they are
  // proxied. Measure what runs afterwards, not the start.
  if (handoff) await sleep(PROBATION_MS + 200);
  const pid = run.child.pid!;
  return {
    name: handoff ? 'holdfast' : 'holdfast-proxy',
    label: `holdfast ${run.version}, ${instances} processes${handoff ? '' : ', proxy only'}`,
    port: run.port,
    pid,
    version: run.version,
    appPids: run.appPids,
    url: (p) => urlOf(run.port, p),
    cpuParties: () => ({ front: [pid], apps: run.appPids }),
    logLines: run.logLines,
    status: run.status,
    stop: run.stop,
  };
}

// ---- nginx ----

export interface NginxBinary {
  path: string;
  version: string;
  /** Where it came from, for the output. */
  source: string;
}

const NGINX_CACHE = join(REPO_ROOT, 'node_modules', '.cache', 'holdfast-bench', 'nginx');

function nginxVersion(path: string): string | undefined {
  const r = spawnSync(path, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? /nginx\/(\S+)/.exec(`${r.stderr}${r.stdout}`)?.[1] : undefined;
}

/**
 * The nginx to compare with: BENCH_NGINX=off skips it, BENCH_NGINX=/path picks a binary; else the
 * system's, else Debian's package fetched with `apt-get download` and unpacked into
 * node_modules/.cache. Unpacked, not installed: `apt-get install nginx` would also start a
 * system-wide nginx on port 80, and this benchmark puts load on 127.0.0.1 only, for a bounded time.
 */
export function findNginx(log: (line: string) => void): NginxBinary | { skipped: string } {
  const wanted = process.env.BENCH_NGINX;
  if (wanted === 'off' || wanted === '0' || wanted === 'false') return { skipped: 'BENCH_NGINX=off' };
  const candidates: Array<[string | undefined, string]> = wanted
    ? [[wanted, 'BENCH_NGINX']]
    : [
        [which('nginx'), 'system'],
        [join(NGINX_CACHE, 'usr', 'sbin', 'nginx'), 'Debian package unpacked in node_modules/.cache'],
      ];
  for (const [path, source] of candidates) {
    const version = path && existsSync(path) ? nginxVersion(path) : undefined;
    if (path && version) return { path, version, source };
  }
  if (wanted) return { skipped: `BENCH_NGINX=${wanted} is not a working nginx binary` };
  if (!which('apt-get') || !which('dpkg-deb')) return { skipped: 'nginx is not installed and this is not a Debian-like system' };

  log('nginx is not installed: fetching the Debian package with apt-get download (unpacked, not installed) ...');
  mkdirSync(NGINX_CACHE, { recursive: true });
  const download = () => spawnSync('apt-get', ['download', 'nginx'], { cwd: NGINX_CACHE, stdio: 'ignore', timeout: 300_000 }).status === 0;
  if (!download()) {
    // The package lists may be empty (a fresh container): update them, which needs root.
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    const updated = root && spawnSync('apt-get', ['update'], { stdio: 'ignore', timeout: 300_000 }).status === 0;
    if (!updated || !download()) return { skipped: 'nginx is not installed and apt-get could not download it' };
  }
  const deb = readdirSync(NGINX_CACHE).find((f) => /^nginx_.*\.deb$/.test(f));
  if (!deb || spawnSync('dpkg-deb', ['-x', deb, '.'], { cwd: NGINX_CACHE, stdio: 'ignore', timeout: 60_000 }).status !== 0) {
    return { skipped: 'the downloaded nginx package could not be unpacked' };
  }
  const path = join(NGINX_CACHE, 'usr', 'sbin', 'nginx');
  const version = nginxVersion(path);
  return version ? { path, version, source: 'Debian package unpacked in node_modules/.cache' } : { skipped: 'the unpacked nginx does not run (missing libraries?)' };
}

export async function startNginx(resources: Resources, nginx: NginxBinary, app: string): Promise<Front> {
  const upstreams = [await startNodeApp(resources, app), await startNodeApp(resources, app)];
  const front = await startNginxOver(resources, nginx, upstreams.map((u) => u.port));
  return {
    name: 'nginx',
    label: `nginx ${nginx.version}, keep-alive upstream`,
    port: front.port,
    url: (p) => urlOf(front.port, p),
    cpuParties: () => ({ front: [front.pid], apps: upstreams.map((u) => u.child.pid!) }),
    stop: async () => {
      await front.stop();
      await Promise.all(upstreams.map((u) => resources.stop(u.child)));
    },
  };
}

/**
 * nginx (one worker unless BENCH_NGINX_WORKERS, keep-alive upstream, least_conn) in front of
 * servers listening on 127.0.0.1 ports: the best-known reverse proxy, as a baseline for holdfast's.
 */
export async function startNginxOver(resources: Resources, nginx: NginxBinary, upstreamPorts: readonly number[]): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const dir = resources.tempDir('hf-bench-nginx-');
  const port = await freePort();
  const workers = Number(process.env.BENCH_NGINX_WORKERS) || 1;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const conf = `# generated by bench/lib/fronts.ts
daemon off;
master_process on;
worker_processes ${workers};
${root ? 'user root;' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app {
    least_conn;
${upstreamPorts.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = resources.spawn(nginx.path, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForHttp(urlOf(port), START_TIMEOUT_MS, child);
  return {
    port,
    // nginx's master and its worker: the worker does the work.
    pid: child.pid!,
    stop: async () => {
      await resources.stop(child, 'SIGTERM');
      resources.removeDir(dir);
    },
  };
}

// ---- PM2 cluster mode ----

/** The PM2 the comparison uses: pinned, installed on first use into node_modules/.cache (not a dependency of holdfast). */
const PM2_VERSION = '7.0.4';
const PM2_CACHE = join(REPO_ROOT, 'node_modules', '.cache', 'holdfast-bench', `pm2-${PM2_VERSION}`);

/** pm2-runtime's path, or why there is none. BENCH_PM2=off skips it. */
export function findPm2(log: (line: string) => void): { runtime: string; version: string } | { skipped: string } {
  if (/^(off|0|false)$/.test(process.env.BENCH_PM2 ?? '')) return { skipped: 'BENCH_PM2=off' };
  const runtime = join(PM2_CACHE, 'node_modules', 'pm2', 'bin', 'pm2-runtime');
  if (!existsSync(runtime)) {
    log(`PM2 is not in ${PM2_CACHE}: installing pm2@${PM2_VERSION} there with npm ...`);
    mkdirSync(PM2_CACHE, { recursive: true });
    const npm = spawnSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', PM2_CACHE, `pm2@${PM2_VERSION}`], { stdio: 'ignore', timeout: 300_000 });
    if (npm.status !== 0 || !existsSync(runtime)) return { skipped: `npm could not install pm2@${PM2_VERSION}` };
  }
  return { runtime, version: PM2_VERSION };
}

export async function startPm2(resources: Resources, pm2: { runtime: string; version: string }, app: string): Promise<Front> {
  const port = await freePort();
  const home = resources.tempDir('hf-bench-pm2-');
  // pm2-runtime stays in the foreground (no daemon): stopping it by pid stops its workers.
  const child = resources.spawn(process.execPath, [pm2.runtime, 'start', join(APPS_DIR, app, 'app.js'), '-i', '2', '--name', `bench-${app}`], {
    env: { ...process.env, PORT: String(port), NODE_ENV: 'production', PM2_HOME: home },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitForHttp(urlOf(port), START_TIMEOUT_MS, child);
  await sleep(1500); // the second worker
  const workers = (): number[] => childrenOf(child.pid!);
  return {
    name: 'pm2',
    label: `PM2 ${pm2.version} cluster mode, 2 workers`,
    port,
    url: (p) => urlOf(port, p),
    // The master accepts and hands out connections (Node's cluster, round-robin): it is the front.
    cpuParties: () => ({ front: [child.pid!], apps: workers() }),
    stop: async () => {
      const left = workers();
      await resources.stop(child, 'SIGINT', 15_000);
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      resources.removeDir(home);
    },
  };
}
