// `holdfast start` with bad input: one line per problem on stderr, exit 1, no stack, nothing started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appRan, makeApp, runHoldfast, type CliResult } from './run-cli';

function assertRefused(result: CliResult, dir: string, expectedLines: string[]): void {
  assert.equal(result.signal, null, 'holdfast did not exit by itself (it may have started)');
  assert.deepEqual(result.stderr.split('\n').filter(Boolean), expectedLines);
  assert.equal(result.status, 1);
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'stack trace on stderr');
  assert.equal(result.stdout, '');
  assert.equal(appRan(dir), false, 'an app process was started');
}

test('a value of the wrong type in holdfast.json names the file, the key, what is allowed and the value', () => {
  const dir = makeApp({ 'holdfast.json': { port: 'eighty' } });
  assertRefused(runHoldfast(['start', dir]), dir, [
    `holdfast: ${join(dir, 'holdfast.json')}: port must be an integer from 0 to 65535 (got "eighty")`,
  ]);
});

test('an unknown key in holdfast.json is named with the key it most likely meant', () => {
  const dir = makeApp({ 'holdfast.json': { max_pool: 3 } });
  assertRefused(runHoldfast(['start', dir]), dir, [
    `holdfast: ${join(dir, 'holdfast.json')}: unknown key "max_pool" (did you mean "max_pool_size"?)`,
  ]);
});

test('broken JSON is reported with its line and column', () => {
  const dir = makeApp({ 'holdfast.json': '{\n  "port": 3000\n  "max_pool_size": 2\n}\n' });
  assertRefused(runHoldfast(['start', dir]), dir, [
    `holdfast: ${join(dir, 'holdfast.json')}: invalid JSON at line 3 column 3: expected "," or "}" after the value of "port" (got "\\"")`,
  ]);
});

test('min_instances above max_pool_size names both values and where each came from', () => {
  const dir = makeApp({ 'holdfast.json': { max_pool_size: 2 } });
  assertRefused(runHoldfast(['start', dir, '--min-instances', '4']), dir, [
    `holdfast: min_instances (4, from --min-instances) must not exceed max_pool_size (2, from ${join(dir, 'holdfast.json')})`,
  ]);
});

test('a missing app dir is refused', () => {
  const dir = makeApp();
  const missing = join(dir, 'missing');
  assertRefused(runHoldfast(['start', missing]), dir, [`holdfast: app directory ${missing} does not exist`]);
});

test('an app dir that is a file is refused', () => {
  const dir = makeApp();
  assertRefused(runHoldfast(['start', join(dir, 'app.js')]), dir, [`holdfast: app directory ${join(dir, 'app.js')} is not a directory`]);
});

test('a negative number, on the command line or in the file, is refused', () => {
  const dir = makeApp();
  assertRefused(runHoldfast(['start', dir, '--max-pool-size', '-2']), dir, ['holdfast: --max-pool-size must be an integer from 1 to 1000 (got -2)']);
  const withFile = makeApp({ 'holdfast.json': { max_pool_size: -2 } });
  assertRefused(runHoldfast(['start', withFile]), withFile, [
    `holdfast: ${join(withFile, 'holdfast.json')}: max_pool_size must be an integer from 1 to 1000 (got -2)`,
  ]);
});

test('a flag value that is not a number is refused naming the flag', () => {
  const dir = makeApp();
  assertRefused(runHoldfast(['start', dir, '--max-pool-size', 'abc']), dir, ['holdfast: --max-pool-size must be an integer from 1 to 1000 (got "abc")']);
});

test('a log level that does not exist is refused with the ones that do', () => {
  const dir = makeApp();
  assertRefused(runHoldfast(['start', dir, '--log-level', 'loud']), dir, [
    'holdfast: --log-level must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent" (got "loud")',
  ]);
});

test('an unknown flag gets commander\'s one-line error', () => {
  const dir = makeApp();
  assertRefused(runHoldfast(['start', dir, '--max-pool', '3']), dir, ["error: unknown option '--max-pool'"]);
});

