// Passenger Standalone's command-line flags on `holdfast start`: the ones that mean the same as a
// holdfast flag are taken (`-d`/`--daemonize`, `--pid-file`, `--force-max-concurrent-requests-per-process`);
// the others get the same explanation as the Passengerfile.json key of that name, instead of a bare
// "unknown option". A flag whose value asks for what holdfast does anyway (`--spawn-method direct`)
// is accepted silently, one with no effect here with a warning, the rest stop the start.

import { PASSENGER_RULES } from './passengerfile';
import { isSettingKey } from './schema';

export interface PassengerFlag {
  /** The Passengerfile key the flag stands for. */
  key: string;
  /** e.g. "--spawn-method". */
  flag: string;
  /** Takes a value (`--engine nginx`), or is a switch (`--ssl`). */
  takesValue: boolean;
}

/** Keys the holdfast CLI honours itself, with Passenger's flag names. */
const HONOURED = new Set(['daemonize', 'pid_file']);

/** Passenger's flag names where they are not the key in kebab-case. */
const FLAG_NAMES: Readonly<Record<string, string>> = {
  socket_file: '--socket',
  unlimited_concurrency_paths: '--unlimited-concurrency-path',
  turbocaching: '--disable-turbocaching',
};

/** Passenger's switches: they take no value. */
const SWITCHES = new Set([
  'ssl', 'sticky_sessions', 'load_shell_envvars', 'preload_bundler', 'debugger', 'old_routing', 'debug_nginx_config',
  'disable_log_prefix', 'runtime_check_only', 'disable_security_update_check', 'disable_anonymous_telemetry', 'auto',
  'dont_install_runtime', 'dont_compile_runtime', 'app_support_kuria_protocol', 'abort_websockets_on_process_shutdown',
  'friendly_error_pages', 'turbocaching',
]);

/** The Passenger flags holdfast recognises to explain them (none of them is a holdfast setting). */
export function passengerFlags(): PassengerFlag[] {
  return Object.keys(PASSENGER_RULES)
    .filter((key) => !isSettingKey(key) && !HONOURED.has(key))
    .map((key) => ({ key, flag: FLAG_NAMES[key] ?? `--${key.replace(/_/g, '-')}`, takesValue: !SWITCHES.has(key) }));
}

/** What holdfast makes of Passenger flags given on the command line: problems stop the start. */
export function judgePassengerFlags(given: ReadonlyArray<{ flag: PassengerFlag; value: unknown }>): { problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const { flag, value } of given) {
    const rule = PASSENGER_RULES[flag.key]!;
    const shown = flag.takesValue ? `${flag.flag} ${String(value)}` : flag.flag;
    if (rule.kind === 'noEffect') {
      warnings.push(`the Passenger flag ${flag.flag} has no effect in holdfast (${rule.why})`);
      continue;
    }
    // A switch given on the command line means true ("--disable-turbocaching": turbocaching false).
    const asValue = flag.takesValue ? value : flag.key === 'turbocaching' ? false : true;
    if (rule.harmless?.some((h) => h === asValue || String(h) === String(asValue))) continue;
    problems.push(`holdfast does not support the Passenger flag ${shown} (${rule.hint})`);
  }
  return { problems, warnings };
}
