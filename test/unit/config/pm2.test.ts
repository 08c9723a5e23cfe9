// PM2's ecosystem file as holdfast's config, and PM2 keys in holdfast.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError } from '../../../src/errors';
import { loadConfig } from '../../../src/config/load';
import { makeAppDir } from './config-fixture';

function problems(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return [...err.problems];
  }
  return assert.fail('expected loading to fail');
}

/** A project dir holding ecosystem.config.js (module.exports = ecosystem) and app/server.js. */
function project(ecosystem: object, file = 'ecosystem.config.js'): { root: string; file: string } {
  const app = makeAppDir({ 'server.js': 'require("http").createServer((q, s) => s.end("hi")).listen(process.env.PORT);\n' }, 'app');
  const root = dirname(app);
  writeFileSync(join(root, file), `module.exports = ${JSON.stringify(ecosystem, null, 2)};\n`);
  return { root, file: join(root, file) };
}

const FULL = {
  apps: [
    {
      name: 'shop-api',
      script: 'server.js',
      cwd: './app',
      instances: 2,
      exec_mode: 'cluster',
      env: { NODE_ENV: 'development', GREETING: 'dev', KEEP: 'yes' },
      env_production: { NODE_ENV: 'production', GREETING: 'prod' },
      env_staging: { GREETING: 'staging' },
      max_memory_restart: '300M',
      kill_timeout: 3500,
      listen_timeout: 8000,
      node_args: '--max-old-space-size=128',
      watch: true,
    },
  ],
};

test('an ecosystem file given as APP_DIR maps the PM2 keys to holdfast settings, its app cwd is the app dir', () => {
  const { root } = project(FULL);
  const config = loadConfig({ appDir: 'ecosystem.config.js', flags: {}, cwd: root });
  assert.equal(config.appDir, join(root, 'app'));
  assert.equal(config.configFile, join(root, 'ecosystem.config.js'));
  assert.equal(config.name, 'shop-api');
  assert.equal(config.startupFile, 'server.js');
  assert.equal(config.appStartCommand, undefined);
  assert.equal(config.minInstances, 2);
  assert.equal(config.maxPoolSize, 2);
  assert.deepEqual(config.envvars, { NODE_ENV: 'production', GREETING: 'prod', KEEP: 'yes', NODE_OPTIONS: '--max-old-space-size=128' });
  assert.equal(config.memoryLimitBytes, 300 * 1024 * 1024);
  assert.equal(config.drainTimeoutMs, 4000, 'kill_timeout 3500 ms, rounded up to whole seconds');
  assert.equal(config.startTimeoutMs, 8000);
  // One notice per key holdfast cannot honour, naming it.
  const notices = config.warnings ?? [];
  assert.equal(notices.length, 2, notices.join('\n'));
  assert.ok(notices.some((n) => n.includes(': watch is not used: holdfast does not watch the files')));
  assert.ok(notices.some((n) => n.includes(': env_staging is not used: holdfast\'s environment is "production"')));
});

test('--config ecosystem.config.js with --environment picks env_<environment>, and flags beat the file', () => {
  const { root, file } = project(FULL);
  const config = loadConfig({ appDir: undefined, flags: { config: file, environment: 'staging', maxPoolSize: '4' }, cwd: '/' });
  assert.equal(config.appDir, join(root, 'app'));
  assert.equal(config.envvars['GREETING'], 'staging');
  assert.equal(config.maxPoolSize, 4);
  assert.ok((config.warnings ?? []).some((n) => n.includes('env_production is not used')));
});