test('an unreadable startup file is refused', () => {
  const dir = makeApp({ 'server.js': 'require("./app.js");\n' });
  chmodSync(join(dir, 'server.js'), 0o000);
  // root reads every file: run as nobody, for whom the file is unreadable as for anyone.
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  assertRefused(runHoldfast(['start', dir, '--startup-file', 'server.js'], { ...asNobody, cwd: dir }), dir, [
    `holdfast: --startup-file ${join(dir, 'server.js')} is not readable (permission denied)`,
  ]);
});

test('a startup file that does not exist is refused', () => {
  const dir = makeApp({ 'holdfast.json': { startup_file: 'server.js' } });
  assertRefused(runHoldfast(['start', dir]), dir, [
    `holdfast: ${join(dir, 'holdfast.json')}: startup_file ${join(dir, 'server.js')} does not exist`,
  ]);
});

test('every problem of the file and the flags is printed at once, one line each', () => {
  const dir = makeApp({ 'holdfast.json': { port: -1, rolling_restarts: 'yes', max_pol_size: 2 } });
  const file = join(dir, 'holdfast.json');
  const result = runHoldfast(['start', dir, '--concurrency', 'lots']);
  assert.deepEqual(result.stderr.split('\n').filter(Boolean).sort(), [
    `holdfast: --concurrency must be an integer from 0 to 10000 (got "lots")`,
    `holdfast: ${file}: port must be an integer from 0 to 65535 (got -1)`,
    `holdfast: ${file}: rolling_restarts must be true or false (got "yes")`,
    `holdfast: ${file}: unknown key "max_pol_size" (did you mean "max_pool_size"?)`,
  ]);
  assertRefused(result, dir, result.stderr.split('\n').filter(Boolean));
});

test('a Passenger option holdfast does not support is refused by name', () => {
  const dir = makeApp({ 'Passengerfile.json': { port: '4000', ssl: true, ssl_certificate: '/etc/cert.pem' } });
  const file = join(dir, 'Passengerfile.json');
  assertRefused(runHoldfast(['start', dir]), dir, [
    `holdfast: ${file}: holdfast does not support the Passenger option "ssl" set to true (terminate TLS in a load balancer or reverse proxy in front of holdfast)`,
    `holdfast: ${file}: holdfast does not support the Passenger option "ssl_certificate" (terminate TLS in a load balancer or reverse proxy in front of holdfast)`,
  ]);
});

test('a --config file that does not exist is refused naming the flag', () => {
  const dir = makeApp();
  assertRefused(runHoldfast(['start', dir, '--config', 'nope.json'], { cwd: dir }), dir, [`holdfast: --config ${join(dir, 'nope.json')} does not exist`]);
});

test('a log file that cannot be created is refused before anything starts', () => {
  const dir = makeApp();
  writeFileSync(join(dir, 'not-a-dir'), '');
  const logFile = join(dir, 'not-a-dir', 'holdfast.log');
  assertRefused(runHoldfast(['start', dir, '--log-file', logFile]), dir, [`holdfast: log_file ${logFile} cannot be opened for writing (ENOTDIR)`]);
});

test('start --help lists every flag with its default and exits 0', () => {
  const result = runHoldfast(['start', '--help']);
  assert.equal(result.status, 0);
  const help = result.stdout.replace(/\s+/g, ' ');
  for (const flag of [
    '--port <NUMBER>', '--address <HOST>', '--environment <NAME>', '--min-instances <NUMBER>', '--max-pool-size <NUMBER>',
    '--concurrency <NUMBER>', '--pool-idle-time <SECONDS>', '--max-requests <NUMBER>', '--memory-limit <MB>',
    '--max-request-queue-size <NUMBER>', '--start-timeout <SECONDS>', '--drain-timeout <SECONDS>', '--probation-time <SECONDS>', '--rolling-restarts',
    '--no-rolling-restarts', '--resist-deployment-errors', '--no-resist-deployment-errors', '--app-start-command <COMMAND>',
    '--startup-file <FILE>', '--envvar <NAME=VALUE>', '--log-file <FILE>', '--log-level <LEVEL>', '--name <NAME>', '--config <FILE>',
  ]) {
    assert.ok(help.includes(flag), `help does not list ${flag}`);
  }
  for (const d of ['(default: 3000)', '(default: 0.0.0.0)', '(default: production)', '(default: 6)', '(default: 90)', '(default: 30)', '(default: info)']) {
    assert.ok(help.includes(d), `help does not show ${d}`);
  }
});
