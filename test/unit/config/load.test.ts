import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { HoldfastError } from '../../../src/errors';
import { loadConfig } from '../../../src/config/load';
import { propertySchema } from '../../../src/config/schema';
import { load, makeAppDir, problems } from './config-fixture';

const isRoot = process.getuid?.() === 0;

test('with no config file and no flags, every key takes its default', () => {
  const dir = makeAppDir({}, 'shop');
  assert.deepEqual(load(dir), {
    appDir: dir,
    configFile: undefined,
    port: 3000,
    address: '0.0.0.0',
    environment: 'production',
    minInstances: 1,
    maxPoolSize: 6,
    appType: 'node',
    appTypeReason: 'no config.ru or passenger_wsgi.py',
    ruby: 'ruby',
    python: 'python3',
    spawnMethod: 'smart',
    concurrency: 0,
    poolIdleTimeMs: 300_000,
    maxRequests: 0,
    memoryLimitBytes: 0,
    maxRequestQueueSize: 100,
    maxConnections: 0,
    startTimeoutMs: 90_000,
    drainTimeoutMs: 30_000,
    probationMs: 3000,
    rollingRestarts: false,
    resistDeploymentErrors: false,
    connectionHandoff: true,
    staticFiles: true,
    staticFilesDir: 'public',
    staticFilesCacheControl: 'public, max-age=31536000, immutable',
    requestBuffering: true,
    dataBufferDir: undefined,
    maxRequestBodyBytes: 1024 * 1024 * 1024,
    maxRequestQueueTimeMs: 0,
    maxRequestTimeMs: 0,
    appStartCommand: undefined,
    startupFile: undefined,
    envvars: {},
    logFile: undefined,
    logLevel: 'info',
    name: 'shop',
    metricsAddress: undefined,
    statusAddress: undefined,
    readinessPath: undefined,
    rollingRestartSurge: 1,
    healthCheckPath: undefined,
    healthCheckTimeoutMs: 10_000,
    warnings: [],
  });
});

test('converts seconds to milliseconds and megabytes to bytes', () => {
  const dir = makeAppDir({ 'holdfast.json': { pool_idle_time: 7, start_timeout: 5, drain_timeout: 2, memory_limit: 300 } });
  const config = load(dir);
  assert.equal(config.poolIdleTimeMs, 7000);
  assert.equal(config.startTimeoutMs, 5000);
  assert.equal(config.drainTimeoutMs, 2000);
  assert.equal(config.memoryLimitBytes, 300 * 1024 * 1024);
});

// key, a value in the file, the same key's flag with another value, the resolved field, and both resolved values
const PRECEDENCE: Array<[string, unknown, string, string, keyof ReturnType<typeof load>, unknown, unknown]> = [
  ['port', 4000, 'port', '5000', 'port', 4000, 5000],
  ['address', '127.0.0.1', 'address', '::1', 'address', '127.0.0.1', '::1'],
  ['environment', 'staging', 'environment', 'development', 'environment', 'staging', 'development'],
  ['min_instances', 2, 'minInstances', '3', 'minInstances', 2, 3],
  ['max_pool_size', 8, 'maxPoolSize', '9', 'maxPoolSize', 8, 9],
  ['concurrency', 4, 'concurrency', '5', 'concurrency', 4, 5],
  ['pool_idle_time', 60, 'poolIdleTime', '61', 'poolIdleTimeMs', 60_000, 61_000],
  ['max_requests', 1000, 'maxRequests', '1001', 'maxRequests', 1000, 1001],
  ['memory_limit', 512, 'memoryLimit', '256', 'memoryLimitBytes', 512 * 1024 * 1024, 256 * 1024 * 1024],
  ['max_request_queue_size', 0, 'maxRequestQueueSize', '10', 'maxRequestQueueSize', 0, 10],
  ['start_timeout', 10, 'startTimeout', '20', 'startTimeoutMs', 10_000, 20_000],
  ['drain_timeout', 0, 'drainTimeout', '5', 'drainTimeoutMs', 0, 5_000],
  ['probation_time', 0, 'probationTime', '7', 'probationMs', 0, 7_000],
  ['rolling_restart_surge', 0, 'rollingRestartSurge', '2', 'rollingRestartSurge', 0, 2],
  ['health_check_path', '/up', 'healthCheckPath', '/health', 'healthCheckPath', '/up', '/health'],
  ['health_check_timeout', 5, 'healthCheckTimeout', '7', 'healthCheckTimeoutMs', 5_000, 7_000],
  ['rolling_restarts', true, 'rollingRestarts', 'false', 'rollingRestarts', true, false],
  ['resist_deployment_errors', false, 'resistDeploymentErrors', 'true', 'resistDeploymentErrors', false, true],
  ['app_start_command', 'python3 app.py', 'appStartCommand', 'ruby app.rb', 'appStartCommand', 'python3 app.py', 'ruby app.rb'],
  ['log_level', 'debug', 'logLevel', 'warn', 'logLevel', 'debug', 'warn'],
  ['name', 'from-file', 'name', 'from-flag', 'name', 'from-file', 'from-flag'],
];

