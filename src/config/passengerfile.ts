// Passengerfile.json, read when an app dir has no holdfast.json, so a Passenger Standalone user can
// switch without rewriting it. Every option Passenger Standalone knows (its config_options_list.rb)
// is either taken as it is, mapped, accepted with a warning where it truly has no effect here, or
// rejected naming the option: none is silently dropped.

import { isSettingKey, propertySchema } from './schema';

export interface PassengerTranslation {
  /** holdfast settings (snake_case keys), still to be validated against the schema. */
  settings: Record<string, unknown>;
  problems: string[];
  warnings: string[];
}

type Rule =
  /** Accepted and ignored, with a warning: holdfast has nothing it could change. */
  | { kind: 'noEffect'; why: string }
  /**
   * Not supported. `harmless` values (such as `false` for a feature switch) ask for what holdfast
   * does anyway and are accepted silently.
   */
  | { kind: 'unsupported'; hint: string; harmless?: readonly unknown[] };

const noEffect = (why: string): Rule => ({ kind: 'noEffect', why });
const unsupported = (hint: string, ...harmless: unknown[]): Rule => ({ kind: 'unsupported', hint, harmless });

const NO_NGINX = 'holdfast has its own HTTP proxy, no Nginx';
const TLS = 'terminate TLS in a load balancer or reverse proxy in front of holdfast';
const ULIMIT = 'raise the limit (ulimit -n, or LimitNOFILE= under systemd) before starting holdfast';
const ROUTING = 'holdfast routes each request to the least busy process';

/** Passenger Standalone options that are not holdfast keys, and what holdfast makes of them. */
export const PASSENGER_RULES: Readonly<Record<string, Rule>> = {
  // server
  socket_file: unsupported('holdfast listens on TCP only: use address and port'),
  socket_backlog: unsupported('holdfast uses the system default listen backlog'),
  ssl: unsupported(TLS, false),
  ssl_certificate: unsupported(TLS),
  ssl_certificate_key: unsupported(TLS),
  ssl_port: unsupported(TLS),
  daemonize: unsupported('pass --daemonize to holdfast start, or run it under systemd', false),
  user: unsupported('start holdfast as the user the app should run as'),
  pid_file: unsupported('pass --pid-file FILE to holdfast start; the pid is also in the instance dir, and `holdfast status` shows it'),
  stop_timeout: unsupported('drain_timeout bounds how long each app process may take to stop'),
  instance_registry_dir: unsupported('set the HOLDFAST_INSTANCE_REGISTRY_DIR environment variable instead'),
  core_file_descriptor_ulimit: unsupported(ULIMIT),
  // application loading
  nodejs: unsupported('to run the app with another node binary, use app_start_command'),
  meteor_app_settings: unsupported('start a Meteor app with app_start_command'),
  app_support_kuria_protocol: unsupported('holdfast does not speak the Kuria protocol; the app must listen on $PORT', false),
  direct_instance_request_address: unsupported('holdfast reaches its app processes over loopback on its own'),
  restart_dir: unsupported('holdfast watches tmp/restart.txt in the app dir'),
  friendly_error_pages: unsupported('the error page shows the cause when environment is "development", and never otherwise'),
  custom_error_page: unsupported('holdfast shows its own error page'),
  load_shell_envvars: unsupported('put the variables the app needs in envvars', false),
  preload_bundler: noEffect('a Rack app with a Gemfile gets Bundler activated before it loads, always'),
  app_file_descriptor_ulimit: unsupported(ULIMIT),
  debugger: unsupported('start the app with app_start_command "node --inspect ..." instead', false),
  // process management
  max_preloader_idle_time: noEffect('a preloader stops once a newer generation has its own, or holdfast stops'),
  app_connect_timeout: unsupported('start_timeout bounds how long a new process may take to accept connections'),
  concurrency_model: unsupported('holdfast runs one app process per pool slot (concurrency_model "process")', 'process'),
  thread_count: unsupported('a Ruby option; concurrency bounds the sessions of one process'),
  // request handling
  sticky_sessions: unsupported(ROUTING, false),
  sticky_sessions_cookie_name: unsupported(ROUTING),
  sticky_sessions_cookie_attributes: unsupported(ROUTING),
  vary_turbocache_by_cookie: unsupported('holdfast has no response cache'),
  turbocaching: noEffect('holdfast has no response cache'),
  old_routing: unsupported(ROUTING, false),
  unlimited_concurrency_paths: unsupported('concurrency applies to every request alike'),
  abort_websockets_on_process_shutdown: unsupported('holdfast drains WebSocket connections like any other session'),
  // nginx engine
  nginx_bin: noEffect(NO_NGINX),
  nginx_version: noEffect(NO_NGINX),
  nginx_tarball: noEffect(NO_NGINX),
  nginx_config_template: unsupported(`${NO_NGINX}; configure it with the keys of holdfast.json`),
  debug_nginx_config: unsupported(NO_NGINX, false),
  // advanced
  disable_security_update_check: noEffect('holdfast makes no update checks'),
  security_update_check_proxy: noEffect('holdfast makes no update checks'),
  disable_anonymous_telemetry: noEffect('holdfast collects no telemetry'),
  anonymous_telemetry_proxy: noEffect('holdfast collects no telemetry'),
  engine: noEffect(NO_NGINX),
  disable_log_prefix: unsupported('holdfast writes JSON log lines that carry the app and pid as fields', false),
  auto: noEffect('holdfast never asks questions'),
  ctls: unsupported('holdfast has no Passenger core to tune'),
  binaries_url_root: noEffect('holdfast has no runtime to download or compile'),
  runtime_check_only: unsupported('holdfast has no runtime to check', false),
  dont_install_runtime: noEffect('holdfast has no runtime to download or compile'),
  dont_compile_runtime: noEffect('holdfast has no runtime to download or compile'),
};

