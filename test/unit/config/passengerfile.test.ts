import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { passengerOptionNames, translatePassengerfile } from '../../../src/config/passengerfile';
import { settingKeys } from '../../../src/config/schema';
import { load, makeAppDir, problems } from './config-fixture';

const FILE = '/app/Passengerfile.json';

// Every option of Passenger Standalone's config_options_list.rb that has a Passengerfile.json name.
const PASSENGER_STANDALONE_OPTIONS = [
  'address', 'port', 'socket_file', 'socket_backlog', 'ssl', 'ssl_certificate', 'ssl_certificate_key', 'ssl_port',
  'daemonize', 'user', 'log_file', 'pid_file', 'stop_timeout', 'instance_registry_dir', 'data_buffer_dir',
  'core_file_descriptor_ulimit', 'environment', 'ruby', 'python', 'nodejs', 'meteor_app_settings', 'app_type',
  'startup_file', 'app_start_command', 'app_support_kuria_protocol', 'spawn_method', 'direct_instance_request_address',
  'static_files_dir', 'restart_dir', 'friendly_error_pages', 'custom_error_page', 'load_shell_envvars', 'preload_bundler',
  'app_file_descriptor_ulimit', 'debugger', 'envvars', 'max_pool_size', 'min_instances', 'pool_idle_time',
  'max_preloader_idle_time', 'force_max_concurrent_requests_per_process', 'start_timeout', 'app_connect_timeout',
  'concurrency_model', 'thread_count', 'memory_limit', 'rolling_restarts', 'resist_deployment_errors', 'max_requests',
  'max_request_time', 'max_request_queue_size', 'sticky_sessions', 'sticky_sessions_cookie_name',
  'sticky_sessions_cookie_attributes', 'vary_turbocache_by_cookie', 'turbocaching', 'old_routing',
  'unlimited_concurrency_paths', 'abort_websockets_on_process_shutdown', 'nginx_bin', 'nginx_version', 'nginx_tarball',
  'nginx_config_template', 'debug_nginx_config', 'disable_security_update_check', 'security_update_check_proxy',
  'disable_anonymous_telemetry', 'anonymous_telemetry_proxy', 'engine', 'log_level', 'disable_log_prefix', 'auto', 'ctls',
  'binaries_url_root', 'runtime_check_only', 'dont_install_runtime', 'dont_compile_runtime',
];

test('every Passenger Standalone option is either a holdfast key or has a rule: none is silently dropped', () => {
  const known = new Set([...settingKeys(), ...passengerOptionNames()]);
  assert.deepEqual(PASSENGER_STANDALONE_OPTIONS.filter((o) => !known.has(o)), []);
  for (const option of passengerOptionNames()) {
    // A value no rule treats as harmless: each option must end up as a warning or a problem.
    const { settings, problems: p, warnings } = translatePassengerfile({ [option]: 'surely-not-harmless' }, FILE);
    const mapped = Object.keys(settings).length > 0;
    assert.ok(mapped || p.length + warnings.length === 1, `${option} is dropped without a word`);
    for (const line of [...p, ...warnings]) assert.ok(line.includes(`"${option}"`) || line.includes(option), `${line} does not name ${option}`);
  }
});

test('keys with the same name and meaning are taken as they are, and Passenger-style numeric strings too', () => {
  const { settings, problems: p } = translatePassengerfile(
    { port: '4000', max_pool_size: 3, rolling_restarts: true, envvars: { A: '1' }, app_start_command: 'ruby app.rb' },
    FILE,
  );
  assert.deepEqual(p, []);
  assert.deepEqual(settings, { port: 4000, max_pool_size: 3, rolling_restarts: true, envvars: { A: '1' }, app_start_command: 'ruby app.rb' });
});

test("Passenger's numeric log levels become holdfast's names", () => {
  const levels = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => translatePassengerfile({ log_level: n }, FILE).settings['log_level']);
  assert.deepEqual(levels, ['fatal', 'error', 'warn', 'info', 'info', 'debug', 'trace', 'trace']);
  assert.equal(translatePassengerfile({ log_level: 'debug' }, FILE).settings['log_level'], 'debug');
  assert.deepEqual(translatePassengerfile({ log_level: 9 }, FILE).problems, [
    `${FILE}: log_level must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent", or a Passenger log level from 0 to 7 (got 9)`,
  ]);
});