test('a key in holdfast.json overrides its default, and its flag overrides the file', () => {
  for (const [key, fileValue, flag, flagValue, field, fromFile, fromFlag] of PRECEDENCE) {
    const dir = makeAppDir({ 'holdfast.json': { [key]: fileValue } });
    assert.deepEqual(load(dir)[field], fromFile, `${key} from the file`);
    assert.deepEqual(load(dir, { [flag]: flagValue })[field], fromFlag, `${key} from --${flag}`);
  }
});

test('a --no-... switch turns off what the file turned on', () => {
  const dir = makeAppDir({ 'holdfast.json': { rolling_restarts: true, resist_deployment_errors: true } });
  const config = load(dir, { rollingRestarts: false, resistDeploymentErrors: false });
  assert.equal(config.rollingRestarts, false);
  assert.equal(config.resistDeploymentErrors, false);
});

test('--envvar flags are merged over the file envvars one variable at a time', () => {
  const dir = makeAppDir({ 'holdfast.json': { envvars: { A: 'file', B: 'file' } } });
  assert.deepEqual(load(dir, { envvar: ['B=flag', 'C=flag'] }).envvars, { A: 'file', B: 'flag', C: 'flag' });
});

test('--envvar keeps everything after the first "=" as the value, and allows an empty value', () => {
  const dir = makeAppDir();
  assert.deepEqual(load(dir, { envvar: ['URL=a=b&c=d', 'EMPTY='] }).envvars, { URL: 'a=b&c=d', EMPTY: '' });
});

test('--envvar without a "=" is rejected naming the flag', () => {
  assert.deepEqual(problems(makeAppDir(), { envvar: ['OK=1', 'NOVALUE'] }), ['--envvar must be NAME=VALUE (got "NOVALUE")']);
});

test('reads Passengerfile.json only when the app dir has no holdfast.json', () => {
  const onlyPassenger = makeAppDir({ 'Passengerfile.json': { port: 4000 } });
  assert.equal(load(onlyPassenger).port, 4000);
  assert.equal(load(onlyPassenger).configFile, join(onlyPassenger, 'Passengerfile.json'));

  const both = makeAppDir({ 'holdfast.json': { port: 5000 }, 'Passengerfile.json': { port: 4000, ssl: true } });
  const config = load(both);
  assert.equal(config.port, 5000);
  assert.equal(config.configFile, join(both, 'holdfast.json'));
  assert.deepEqual(config.warnings, [`${join(both, 'Passengerfile.json')} is not read because ${join(both, 'holdfast.json')} exists`]);
});

test('--config reads the named file, relative to the current dir, instead of the app dir files', () => {
  const dir = makeAppDir({ 'holdfast.json': { port: 5000 }, 'conf/other.json': { port: 6000 } });
  const config = loadConfig({ appDir: dir, flags: { config: 'conf/other.json' }, cwd: dir });
  assert.equal(config.port, 6000);
  assert.equal(config.configFile, join(dir, 'conf/other.json'));
});

test('--config naming a Passengerfile.json reads it with Passenger options', () => {
  const dir = makeAppDir({ 'elsewhere/Passengerfile.json': { port: '4000', engine: 'builtin' } });
  const config = load(dir, { config: join(dir, 'elsewhere/Passengerfile.json') });
  assert.equal(config.port, 4000);
  assert.equal(config.warnings?.length, 1);
});

test('--config naming a missing file is an error naming the flag', () => {
  const dir = makeAppDir();
  assert.deepEqual(problems(dir, { config: 'nope.json' }), [`--config ${join(dir, 'nope.json')} does not exist`]);
});

