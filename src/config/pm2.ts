// PM2's ecosystem file (ecosystem.config.js), read as holdfast's config so a PM2 user can switch
// without rewriting it: `holdfast start ecosystem.config.js` or `--config ecosystem.config.js`.
// Every key is mapped to a holdfast setting, or named in a one-line notice saying what holdfast
// does instead; none is dropped silently. The same words are the hints for a PM2 key that turns
// up in holdfast.json.

import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { basename, dirname, extname, resolve } from 'node:path';

export interface EcosystemTranslation {
  /** holdfast settings (snake_case keys), still to be validated against the schema. */
  settings: Record<string, unknown>;
  /** The app dir: the app's `cwd`, relative to the file, else the file's dir. */
  appDir: string;
  problems: string[];
  /** One line per key holdfast cannot honour as PM2 would. */
  notices: string[];
}

/** Is this config file (--config) a PM2 ecosystem file rather than a holdfast.json or Passengerfile.json? */
export function isEcosystemFile(path: string): boolean {
  const ext = extname(path);
  return ext === '.js' || ext === '.cjs' || (ext === '.json' && /^(ecosystem|pm2)\b/i.test(basename(path)));
}

/**
 * Does this APP_DIR argument name an ecosystem file? Only by PM2's names (ecosystem.config.js,
 * *.config.cjs, pm2.json...): any other .js file is an app's, and holdfast never runs it to find out.
 */
export function looksLikeEcosystemFile(path: string): boolean {
  return isEcosystemFile(path) && /^(ecosystem|pm2|process)\b|\.config\.c?js$/i.test(basename(path));
}

/** What holdfast.json says instead of a PM2 key (the hint for an unknown key). */
const PM2_HINTS: Readonly<Record<string, string>> = {
  script: 'in holdfast.json this is "startup_file" (a Node file) or "app_start_command" (any other program)',
  cwd: 'the app dir is the APP_DIR argument of holdfast start',
  instances: 'in holdfast.json this is "min_instances" (and "max_pool_size" for the most that may run)',
  exec_mode: 'holdfast always runs its processes behind its own proxy, like PM2\'s cluster mode: remove it',
  env: 'in holdfast.json this is "envvars"',
  max_memory_restart: 'in holdfast.json this is "memory_limit", in MB',
  kill_timeout: 'in holdfast.json this is "drain_timeout", in seconds',
  listen_timeout: 'in holdfast.json this is "start_timeout", in seconds',
  node_args: 'set NODE_OPTIONS in "envvars", or use "app_start_command"',
  args: 'use "app_start_command" to pass arguments to the app',
  interpreter: 'use "app_start_command" to start the app with another program',
  watch: 'holdfast does not watch the files: touch tmp/restart.txt or run holdfast restart after a deploy',
  autorestart: 'holdfast always replaces a process that dies',
  max_restarts: 'holdfast replaces a dying process with back-off and, with resist_deployment_errors, stops at a crash loop',
  min_uptime: 'in holdfast.json "probation_time" is how long a new process must live to count as started',
  restart_delay: 'holdfast replaces a dying process with its own back-off',
  exp_backoff_restart_delay: 'holdfast replaces a dying process with its own back-off',
  wait_ready: 'holdfast takes a process as ready once it listens',
  out_file: 'holdfast writes the app\'s output into its own log: "log_file"',
  error_file: 'holdfast writes the app\'s output into its own log: "log_file"',
  log_file: 'holdfast writes the app\'s output into its own log: "log_file"',
  merge_logs: 'holdfast writes the output of every process into one log, each line with its pid',
  combine_logs: 'holdfast writes the output of every process into one log, each line with its pid',
  log_date_format: 'holdfast stamps every log line with an ISO time',
  time: 'holdfast stamps every log line with an ISO time',
  pid_file: 'holdfast keeps its pid in the instance dir; holdfast start --pid-file FILE writes one where you say',
  cron_restart: 'run holdfast restart from cron instead',
  instance_var: 'holdfast gives each process its own PORT; it sets no instance number',
  increment_var: 'holdfast gives each process its own PORT; it sets no instance number',
  namespace: 'start each app as its own holdfast instance with --name',
  source_map_support: 'set NODE_OPTIONS=--enable-source-maps in "envvars"',
  treekill: 'holdfast stops each process\'s whole process group',
  shutdown_with_message: 'holdfast stops a process with SIGTERM once it has drained',
  vizion: 'holdfast records the git commit of each generation on its own',
  post_update: 'run those commands in your deploy script before holdfast restart',
  force: 'holdfast refuses a second instance of the same name: use --name',
  append_env_name: 'holdfast writes one log file: "log_file"',
  filter_env: 'holdfast passes its own environment to the app, plus "envvars"',
  ignore_watch: 'holdfast does not watch the files',
  watch_delay: 'holdfast does not watch the files',
  autostart: 'holdfast starts the app it is given',
  disable_trace: 'holdfast has no tracing',
  deep_monitoring: 'holdfast has no tracing; scrape metrics_address with Prometheus',
  automation: 'holdfast makes no calls to PM2.io',
  pmx: 'holdfast makes no calls to PM2.io',
};

