// Every config key is also a flag of `holdfast start`: the key in snake_case (Passenger's names),
// the flag in kebab-case. Types, ranges and defaults come from the schema, not from here.

import { defaultOf, propertySchema, settingKeys } from './schema';

export interface ConfigOption {
  /** snake_case key of the config file and the schema. */
  key: string;
  /** The long flag, e.g. "--max-pool-size". */
  flag: string;
  /** Passenger's short flag, where it has one. */
  short?: string;
  /** Placeholder of the flag's value in help; undefined for booleans (they get --no-... too). */
  arg?: string;
  /** The flag may be given many times (--envvar). */
  repeatable?: boolean;
}

const ARG_NAMES: Record<string, string> = {
  port: 'NUMBER',
  address: 'HOST',
  environment: 'NAME',
  min_instances: 'NUMBER',
  max_pool_size: 'NUMBER',
  concurrency: 'NUMBER',
  pool_idle_time: 'SECONDS',
  max_requests: 'NUMBER',
  memory_limit: 'MB',
  max_request_queue_size: 'NUMBER',
  max_connections: 'NUMBER',
  start_timeout: 'SECONDS',
  drain_timeout: 'SECONDS',
  probation_time: 'SECONDS',
  app_start_command: 'COMMAND',
  startup_file: 'FILE',
  app_type: 'TYPE',
  ruby: 'COMMAND',
  python: 'COMMAND',
  spawn_method: 'METHOD',
  envvars: 'NAME=VALUE',
  log_file: 'FILE',
  log_level: 'LEVEL',
  name: 'NAME',
  metrics_address: 'HOST:PORT',
  status_address: 'HOST:PORT',
  readiness_path: 'PATH',
  rolling_restart_surge: 'NUMBER',
  health_check_path: 'PATH',
  health_check_timeout: 'SECONDS',
  static_files_dir: 'DIR',
  static_files_cache_control: 'VALUE',
  data_buffer_dir: 'DIR',
  max_request_body_size: 'MB',
  max_request_queue_time: 'SECONDS',
  max_request_time: 'SECONDS',
};

const SHORT_FLAGS: Record<string, string> = { port: '-p', address: '-a', environment: '-e' };

/** The one key whose flag is not its kebab-case name: Passenger's `--envvar NAME=VALUE`. */
const FLAG_NAMES: Record<string, string> = { envvars: '--envvar' };

export function configOptions(): ConfigOption[] {
  return settingKeys().map((key) => {
    const option: ConfigOption = { key, flag: FLAG_NAMES[key] ?? `--${key.replace(/_/g, '-')}` };
    const short = SHORT_FLAGS[key];
    if (short) option.short = short;
    if (propertySchema(key).type !== 'boolean') option.arg = ARG_NAMES[key] ?? 'VALUE';
    if (key === 'envvars') option.repeatable = true;
    return option;
  });
}

export function optionFor(key: string): ConfigOption {
  const option = configOptions().find((o) => o.key === key);
  if (!option) throw new Error(`no such config key: ${key}`);
  return option;
}

/** The property name commander gives a flag: "--max-pool-size" -> "maxPoolSize". */
export function flagProperty(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Where the schema's words are about the file, the flag says it in its own. */
const FLAG_HELP: Record<string, string> = {
  envvars: "An environment variable for the app's processes; repeat for more. Merged over the config file's envvars.",
  log_file: 'File holdfast writes its log (and the app\'s output) to, relative to the current dir. Default: standard output.',
};

/** Help text of a flag, from the schema's description, with its default. */
export function optionHelp(key: string): string {
  const p = propertySchema(key);
  const text = FLAG_HELP[key] ?? p.description.replace(/`/g, '');
  const d = defaultOf(key);
  if (d === undefined || (typeof d === 'object' && d !== null && Object.keys(d).length === 0)) return text;
  return `${text} (default: ${typeof d === 'string' ? d : JSON.stringify(d)})`;
}