test('the app dir defaults to the current dir and the instance name to its base name, made a valid name', () => {
  const dir = makeAppDir({}, 'my app (v2)');
  const config = loadConfig({ flags: {}, cwd: dir });
  assert.equal(config.appDir, dir);
  assert.equal(config.name, 'my-app-v2-');
});

test('the app dir is kept as given, not resolved through a symlink', () => {
  const release = makeAppDir({}, 'release-1');
  const current = join(dirname(release), 'current');
  symlinkSync(release, current);
  const config = loadConfig({ appDir: 'current', flags: {}, cwd: dirname(release) });
  assert.equal(config.appDir, current);
  assert.equal(config.name, 'current');
});

test('a log_file in the config file is relative to the file, one on the command line to the current dir', () => {
  const dir = makeAppDir({ 'holdfast.json': { log_file: 'log/holdfast.log' } });
  assert.equal(load(dir).logFile, join(dir, 'log/holdfast.log'));
  const config = loadConfig({ appDir: dir, flags: { logFile: 'x.log' }, cwd: '/var/tmp' });
  assert.equal(config.logFile, '/var/tmp/x.log');
});

test('startup_file is kept as given, relative to the app dir, once it was found readable', () => {
  const dir = makeAppDir({ 'lib/server.js': '', 'holdfast.json': { startup_file: 'lib/server.js' } });
  assert.equal(load(dir).startupFile, 'lib/server.js');
});

test('a missing app dir is an HF_APP_DIR error', () => {
  const dir = join(makeAppDir(), 'gone');
  assert.throws(() => load(dir), (err: unknown) => {
    assert.ok(err instanceof HoldfastError);
    assert.equal(err.code, 'HF_APP_DIR');
    assert.equal(err.message, `app directory ${dir} does not exist`);
    return true;
  });
});

test('an app dir that is a file is an HF_APP_DIR error', () => {
  const file = join(makeAppDir({ 'file.txt': 'x' }), 'file.txt');
  assert.throws(() => loadConfig({ appDir: file, flags: {}, cwd: '/' }), {
    code: 'HF_APP_DIR',
    message: `app directory ${file} is not a directory`,
  });
});

test('a value of the wrong type in the file names the file, the key, what is allowed and the value', () => {
  const dir = makeAppDir({
    'holdfast.json': {
      port: '80',
      address: 7,
      max_pool_size: -2,
      rolling_restarts: 'yes',
      log_level: 'loud',
      envvars: { A: 1 },
      name: 'has space',
    },
  });
  const file = join(dir, 'holdfast.json');
  assert.deepEqual(problems(dir).sort(), [
    `${file}: address must be a non-empty string (got 7)`,
    `${file}: envvars.A must be a string (got 1)`,
    `${file}: log_level must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent" (got "loud")`,
    `${file}: max_pool_size must be an integer from 1 to 1000 (got -2)`,
    `${file}: name must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit (got "has space")`,
    `${file}: port must be an integer from 0 to 65535 (got "80")`,
    `${file}: rolling_restarts must be true or false (got "yes")`,
  ]);
});