test('args (or a program that is not a Node file) runs through app_start_command, with a notice saying so', () => {
  const { root } = project({ apps: [{ script: 'server.js', cwd: 'app', args: ['--greeting', "it's me"], node_args: ['--no-warnings'] }] });
  const config = loadConfig({ appDir: 'ecosystem.config.js', flags: {}, cwd: root });
  assert.equal(config.appStartCommand, `exec ${process.execPath} --no-warnings server.js --greeting 'it'\\''s me'`);
  assert.equal(config.startupFile, undefined);
  assert.ok((config.warnings ?? []).some((n) => /args runs as app_start_command .*must listen on \$PORT/.test(n)));

  const npm = project({ apps: [{ script: 'npm', args: 'start', instances: 'max', exec_mode: 'fork' }] }, 'ecosystem.config.cjs');
  const c2 = loadConfig({ appDir: npm.file, flags: {}, cwd: '/' });
  assert.equal(c2.appStartCommand, 'exec npm start');
  assert.equal(c2.appDir, npm.root, 'no cwd: the app dir is the file\'s');
  assert.equal(c2.minInstances, cpus().length);
  assert.ok((c2.warnings ?? []).some((n) => /exec_mode "fork": holdfast runs every process behind its own proxy/.test(n)));
});

test('an ecosystem file with several apps needs --name to pick one, and bad values are named', () => {
  const { root, file } = project({ apps: [{ name: 'web', script: 'server.js', cwd: 'app' }, { name: 'worker', script: 'worker.js' }] });
  assert.deepEqual(problems(() => loadConfig({ appDir: file, flags: {}, cwd: root })), [
    `${file}: has 2 apps (web, worker); holdfast runs one per instance: pick it with --name`,
  ]);
  assert.equal(loadConfig({ appDir: file, flags: { name: 'web' }, cwd: root }).appDir, join(root, 'app'));

  const bad = project({ apps: [{ script: 'server.js', cwd: 'app', max_memory_restart: 'lots', instances: 'some', kill_timeout: -1 }] });
  assert.deepEqual(problems(() => loadConfig({ appDir: bad.file, flags: {}, cwd: '/' })), [
    `${bad.file}: instances must be a whole number or "max" (got "some")`,
    `${bad.file}: max_memory_restart must be a size like "300M", "1G" or a number of bytes (got "lots")`,
    `${bad.file}: kill_timeout must be a number of milliseconds (got -1)`,
  ]);
});

test('PM2 keys in holdfast.json get a hint naming the holdfast key', () => {
  const dir = makeAppDir({ 'holdfast.json': { script: 'server.js', exec_mode: 'cluster', env_production: {}, max_memory_restart: '300M', instances: 4 } });
  const file = join(dir, 'holdfast.json');
  assert.deepEqual(problems(() => loadConfig({ appDir: dir, flags: {}, cwd: dir })).sort(), [
    `${file}: unknown key "env_production" (a PM2 key: in holdfast.json the app's variables are "envvars" (one set; start with --environment for NODE_ENV))`,
    `${file}: unknown key "exec_mode" (a PM2 key: holdfast always runs its processes behind its own proxy, like PM2's cluster mode: remove it)`,
    `${file}: unknown key "instances" (a PM2 key: in holdfast.json this is "min_instances" (and "max_pool_size" for the most that may run))`,
    `${file}: unknown key "max_memory_restart" (a PM2 key: in holdfast.json this is "memory_limit", in MB)`,
    `${file}: unknown key "script" (a PM2 key: in holdfast.json this is "startup_file" (a Node file) or "app_start_command" (any other program))`,
  ]);
});

test('an ES module ecosystem file and a missing one get one line each', () => {
  const dir = makeAppDir({ 'app.js': '', 'package.json': { type: 'module' }, 'ecosystem.config.js': 'export default { apps: [{ script: "app.js" }] };\n' });
  const esm = join(dir, 'ecosystem.config.js');
  let p: string[];
  try {
    p = [loadConfig({ appDir: esm, flags: {}, cwd: dir }).startupFile ?? ''];
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    p = [...err.problems];
  }
  // Node 20 may load it (require of an ES module) or refuse: either way no stack and no crash.
  assert.ok(p[0] === 'app.js' || /is an ES module; name it ecosystem\.config\.cjs/.test(p[0]!), p.join('\n'));
  mkdirSync(join(dir, 'sub'));
  assert.deepEqual(problems(() => loadConfig({ appDir: undefined, flags: { config: join(dir, 'sub', 'missing.config.js') }, cwd: dir })), [
    `--config ${join(dir, 'sub', 'missing.config.js')} does not exist`,
  ]);
});
