// Loads the configuration of `holdfast start`: flags > config file > defaults, validated as a whole.
// Every problem is collected and reported at once (ConfigError); nothing is half-configured.

import { accessSync, constants, lstatSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError, HoldfastError } from '../errors';
import { defaultConcurrency, detectAppType, startupFileMismatch, type SpawnMethod } from './app-type';
import { parseHostPort } from './host-port';
import { JsonTextError, parseJsonText } from './json-text';
import { configOptions, flagProperty, optionFor } from './options';
import { passengerHint, passengerOptionNames, translatePassengerfile } from './passengerfile';
import { isEcosystemFile, looksLikeEcosystemFile, pm2Hint, readEcosystem, type EcosystemTranslation } from './pm2';
import { defaultOf, describeAllowed, isSettingKey, propertySchema, schemaErrors, settingKeys } from './schema';
import { closest } from './suggest';
import type { HoldfastConfig, LogLevel } from './types';

/** The config file holdfast looks for in the app dir. */
export const CONFIG_FILE_NAME = 'holdfast.json';
/** Passenger Standalone's config file, read when there is no holdfast.json. */
export const PASSENGERFILE_NAME = 'Passengerfile.json';

export interface LoadConfigInput {
  /** The APP_DIR argument, relative to cwd; default: cwd. */
  appDir?: string;
  /**
   * The flags of `holdfast start` as commander hands them over: camelCase names ("maxPoolSize"),
   * values as typed (strings; booleans for switches; string[] for `envvar`), plus `config`.
   * Absent or undefined means "not given".
   */
  flags: Record<string, unknown>;
  cwd: string;
}

type Source = { kind: 'default' } | { kind: 'file'; path: string } | { kind: 'flags' };

interface ConfigFile {
  path: string;
  dialect: 'holdfast' | 'passenger' | 'pm2';
  /** Named by --config (so a missing file is the flag's fault). */
  fromFlag: boolean;
  /** A PM2 ecosystem file, read before the app dir is known: its `cwd` may name it. */
  ecosystem?: EcosystemTranslation;
}

/**
 * Reads and validates the configuration of the app in `input.appDir`.
 * Throws HoldfastError HF_APP_DIR when the app dir is unusable, and ConfigError (HF_CONFIG_INVALID)
 * listing every problem of the file and the flags.
 */