test('every integer key rejects a negative number, a fraction and a string', () => {
  const integers: Array<[string, string, number]> = [
    ['port', 'port', 0],
    ['min_instances', 'min-instances', 0],
    ['max_pool_size', 'max-pool-size', 1],
    ['concurrency', 'concurrency', 0],
    ['pool_idle_time', 'pool-idle-time', 0],
    ['max_requests', 'max-requests', 0],
    ['memory_limit', 'memory-limit', 0],
    ['max_request_queue_size', 'max-request-queue-size', 0],
    ['start_timeout', 'start-timeout', 1],
    ['drain_timeout', 'drain-timeout', 0],
    ['probation_time', 'probation-time', 0],
  ];
  for (const [key, flag, minimum] of integers) {
    const property = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const allowed = `an integer from ${minimum} to ${propertySchema(key).maximum}`;
    const dir = makeAppDir({ 'holdfast.json': { [key]: minimum - 1 } });
    assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: ${key} must be ${allowed} (got ${minimum - 1})`]);
    assert.deepEqual(problems(makeAppDir(), { [property]: '2.5' }), [`--${flag} must be ${allowed} (got 2.5)`]);
    assert.deepEqual(problems(makeAppDir(), { [property]: 'abc' }), [`--${flag} must be ${allowed} (got "abc")`]);
    assert.deepEqual(problems(makeAppDir(), { [property]: '' }), [`--${flag} must be ${allowed} (got "")`]);
  }
});

test('a port above 65535 is rejected', () => {
  assert.deepEqual(problems(makeAppDir(), { port: '70000' }), ['--port must be an integer from 0 to 65535 (got 70000)']);
});

test('port 0 (any free port) is accepted', () => {
  assert.equal(load(makeAppDir(), { port: '0' }).port, 0);
});

test('an unknown key is named, with the key it most likely meant', () => {
  const dir = makeAppDir({ 'holdfast.json': { max_pool: 3, maxRequests: 5, 'start-timeout': 3, frobnicate: true } });
  const file = join(dir, 'holdfast.json');
  assert.deepEqual(problems(dir).sort(), [
    `${file}: unknown key "frobnicate"`,
    `${file}: unknown key "maxRequests" (did you mean "max_requests"?)`,
    `${file}: unknown key "max_pool" (did you mean "max_pool_size"?)`,
    `${file}: unknown key "start-timeout" (did you mean "start_timeout"?)`,
  ]);
});

test('a Passenger option in holdfast.json is named as one, with what holdfast makes of it', () => {
  const dir = makeAppDir({ 'holdfast.json': { ssl: true, force_max_concurrent_requests_per_process: 4 } });
  const file = join(dir, 'holdfast.json');
  assert.deepEqual(problems(dir), [
    `${file}: unknown key "ssl" (a Passenger option holdfast does not support: terminate TLS in a load balancer or reverse proxy in front of holdfast)`,
    `${file}: unknown key "force_max_concurrent_requests_per_process" (in holdfast.json this is "concurrency")`,
  ]);
});

test('"$schema" is allowed in the file, for editors', () => {
  const dir = makeAppDir({ 'holdfast.json': { $schema: './node_modules/holdfast/schema/holdfast.schema.json', port: 1234 } });
  assert.equal(load(dir).port, 1234);
});

test('broken JSON is reported with its line and column', () => {
  const dir = makeAppDir({ 'holdfast.json': '{\n  "port": 3000,\n  "max_pool_size" 4\n}\n' });
  assert.deepEqual(problems(dir), [
    `${join(dir, 'holdfast.json')}: invalid JSON at line 3 column 19: expected ":" after property name "max_pool_size" (got "4")`,
  ]);
});

test('a trailing comma, a comment and an empty file are broken JSON too', () => {
  const cases: Array<[string, string]> = [
    ['{"port": 3000,}', 'line 1 column 15: trailing comma before "}"'],
    ['{\n  // the port\n  "port": 3000\n}', 'line 2 column 3: comments are not allowed in JSON'],
    ['', 'line 1 column 1: expected a value (got the end of the file)'],
  ];
  for (const [text, expected] of cases) {
    const dir = makeAppDir({ 'holdfast.json': text });
    assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: invalid JSON at ${expected}`]);
  }
});

test('a key given twice is an error rather than the last one silently winning', () => {
  const dir = makeAppDir({ 'holdfast.json': '{\n  "port": 3000,\n  "port": 4000\n}' });
  assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: key "port" is given twice (again at line 3 column 3)`]);
});

test('a config file that is not a JSON object is rejected', () => {
  const dir = makeAppDir({ 'holdfast.json': '[1, 2]' });
  assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: must be a JSON object of settings, like {"port": 3000} (got an array)`]);
});

test('a holdfast.json that is a directory is rejected', () => {
  const dir = makeAppDir();
  mkdirSync(join(dir, 'holdfast.json'));
  assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: is a directory, not a config file`]);
});

test('an unreadable holdfast.json is rejected', { skip: isRoot && 'root reads every file' }, () => {
  const dir = makeAppDir({ 'holdfast.json': '{}' });
  chmodSync(join(dir, 'holdfast.json'), 0o000);
  assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: cannot be read (permission denied)`]);
});

test('min_instances above max_pool_size names both values and where each came from', () => {
  const dir = makeAppDir({ 'holdfast.json': { max_pool_size: 2 } });
  assert.deepEqual(problems(dir, { minInstances: '4' }), [
    `min_instances (4, from --min-instances) must not exceed max_pool_size (2, from ${join(dir, 'holdfast.json')})`,
  ]);
  const other = makeAppDir({ 'holdfast.json': { min_instances: 8 } });
  assert.deepEqual(problems(other), [
    `min_instances (8, from ${join(other, 'holdfast.json')}) must not exceed max_pool_size (6, the default)`,
  ]);
});