/** For an unknown key in holdfast.json that is a PM2 key: what to write instead. */
export function pm2Hint(key: string): string | undefined {
  if (/^env_[A-Za-z0-9_-]+$/.test(key)) return 'a PM2 key: in holdfast.json the app\'s variables are "envvars" (one set; start with --environment for NODE_ENV)';
  return Object.hasOwn(PM2_HINTS, key) ? `a PM2 key: ${PM2_HINTS[key]}` : undefined;
}

const MAPPED = new Set(['name', 'script', 'cwd', 'instances', 'exec_mode', 'env', 'max_memory_restart', 'kill_timeout', 'listen_timeout', 'node_args', 'args']);

/** Reads ecosystem.config.js (or .cjs / .json) and maps its app to holdfast settings. */
export function readEcosystem(path: string, options: { name?: string | undefined; environment?: string | undefined }): EcosystemTranslation {
  const problems: string[] = [];
  const notices: string[] = [];
  const settings: Record<string, unknown> = {};
  const fail = (problem: string): EcosystemTranslation => ({ settings, appDir: dirname(path), problems: [problem], notices });

  let exported: unknown;
  try {
    // It is a program (PM2 runs it too); read it afresh each time.
    const req = createRequire(path);
    delete req.cache[req.resolve(path)];
    exported = req(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'MODULE_NOT_FOUND') return fail(`--config ${path} does not exist`);
    if (e.code === 'ERR_REQUIRE_ESM') return fail(`${path}: is an ES module; name it ecosystem.config.cjs (module.exports = { apps: [...] })`);
    return fail(`${path}: cannot be loaded: ${firstLine(e.message)}`);
  }
  const top = (exported as { default?: unknown })?.default ?? exported;
  const apps = (top as { apps?: unknown })?.apps;
  if (!Array.isArray(apps) || apps.length === 0 || !apps.every((a) => typeof a === 'object' && a !== null && !Array.isArray(a))) {
    return fail(`${path}: must export { apps: [{ script: ... }, ...] } as PM2's ecosystem files do`);
  }
  for (const key of Object.keys(top as object)) if (key !== 'apps') notices.push(`${path}: "${key}" is not used: holdfast reads the apps section only`);

  let app = apps[0] as Record<string, unknown>;
  if (apps.length > 1) {
    const names = apps.map((a) => String((a as Record<string, unknown>)['name'] ?? '(unnamed)'));
    const picked = options.name === undefined ? undefined : apps.find((a) => (a as Record<string, unknown>)['name'] === options.name);
    if (!picked) {
      return fail(`${path}: has ${apps.length} apps (${names.join(', ')}); holdfast runs one per instance: pick it with --name${options.name === undefined ? '' : ` (no app is named "${options.name}")`}`);
    }
    app = picked as Record<string, unknown>;
  }
  const where = (key: string) => `${path}: ${key}`;
  const appDir = typeof app['cwd'] === 'string' ? resolve(dirname(path), app['cwd']) : dirname(path);
  if (app['cwd'] !== undefined && typeof app['cwd'] !== 'string') problems.push(`${where('cwd')} must be a directory path (got ${JSON.stringify(app['cwd'])})`);

  if (app['name'] !== undefined) settings['name'] = app['name'];

  // script + node_args + args: a Node file runs as holdfast's Node app (with its hook); anything else,
  // or arguments for the script, runs through app_start_command.
  const script = app['script'];
  const nodeArgs = words(app['node_args'], where('node_args'), problems);
  const args = words(app['args'], where('args'), problems);
  if (typeof script !== 'string' || script === '') {
    problems.push(`${where('script')} must name the app's file or program (got ${JSON.stringify(script)})`);
  } else if (/\.(c|m)?js$/.test(script) && args.length === 0) {
    settings['startup_file'] = script;
    if (nodeArgs.length > 0) settings['envvars'] = { NODE_OPTIONS: nodeArgs.join(' ') };
  } else {
    const isNode = /\.(c|m)?js$/.test(script);
    settings['app_start_command'] = ['exec', ...(isNode ? [process.execPath, ...nodeArgs] : []), script, ...args].map(shellWord).join(' ');
    notices.push(
      `${path}: ${isNode ? 'args' : 'script'} runs as app_start_command ${JSON.stringify(settings['app_start_command'])}: it must listen on $PORT, and holdfast's Node hook is not used`,
    );
    if (!isNode && nodeArgs.length > 0) notices.push(`${where('node_args')} is not used: ${JSON.stringify(script)} is not a Node file`);
  }

  const instances = app['instances'];
  if (instances !== undefined) {
    const cpuCount = cpus().length;
    const n = instances === 'max' ? cpuCount : typeof instances === 'number' && Number.isInteger(instances) ? (instances <= 0 ? Math.max(1, cpuCount + instances) : instances) : NaN;
    if (Number.isNaN(n)) problems.push(`${where('instances')} must be a whole number or "max" (got ${JSON.stringify(instances)})`);
    else {
      // PM2 runs exactly that many; so does holdfast (a rolling restart may run one more meanwhile).
      settings['min_instances'] = n;
      settings['max_pool_size'] = n;
    }
  }

  const mode = app['exec_mode'];
  if (mode !== undefined && mode !== 'cluster' && mode !== 'cluster_mode') {
    if (mode === 'fork' || mode === 'fork_mode') notices.push(`${where('exec_mode')} "fork": holdfast runs every process behind its own proxy, each on a port of its own, as in cluster mode`);
    else problems.push(`${where('exec_mode')} must be "cluster" or "fork" (got ${JSON.stringify(mode)})`);
  }

  // env, then env_<environment> over it: PM2's `--env production`, here holdfast's environment.
  const environment = options.environment ?? 'production';
  const envvars: Record<string, unknown> = { ...(settings['envvars'] as object | undefined) };
  for (const key of ['env', `env_${environment}`]) {
    const value = app[key];
    if (value === undefined) continue;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      problems.push(`${where(key)} must be an object of variables (got ${JSON.stringify(value)})`);
      continue;
    }
    for (const [k, v] of Object.entries(value)) envvars[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  if (Object.keys(envvars).length > 0) settings['envvars'] = envvars;

  const memory = app['max_memory_restart'];
  if (memory !== undefined) {
    const mb = megabytes(memory);
    if (mb === undefined) problems.push(`${where('max_memory_restart')} must be a size like "300M", "1G" or a number of bytes (got ${JSON.stringify(memory)})`);
    else settings['memory_limit'] = mb;
  }
  const seconds = (key: string, setting: string): void => {
    const ms = app[key];
    if (ms === undefined) return;
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) problems.push(`${where(key)} must be a number of milliseconds (got ${JSON.stringify(ms)})`);
    else settings[setting] = Math.max(1, Math.ceil(ms / 1000));
  };
  seconds('kill_timeout', 'drain_timeout');
  seconds('listen_timeout', 'start_timeout');

  for (const key of Object.keys(app)) {
    if (MAPPED.has(key) || key === `env_${environment}`) continue;
    if (/^env_/.test(key)) notices.push(`${where(key)} is not used: holdfast's environment is "${environment}" (--environment picks another)`);
    else if (Object.hasOwn(PM2_HINTS, key)) notices.push(`${where(key)} is not used: ${PM2_HINTS[key]!.replace(/in holdfast\.json this is/, 'holdfast\'s setting is')}`);
    else notices.push(`${where(key)} is not used: holdfast knows no such PM2 key`);
  }
  return { settings, appDir, problems, notices };
}

/** PM2 takes node_args and args as a string or an array of strings. */
function words(value: unknown, subject: string, problems: string[]): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  problems.push(`${subject} must be a string or an array of strings (got ${JSON.stringify(value)})`);
  return [];
}

/** "300M", "1G", "512K", or bytes -> whole MB (at least 1). */
function megabytes(value: unknown): number | undefined {
  const m = typeof value === 'number' ? [String(value), String(value), ''] : typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([KMG]?)B?\s*$/i.exec(value) : null;
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toUpperCase();
  const bytes = unit === 'G' ? n * 1024 ** 3 : unit === 'M' ? n * 1024 ** 2 : unit === 'K' ? n * 1024 : n;
  return Math.max(1, Math.ceil(bytes / 1024 ** 2));
}

function shellWord(word: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}