export function loadConfig(input: LoadConfigInput): HoldfastConfig {
  // `holdfast start ecosystem.config.js`, as with pm2: the file is the config, its app's cwd the app dir.
  if (input.appDir !== undefined && input.flags['config'] === undefined && looksLikeEcosystemFile(input.appDir) && isFile(resolve(input.cwd, input.appDir))) {
    input = { ...input, appDir: undefined, flags: { ...input.flags, config: input.appDir } };
  }
  const problems: string[] = [];
  const warnings: string[] = [];
  // Keys that had a problem in any layer: no cross-field rule is checked on them.
  const badKeys = new Set<string>();

  const named = input.flags['config'] !== undefined ? configFromFlag(input, problems) : undefined;
  const appDir = input.appDir === undefined && named?.ecosystem ? named.ecosystem.appDir : resolve(input.cwd, input.appDir ?? '.');
  checkAppDir(appDir);
  const file = input.flags['config'] !== undefined ? named : findConfigFile(appDir, warnings);
  let fileSettings: Record<string, unknown> = {};
  if (file) {
    const raw = readConfigFile(file, problems, warnings);
    if (raw) fileSettings = validateLayer(raw, { kind: 'file', path: file.path }, problems, badKeys);
  }
  const flagSettings = validateLayer(readFlags(input.flags, problems, badKeys), { kind: 'flags' }, problems, badKeys);

  const merged = new Map<string, { value: unknown; source: Source }>();
  for (const key of settingKeys()) {
    if (Object.hasOwn(flagSettings, key)) merged.set(key, { value: flagSettings[key], source: { kind: 'flags' } });
    else if (Object.hasOwn(fileSettings, key)) merged.set(key, { value: fileSettings[key], source: { kind: 'file', path: file!.path } });
    else if (defaultOf(key) !== undefined) merged.set(key, { value: defaultOf(key), source: { kind: 'default' } });
  }
  // --envvar adds to (and overrides single variables of) the file's envvars rather than replacing them all.
  if (Object.hasOwn(fileSettings, 'envvars') && Object.hasOwn(flagSettings, 'envvars')) {
    merged.set('envvars', {
      value: { ...(fileSettings['envvars'] as object), ...(flagSettings['envvars'] as object) },
      source: { kind: 'flags' },
    });
  }

  const value = <T>(key: string): T => merged.get(key)?.value as T;
  const describe = (key: string): string => {
    const entry = merged.get(key)!;
    return `${key} (${JSON.stringify(entry.value)}, ${origin(entry.source, key)})`;
  };

  if (!badKeys.has('min_instances') && !badKeys.has('max_pool_size') && value<number>('min_instances') > value<number>('max_pool_size')) {
    problems.push(`${describe('min_instances')} must not exceed ${describe('max_pool_size')}`);
  }
  const startupFile = value<string | undefined>('startup_file');
  if (startupFile !== undefined && value<string | undefined>('app_start_command') !== undefined) {
    const from = (key: string): string => `${key} (${origin(merged.get(key)!.source, key)})`;
    problems.push(`${from('startup_file')} and ${from('app_start_command')} cannot both be set: app_start_command starts the app by itself`);
  } else if (startupFile !== undefined) {
    const problem = checkReadableFile(resolve(appDir, startupFile));
    if (problem) problems.push(`${subject(merged.get('startup_file')!.source, 'startup_file')} ${problem}`);
  }
  const detected = detectAppType({
    appDir,
    appType: badKeys.has('app_type') ? undefined : value<string | undefined>('app_type'),
    startupFile,
    appStartCommand: value<string | undefined>('app_start_command'),
  });
  if (startupFile !== undefined && !badKeys.has('app_type')) {
    const mismatch = startupFileMismatch(detected.type, startupFile);
    if (mismatch) problems.push(`${configPrefix(merged.get('startup_file')!.source)}${mismatch}`);
  }
  if (detected.type === 'generic' && value<string | undefined>('app_start_command') === undefined) {
    problems.push(`${describe('app_type')} needs app_start_command: a generic app is started by that command and must listen on $PORT`);
  }

  const bufferDir = merged.get('data_buffer_dir');
  if (bufferDir !== undefined && !badKeys.has('data_buffer_dir')) {
    const problem = checkWritableDir(pathSetting(bufferDir, input.cwd)!);
    if (problem) problems.push(`${subject(bufferDir.source, 'data_buffer_dir')} ${problem}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  if (value<boolean>('resist_deployment_errors') && !value<boolean>('rolling_restarts')) {
    warnings.push(
      'resist_deployment_errors is on without rolling_restarts: a plain restart stops the old processes before it starts new ones, so a failed deploy leaves none to keep serving',
    );
  }

  const logFile = merged.get('log_file');
  const seconds = (key: string): number => value<number>(key) * 1000;
  const hostPort = (key: string) => {
    const text = value<string | undefined>(key);
    return text === undefined ? undefined : parseHostPort(text);
  };
  return {
    appDir,
    configFile: file?.path,
    port: value('port'),
    address: value('address'),
    environment: value('environment'),
    minInstances: value('min_instances'),
    maxPoolSize: value('max_pool_size'),
    appType: detected.type,
    appTypeReason: detected.reason,
    ruby: value('ruby'),
    python: value('python'),
    spawnMethod: value<SpawnMethod>('spawn_method'),
    concurrency: value<number | undefined>('concurrency') ?? defaultConcurrency(detected.type),
    poolIdleTimeMs: seconds('pool_idle_time'),
    maxRequests: value('max_requests'),
    memoryLimitBytes: value<number>('memory_limit') * 1024 * 1024,
    maxRequestQueueSize: value('max_request_queue_size'),
    maxConnections: value('max_connections'),
    startTimeoutMs: seconds('start_timeout'),
    drainTimeoutMs: seconds('drain_timeout'),
    probationMs: seconds('probation_time'),
    rollingRestarts: value('rolling_restarts'),
    resistDeploymentErrors: value('resist_deployment_errors'),
    connectionHandoff: value('connection_handoff'),
    appStartCommand: value('app_start_command'),
    staticFiles: value('static_files'),
    staticFilesDir: value('static_files_dir'),
    staticFilesCacheControl: value('static_files_cache_control'),
    requestBuffering: value('request_buffering'),
    dataBufferDir: pathSetting(merged.get('data_buffer_dir'), input.cwd),
    maxRequestBodyBytes: value<number>('max_request_body_size') * 1024 * 1024,
    maxRequestQueueTimeMs: seconds('max_request_queue_time'),
    maxRequestTimeMs: seconds('max_request_time'),
    startupFile,
    envvars: { ...value<Record<string, string>>('envvars') },
    // A path in the file is relative to the file, a path on the command line to the current dir.
    logFile: logFile
      ? resolve(logFile.source.kind === 'file' ? dirname(logFile.source.path) : input.cwd, logFile.value as string)
      : undefined,
    logLevel: value<LogLevel>('log_level'),
    name: value<string | undefined>('name') ?? defaultName(appDir),
    metricsAddress: hostPort('metrics_address'),
    statusAddress: hostPort('status_address'),
    readinessPath: value('readiness_path'),
    rollingRestartSurge: value('rolling_restart_surge'),
    healthCheckPath: value('health_check_path'),
    healthCheckTimeoutMs: seconds('health_check_timeout'),
    warnings,
  };
}

/** A path in the file is relative to the file, a path on the command line to the current dir. */
function pathSetting(entry: { value: unknown; source: Source } | undefined, cwd: string): string | undefined {
  if (entry === undefined) return undefined;
  return resolve(entry.source.kind === 'file' ? dirname(entry.source.path) : cwd, entry.value as string);
}

function checkAppDir(appDir: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(appDir).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new HoldfastError('HF_APP_DIR', `app directory ${appDir} does not exist`, { cause: err });
    throw new HoldfastError('HF_APP_DIR', `app directory ${appDir} cannot be used (${describeFsError(err)})`, { cause: err });
  }
  if (!isDir) throw new HoldfastError('HF_APP_DIR', `app directory ${appDir} is not a directory`);
  try {
    accessSync(appDir, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw new HoldfastError('HF_APP_DIR', `app directory ${appDir} cannot be read (${describeFsError(err)})`, { cause: err });
  }
}

/** The file --config names; a PM2 ecosystem file is read at once, since it may name the app dir. */
function configFromFlag(input: LoadConfigInput, problems: string[]): ConfigFile | undefined {
  const flag = input.flags['config'];
  if (typeof flag !== 'string' || flag === '') {
    problems.push(`--config must be the path of a config file (got ${show(flag)})`);
    return undefined;
  }
  const path = resolve(input.cwd, flag);
  if (isEcosystemFile(path)) {
    const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
    const ecosystem = readEcosystem(path, { name: str(input.flags['name']), environment: str(input.flags['environment']) });
    return { path, dialect: 'pm2', fromFlag: true, ecosystem };
  }
  return { path, dialect: basename(path) === PASSENGERFILE_NAME ? 'passenger' : 'holdfast', fromFlag: true };
}

function findConfigFile(appDir: string, warnings: string[]): ConfigFile | undefined {
  const own = join(appDir, CONFIG_FILE_NAME);
  const passengers = join(appDir, PASSENGERFILE_NAME);
  if (present(own)) {
    if (present(passengers)) warnings.push(`${passengers} is not read because ${own} exists`);
    return { path: own, dialect: 'holdfast', fromFlag: false };
  }
  if (present(passengers)) return { path: passengers, dialect: 'passenger', fromFlag: false };
  return undefined;
}

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() === true;
}

/** A dangling symlink counts as present: reading it then fails loudly instead of being skipped. */
function present(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}

/** The file's settings, before schema validation; undefined when it could not be read or parsed. */
function readConfigFile(file: ConfigFile, problems: string[], warnings: string[]): Record<string, unknown> | undefined {
  if (file.ecosystem) {
    problems.push(...file.ecosystem.problems);
    warnings.push(...file.ecosystem.notices);
    return file.ecosystem.problems.length > 0 ? undefined : file.ecosystem.settings;
  }
  let text: string;
  try {
    text = readFileSync(file.path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && file.fromFlag) problems.push(`--config ${file.path} does not exist`);
    else if (code === 'EISDIR') problems.push(`${file.path}: is a directory, not a config file`);
    else problems.push(`${file.path}: cannot be read (${describeFsError(err)})`);
    return undefined;
  }
  let parsed;
  try {
    parsed = parseJsonText(text);
  } catch (err) {
    if (!(err instanceof JsonTextError)) throw err;
    problems.push(`${file.path}: invalid JSON at line ${err.line} column ${err.column}: ${err.message}`);
    return undefined;
  }
  for (const d of parsed.duplicates) {
    const key = d.parent ? `${d.parent}.${d.key}` : d.key;
    problems.push(`${file.path}: key "${key}" is given twice (again at line ${d.line} column ${d.column})`);
  }
  const top = parsed.value;
  if (typeof top !== 'object' || top === null || Array.isArray(top)) {
    problems.push(`${file.path}: must be a JSON object of settings, like {"port": 3000} (got ${kindOf(top)})`);
    return undefined;
  }
  if (file.dialect === 'holdfast') return top as Record<string, unknown>;
  const translated = translatePassengerfile(top as Record<string, unknown>, file.path);
  problems.push(...translated.problems);
  warnings.push(...translated.warnings);
  return translated.settings;
}

/** Flag strings parsed to the schema's types where they look like one; the schema judges the rest. */
function readFlags(flags: Record<string, unknown>, problems: string[], badKeys: Set<string>): Record<string, unknown> {
  const byProperty = new Map(configOptions().map((o) => [flagProperty(o.flag), o]));
  const settings: Record<string, unknown> = {};
  for (const [property, raw] of Object.entries(flags)) {
    if (raw === undefined || property === 'config') continue;
    const option = byProperty.get(property);
    if (!option) throw new HoldfastError('HF_INTERNAL', `loadConfig was given an unknown flag "${property}"`);
    if (option.key === 'envvars') {
      const envvars: Record<string, string> = {};
      for (const pair of Array.isArray(raw) ? raw : [raw]) {
        const m = typeof pair === 'string' ? /^([^=]+)=(.*)$/s.exec(pair) : null;
        if (m) envvars[m[1]!] = m[2]!;
        else {
          problems.push(`--envvar must be NAME=VALUE (got ${show(pair)})`);
          badKeys.add('envvars');
        }
      }
      if (!badKeys.has('envvars')) settings['envvars'] = envvars;
      continue;
    }
    settings[option.key] = fromFlagString(option.key, raw);
  }
  return settings;
}

function fromFlagString(key: string, raw: unknown): unknown {
  if (typeof raw !== 'string') return raw;
  const type = propertySchema(key).type;
  if (type === 'integer' && /^[+-]?[0-9]+(\.[0-9]+)?$/.test(raw)) return Number(raw);
  if (type === 'boolean' && (raw === 'true' || raw === 'false')) return raw === 'true';
  return raw;
}

/** Validates one layer (the file, or the flags) against the schema; returns its valid settings. */
function validateLayer(
  settings: Record<string, unknown>,
  source: Source,
  problems: string[],
  badKeys: Set<string>,
): Record<string, unknown> {
  const reported = new Set<string>();
  for (const error of schemaErrors(settings)) {
    const path = error.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    if (error.keyword === 'additionalProperties' && path.length === 0) {
      const key = String(error.params['additionalProperty']);
      problems.push(unknownKey(key, source));
      continue;
    }
    // The inner errors of propertyNames repeat what its own error says.
    if (error.propertyName !== undefined && error.keyword !== 'propertyNames') continue;
    const key = path[0];
    if (key === undefined) continue;
    badKeys.add(key);
    if (key === 'envvars' && error.keyword === 'propertyNames') {
      problems.push(`${subject(source, 'envvars')}: the variable name ${show(error.params['propertyName'])} must not be empty or contain "=" or a NUL byte`);
      continue;
    }
    if (key === 'envvars' && path.length === 2) {
      const envvars = settings['envvars'] as Record<string, unknown>;
      // A NUL cannot be put in a process's environment: every spawn would fail.
      if (error.keyword === 'pattern') problems.push(`${source.kind === 'flags' ? `--envvar ${path[1]}` : subject(source, `envvars.${path[1]}`)} must not contain a NUL byte`);
      else problems.push(`${subject(source, `envvars.${path[1]}`)} must be a string (got ${show(envvars[path[1]!])})`);
      continue;
    }
    if (reported.has(key)) continue;
    reported.add(key);
    problems.push(`${subject(source, key)} must be ${describeAllowed(key)} (got ${show(settings[key])})`);
  }
  const valid: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(settings)) if (isSettingKey(key) && !badKeys.has(key)) valid[key] = v;
  return valid;
}

function unknownKey(key: string, source: Source): string {
  const where = source.kind === 'file' ? `${source.path}: ` : '';
  const inPassengerfile = source.kind === 'file' && basename(source.path) === PASSENGERFILE_NAME;
  const hint = inPassengerfile ? undefined : (passengerHint(key) ?? pm2Hint(key));
  if (hint) return `${where}unknown key ${JSON.stringify(key)} (${hint})`;
  const guess = closest(key, inPassengerfile ? [...settingKeys(), ...passengerOptionNames()] : settingKeys());
  return `${where}unknown key ${JSON.stringify(key)}${guess ? ` (did you mean ${JSON.stringify(guess)}?)` : ''}`;
}

/** Who said it, in the words of an error message: "/app/holdfast.json: max_pool_size", "--max-pool-size". */
function subject(source: Source, keyPath: string): string {
  if (source.kind === 'file') return `${source.path}: ${keyPath}`;
  if (source.kind === 'flags') return optionFor(keyPath.split('.')[0]!).flag;
  return keyPath;
}

/** "/app/holdfast.json: " for a file, "" otherwise: the start of a message that names its own key. */
function configPrefix(source: Source): string {
  return source.kind === 'file' ? `${source.path}: ` : '';
}

function origin(source: Source, key: string): string {
  if (source.kind === 'file') return `from ${source.path}`;
  if (source.kind === 'flags') return `from ${optionFor(key).flag}`;
  return 'the default';
}

/** Why a file cannot be used, or undefined when it exists, is a file and can be read. */
function checkReadableFile(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return `${path} is not a file`;
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return `${path} does not exist`;
    if (code === 'EACCES') return `${path} is not readable (permission denied)`;
    return `${path} cannot be read (${describeFsError(err)})`;
  }
}

/** Why a dir cannot take holdfast's spool files, or undefined when it can. */
function checkWritableDir(path: string): string | undefined {
  try {
    if (!statSync(path).isDirectory()) return `${path} is not a directory`;
    accessSync(path, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return `${path} does not exist`;
    if (code === 'EACCES') return `${path} is not writable (permission denied)`;
    return `${path} cannot be used (${describeFsError(err)})`;
  }
}

/** The default instance name: the app dir's base name, made a valid name. */
function defaultName(appDir: string): string {
  const name = basename(appDir)
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64);
  return name || 'app';
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return 'permission denied';
  return e.code ?? e.message;
}