/** Passenger's numeric log levels (0 crit .. 7 debug3) in holdfast's words. */
const PASSENGER_LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'info', 'debug', 'trace', 'trace'] as const;

/** Passenger's option to force a concurrency per process; -1 (its default) keeps the app type's default (1 for Ruby and Python, unlimited for Node). */
const FORCE_CONCURRENCY = 'force_max_concurrent_requests_per_process';

/** The Passenger Standalone options that are not holdfast keys. */
export function passengerOptionNames(): string[] {
  return [...Object.keys(PASSENGER_RULES), FORCE_CONCURRENCY];
}

/** For an unknown key in holdfast.json that is a Passenger option: what holdfast makes of it. */
export function passengerHint(key: string): string | undefined {
  if (key === FORCE_CONCURRENCY) return 'in holdfast.json this is "concurrency"';
  if (!Object.hasOwn(PASSENGER_RULES, key)) return undefined;
  const rule = PASSENGER_RULES[key]!;
  return rule.kind === 'noEffect' ? `a Passenger option with no effect in holdfast: ${rule.why}` : `a Passenger option holdfast does not support: ${rule.hint}`;
}

/** Passenger's own docs write integers as strings ("port": "4000"), and Passenger takes them. */
function integerFromString(value: unknown): unknown {
  return typeof value === 'string' && /^-?[0-9]+$/.test(value) ? Number(value) : value;
}

/**
 * Turns the top-level object of a Passengerfile.json into holdfast settings. Unknown keys are left in
 * the settings, so that the schema reports them like any unknown key.
 */
export function translatePassengerfile(raw: Record<string, unknown>, file: string): PassengerTranslation {
  const settings: Record<string, unknown> = {};
  const problems: string[] = [];
  const warnings: string[] = [];
  const set = (key: string, value: unknown): void => {
    Object.defineProperty(settings, key, { value, enumerable: true, writable: true, configurable: true });
  };

  for (const [key, value] of Object.entries(raw)) {
    if (key === 'log_level') {
      const level = integerFromString(value);
      if (typeof level === 'number') {
        const mapped = Number.isInteger(level) ? PASSENGER_LOG_LEVELS[level] : undefined;
        if (mapped) set(key, mapped);
        else {
          const names = propertySchema('log_level').enum?.map((v) => JSON.stringify(v)).join(', ') ?? '';
          problems.push(`${file}: log_level must be one of ${names}, or a Passenger log level from 0 to 7 (got ${JSON.stringify(value)})`);
        }
      } else set(key, value);
      continue;
    }
    if (key === FORCE_CONCURRENCY) {
      const n = integerFromString(value);
      if (typeof n !== 'number' || !Number.isInteger(n) || n < -1) {
        problems.push(`${file}: ${FORCE_CONCURRENCY} must be an integer >= -1 (got ${JSON.stringify(value)})`);
      } else if ('concurrency' in raw) {
        problems.push(`${file}: set only one of "concurrency" and "${FORCE_CONCURRENCY}" (they mean the same)`);
      } else {
        if (n !== -1) set('concurrency', n);
      }
      continue;
    }
    if (key === '$schema') {
      set(key, value);
      continue;
    }
    if (isSettingKey(key)) {
      set(key, propertySchema(key).type === 'integer' ? integerFromString(value) : value);
      continue;
    }
    if (!Object.hasOwn(PASSENGER_RULES, key)) {
      set(key, value); // unknown: the schema names it, with a suggestion
      continue;
    }
    const rule = PASSENGER_RULES[key]!;
    if (rule.kind === 'noEffect') {
      warnings.push(`${file}: the Passenger option "${key}" has no effect in holdfast (${rule.why})`);
    } else if (!rule.harmless?.includes(value)) {
      const setTo = rule.harmless?.length ? ` set to ${JSON.stringify(value)}` : '';
      problems.push(`${file}: holdfast does not support the Passenger option "${key}"${setTo} (${rule.hint})`);
    }
  }
  return { settings, problems, warnings };
}