test('min_instances equal to max_pool_size is fine', () => {
  const config = load(makeAppDir(), { minInstances: '3', maxPoolSize: '3' });
  assert.equal(config.minInstances, 3);
  assert.equal(config.maxPoolSize, 3);
});

test('an invalid max_pool_size is reported once, not again as smaller than min_instances', () => {
  assert.deepEqual(problems(makeAppDir(), { maxPoolSize: 'abc', minInstances: '4' }), ['--max-pool-size must be an integer from 1 to 1000 (got "abc")']);
});

test('a startup_file that does not exist names the file it looked for', () => {
  const dir = makeAppDir({ 'holdfast.json': { startup_file: 'server.js' } });
  assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: startup_file ${join(dir, 'server.js')} does not exist`]);
  assert.deepEqual(problems(makeAppDir({}, 'flagged'), { startupFile: 'main.js' }).map((p) => p.replace(/\/\S+\/flagged/, 'DIR')), [
    '--startup-file DIR/main.js does not exist',
  ]);
});

test('a startup_file that is a directory is rejected', () => {
  const dir = makeAppDir({ 'lib/x.js': '' });
  assert.deepEqual(problems(dir, { startupFile: 'lib' }), [`--startup-file ${join(dir, 'lib')} is not a file`]);
});

test('an unreadable startup_file is rejected', { skip: isRoot && 'root reads every file (the CLI test runs as nobody)' }, () => {
  const dir = makeAppDir({ 'app.js': '' });
  chmodSync(join(dir, 'app.js'), 0o000);
  assert.deepEqual(problems(dir, { startupFile: 'app.js' }), [`--startup-file ${join(dir, 'app.js')} is not readable (permission denied)`]);
});

test('startup_file and app_start_command cannot both be set', () => {
  const dir = makeAppDir({ 'app.js': '', 'holdfast.json': { startup_file: 'app.js' } });
  assert.deepEqual(problems(dir, { appStartCommand: 'python3 app.py' }), [
    `startup_file (from ${join(dir, 'holdfast.json')}) and app_start_command (from --app-start-command) cannot both be set: app_start_command starts the app by itself`,
  ]);
});

test('every problem of the file and the flags is reported at once', () => {
  const dir = makeAppDir({ 'holdfast.json': { max_pool_size: 0, port: 'x', nope: 1 } });
  const all = problems(dir, { concurrency: '-1', logLevel: 'chatty' });
  assert.equal(all.length, 5);
  assert.ok(all.every((p) => !p.includes('\n')), 'one line each');
});

test('an envvars name with "=" in the file is rejected', () => {
  const dir = makeAppDir({ 'holdfast.json': { envvars: { 'A=B': 'x' } } });
  assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: envvars: the variable name "A=B" must not be empty or contain "=" or a NUL byte`]);
});

test('envvars that is not an object is rejected', () => {
  const dir = makeAppDir({ 'holdfast.json': { envvars: ['A=1'] } });
  assert.deepEqual(problems(dir), [`${join(dir, 'holdfast.json')}: envvars must be an object of NAME: "value" strings (got ["A=1"])`]);
});

test('resist_deployment_errors without rolling_restarts starts with a warning', () => {
  const config = load(makeAppDir(), { resistDeploymentErrors: true });
  assert.equal(config.warnings?.length, 1);
  assert.match(config.warnings![0]!, /^resist_deployment_errors is on without rolling_restarts/);
  assert.deepEqual(load(makeAppDir(), { resistDeploymentErrors: true, rollingRestarts: true }).warnings, []);
});

test('a flag loadConfig does not know is a bug, not a user error', () => {
  assert.throws(() => load(makeAppDir(), { frobnicate: '1' }), { code: 'HF_INTERNAL' });
});

test('the name of an app dir at the root of the file system falls back to "app"', () => {
  assert.equal(basename('/'), '');
  assert.equal(loadConfig({ appDir: '/', flags: {}, cwd: '/' }).name, 'app');
});

test('readiness_path must be an absolute path without a query', () => {
  const dir = makeAppDir();
  assert.equal(load(dir, { readinessPath: '/_holdfast/ready' }).readinessPath, '/_holdfast/ready');
  assert.throws(() => load(dir, { readinessPath: 'ready' }), /--readiness-path must be an absolute path/);
  assert.throws(() => load(dir, { readinessPath: '/ready?x=1' }), /--readiness-path must be an absolute path/);
});