test("force_max_concurrent_requests_per_process becomes concurrency, its default -1 keeping the app type's default", () => {
  assert.deepEqual(translatePassengerfile({ force_max_concurrent_requests_per_process: 4 }, FILE).settings, { concurrency: 4 });
  assert.deepEqual(translatePassengerfile({ force_max_concurrent_requests_per_process: -1 }, FILE).settings, {});
  assert.deepEqual(translatePassengerfile({ force_max_concurrent_requests_per_process: -5 }, FILE).problems, [
    `${FILE}: force_max_concurrent_requests_per_process must be an integer >= -1 (got -5)`,
  ]);
  assert.deepEqual(translatePassengerfile({ force_max_concurrent_requests_per_process: 2, concurrency: 3 }, FILE).problems, [
    `${FILE}: set only one of "concurrency" and "force_max_concurrent_requests_per_process" (they mean the same)`,
  ]);
});

test('app_type, ruby, python and spawn_method are taken as they are, in every spelling Passenger accepts', () => {
  for (const app_type of ['node', 'nodejs', 'rack', 'ruby', 'wsgi', 'python']) {
    const t = translatePassengerfile({ app_type, ruby: '/usr/bin/ruby3.1', python: 'python3', spawn_method: 'direct' }, FILE);
    assert.deepEqual([t.problems, t.warnings], [[], []]);
    assert.deepEqual(t.settings, { app_type, ruby: '/usr/bin/ruby3.1', python: 'python3', spawn_method: 'direct' });
  }
});

test('an option with no effect in holdfast is accepted with a warning that says so', () => {
  const { problems: p, warnings } = translatePassengerfile({ engine: 'nginx', nginx_version: '1.24.0' }, FILE);
  assert.deepEqual(p, []);
  assert.deepEqual(warnings, [
    `${FILE}: the Passenger option "engine" has no effect in holdfast (holdfast has its own HTTP proxy, no Nginx)`,
    `${FILE}: the Passenger option "nginx_version" has no effect in holdfast (holdfast has its own HTTP proxy, no Nginx)`,
  ]);
});

test('an unsupported option is rejected by name, unless it asks for what holdfast does anyway', () => {
  assert.deepEqual(translatePassengerfile({ ssl: true, pid_file: '/run/x.pid' }, FILE).problems, [
    `${FILE}: holdfast does not support the Passenger option "ssl" set to true (terminate TLS in a load balancer or reverse proxy in front of holdfast)`,
    `${FILE}: holdfast does not support the Passenger option "pid_file" (pass --pid-file FILE to holdfast start; the pid is also in the instance dir, and \`holdfast status\` shows it)`,
  ]);
  const harmless = translatePassengerfile({ ssl: false, daemonize: false, concurrency_model: 'process' }, FILE);
  assert.deepEqual([harmless.problems, harmless.warnings, harmless.settings], [[], [], {}]);
});

test('a Passengerfile.json becomes a holdfast config, problems and all', () => {
  const dir = makeAppDir({
    'Passengerfile.json': { port: '4000', environment: 'staging', envvars: { A: '1' }, log_level: 5, engine: 'builtin', daemonize: false },
  });
  const config = load(dir, { envvar: ['B=2'] });
  assert.equal(config.port, 4000);
  assert.equal(config.environment, 'staging');
  assert.deepEqual(config.envvars, { A: '1', B: '2' });
  assert.equal(config.logLevel, 'debug');
  assert.deepEqual(config.warnings, [`${join(dir, 'Passengerfile.json')}: the Passenger option "engine" has no effect in holdfast (holdfast has its own HTTP proxy, no Nginx)`]);

  const bad = makeAppDir({ 'Passengerfile.json': { sticky_sessions: true, max_pol_size: 3, port: 'http' } });
  const file = join(bad, 'Passengerfile.json');
  assert.deepEqual(problems(bad), [
    `${file}: holdfast does not support the Passenger option "sticky_sessions" set to true (holdfast routes each request to the least busy process)`,
    `${file}: unknown key "max_pol_size" (did you mean "max_pool_size"?)`,
    `${file}: port must be an integer from 0 to 65535 (got "http")`,
  ]);
});
