import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { configOptions, flagProperty, optionHelp } from '../../../src/config/options';
import { SCHEMA_FILE, defaultOf, propertySchema, settingKeys } from '../../../src/config/schema';
import { REPO_ROOT } from '../../helpers/paths';
import { load, makeAppDir } from './config-fixture';

test('the schema that ships in the package is valid draft 2020-12 and forbids unknown keys', () => {
  assert.equal(SCHEMA_FILE, join(REPO_ROOT, 'schema/holdfast.schema.json'));
  const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as Record<string, unknown>;
  assert.equal(schema['$schema'], 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(schema['additionalProperties'], false);
  const ajv = new Ajv2020({ strict: true });
  ajv.addKeyword('x-allowed');
  assert.ok(ajv.validateSchema(schema), JSON.stringify(ajv.errors));
});

test('every key has a type, a description, and a default unless it has none by nature', () => {
  // concurrency's default depends on the app type (1 for Rack and WSGI, else 0); app_type's is detected.
  const noDefault = ['concurrency', 'app_type', 'app_start_command', 'startup_file', 'log_file', 'name', 'metrics_address', 'status_address', 'readiness_path', 'health_check_path', 'data_buffer_dir'];
  for (const key of settingKeys()) {
    const p = propertySchema(key);
    assert.ok(p.type, `${key} has no type`);
    assert.ok(p.description.length > 10, `${key} has no description`);
    assert.equal(p.default === undefined, noDefault.includes(key), `${key}: default ${JSON.stringify(p.default)}`);
  }
});

test('the defaults are the ones the spec promises', () => {
  const defaults = Object.fromEntries(settingKeys().filter((k) => defaultOf(k) !== undefined).map((k) => [k, defaultOf(k)]));
  assert.deepEqual(defaults, {
    port: 3000,
    address: '0.0.0.0',
    environment: 'production',
    min_instances: 1,
    max_pool_size: 6,
    pool_idle_time: 300,
    max_requests: 0,
    memory_limit: 0,
    max_request_queue_size: 100,
    max_connections: 0,
    start_timeout: 90,
    drain_timeout: 30,
    probation_time: 3,
    rolling_restarts: false,
    rolling_restart_surge: 1,
    health_check_timeout: 10,
    resist_deployment_errors: false,
    connection_handoff: true,
    static_files: true,
    static_files_dir: 'public',
    static_files_cache_control: 'public, max-age=31536000, immutable',
    request_buffering: true,
    max_request_body_size: 1024,
    max_request_queue_time: 0,
    max_request_time: 0,
    ruby: 'ruby',
    python: 'python3',
    spawn_method: 'smart',
    envvars: {},
    log_level: 'info',
  });
});

test('every key is a flag in kebab-case, and --envvar is the one named after Passenger', () => {
  const flags = Object.fromEntries(configOptions().map((o) => [o.key, o.flag]));
  for (const key of settingKeys()) {
    assert.equal(flags[key], key === 'envvars' ? '--envvar' : `--${key.replace(/_/g, '-')}`);
  }
  assert.equal(flagProperty('--max-request-queue-size'), 'maxRequestQueueSize');
});

test('every flag changes the resolved config', () => {
  // A dir Passenger would call a WSGI app, so that app_type "node" changes something too.
  const dir = makeAppDir({ 'server.js': '', 'passenger_wsgi.py': '' });
  const base = load(dir);
  const values: Record<string, unknown> = {
    port: '1', address: '127.0.0.1', environment: 'development', minInstances: '0', maxPoolSize: '2', concurrency: '3',
    poolIdleTime: '4', maxRequests: '5', memoryLimit: '6', maxRequestQueueSize: '7', maxConnections: '11', startTimeout: '8', drainTimeout: '9', probationTime: '10',
    rollingRestarts: true, resistDeploymentErrors: true, connectionHandoff: false, startupFile: 'server.js', envvar: ['A=1'], logFile: 'x.log',
    logLevel: 'debug', name: 'other', metricsAddress: '127.0.0.1:9464', statusAddress: '127.0.0.1:9465', readinessPath: '/_ready',
    rollingRestartSurge: '0', healthCheckPath: '/health', healthCheckTimeout: '3',
    staticFiles: false, staticFilesDir: 'static', staticFilesCacheControl: 'no-cache', requestBuffering: false, dataBufferDir: '/var/tmp',
    maxRequestBodySize: '1', maxRequestQueueTime: '2', maxRequestTime: '3',
    appType: 'rack', ruby: '/usr/bin/ruby3.1', python: 'python3.11', spawnMethod: 'direct',
  };
  for (const option of configOptions().filter((o) => o.key !== 'app_start_command')) {
    const property = flagProperty(option.flag);
    assert.ok(property in values, `no test value for ${option.flag}`);
    const changed = load(dir, { [property]: values[property] });
    assert.notDeepEqual({ ...changed, warnings: [] }, { ...base, warnings: [] }, `${option.flag} changed nothing`);
  }
  assert.equal(load(dir, { appStartCommand: 'true' }).appStartCommand, 'true');
});

test('flag help shows the default from the schema', () => {
  assert.match(optionHelp('port'), /\(default: 3000\)$/);
  assert.match(optionHelp('max_pool_size'), /\(default: 6\)$/);
  assert.match(optionHelp('log_level'), /\(default: info\)$/);
  assert.doesNotMatch(optionHelp('envvars'), /default/);
});

test('docs/configuration.md documents every key and its flag', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs/configuration.md'), 'utf8');
  for (const option of configOptions()) {
    assert.ok(doc.includes(`\`${option.key}\``), `docs/configuration.md does not name ${option.key}`);
    assert.ok(doc.includes(`\`${option.flag}`), `docs/configuration.md does not name ${option.flag}`);
  }
});
