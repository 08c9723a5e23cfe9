// The install story of a new user: from a clone, `npm pack` builds and packs, and
// `npm install -g --prefix DIR ./holdfast-*.tgz` gives a working `holdfast` with no npm warning.
// It needs the npm registry for holdfast's dependencies (npm's cache makes it quick after the first run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { get, pidAlive, waitFor } from '../helpers/holdfast';
import { REPO_ROOT, fixtureApp } from '../helpers/paths';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment of a fresh shell: none of the npm_* variables that `npm test` hands its children. */
function freshEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD') env[k] = v;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], cwd: string, timeoutMs: number, env = freshEnv()): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Docs an operator reads; performance.md and upstream-client.md are about this repository's benchmarks. */
const OPERATOR_DOCS = ['README.md', ...readdirSync(join(REPO_ROOT, 'docs')).filter((f) => !['performance.md', 'upstream-client.md'].includes(f)).map((f) => `docs/${f}`)];

test('npm pack then npm install -g of the tarball gives a working holdfast command, with no npm warning', { timeout: 900_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'hf-pack-'));
  const registry = join(work, 'registry');
  let hfPid: number | undefined;
  try {
    // A clone: the files git knows (committed or not, never ignored ones), with the clone's node_modules.
    const clone = join(work, 'clone');
    const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: REPO_ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of files) {
      if (!existsSync(join(REPO_ROOT, f))) continue; // deleted, not yet committed
      mkdirSync(dirname(join(clone, f)), { recursive: true });
      cpSync(join(REPO_ROOT, f), join(clone, f));
    }
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(clone, 'node_modules'));
    assert.ok(!existsSync(join(clone, 'dist')), 'the clone starts unbuilt');

    const pack = await run('npm', ['pack', '--pack-destination', work], clone, 300_000);
    assert.equal(pack.code, 0, pack.stderr);
    const tgz = readdirSync(work).find((f) => /^holdfast-.*\.tgz$/.test(f));
    assert.ok(tgz, `npm pack made a tarball: ${pack.stdout}`);

    const listed = execFileSync('tar', ['tzf', join(work, tgz)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(/^package\//, ''));
    for (const f of ['bin/holdfast', 'dist/src/cli/main.js', 'dist/src/spawn/node-hook.js', 'schema/holdfast.schema.json', 'README.md', 'package.json']) {
      assert.ok(listed.includes(f), `${f} is in the tarball`);
    }
    // The Ruby and Python loaders run from src/spawn/loaders; no other source and no test ships.
    assert.ok(!listed.some((f) => f.startsWith('dist/test/') || (f.startsWith('src/') && !f.startsWith('src/spawn/loaders/')) || f.startsWith('test/')), 'no tests and no TypeScript sources in the tarball');
    // Every file of this repository that the operator docs point at ships with the package.
    const cited = new Set<string>();
    for (const doc of OPERATOR_DOCS) {
      const text = readFileSync(join(REPO_ROOT, doc), 'utf8');
      for (const m of text.matchAll(/\b((?:scripts|contrib|schema|docs|examples)\/[A-Za-z0-9_.\/-]*[A-Za-z0-9_])/g)) {
        if (existsSync(join(REPO_ROOT, m[1]!)) && !m[1]!.endsWith('/')) cited.add(m[1]!);
      }
    }
    assert.ok(cited.has('scripts/verify-systemd.sh') && cited.has('contrib/systemd/holdfast.service'));
    for (const f of cited) assert.ok(listed.some((l) => l === f || l.startsWith(`${f}/`)), `${f}, cited by the docs, is in the tarball`);

    const prefix = join(work, 'prefix');
    const install = await run('npm', ['install', '-g', '--prefix', prefix, `./${tgz}`], work, 300_000);
    assert.equal(install.code, 0, install.stderr);
    assert.doesNotMatch(install.stderr, /warn/i, `npm install -g printed a warning:\n${install.stderr}`);
    const bin = join(prefix, 'bin', 'holdfast');

    const version = await run(bin, ['--version'], work, 30_000);
    assert.equal(version.code, 0, version.stderr);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(version.stdout.trim(), pkg.version);

    // The installed command serves an app.
    const hf = spawn(bin, ['start', fixtureApp('hello'), '--port', '0', '--address', '127.0.0.1', '--name', 'packed'], {
      env: freshEnv({ HOLDFAST_INSTANCE_REGISTRY_DIR: registry }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    hfPid = hf.pid;
    let out = '';
    hf.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    const exited = new Promise<number | null>((r) => hf.once('exit', (code) => r(code)));
    const lines = (): Array<Record<string, unknown>> =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const port = await waitFor('the installed holdfast to serve', () => lines().find((l) => typeof l['port'] === 'number')?.['port'] as number | undefined, 30_000);
    const appPid = await waitFor('its app process', () => lines().find((l) => /ready/.test(String(l['msg'])))?.['app_pid'] as number | undefined, 30_000);
    const reply = await get(`http://127.0.0.1:${port}/`);
    assert.equal(reply.status, 200);
    hf.kill('SIGTERM');
    assert.equal(await exited, 0);
    hfPid = undefined;
    await waitFor('the app process to go', () => !pidAlive(appPid), 10_000);

    if (existsSync('/usr/bin/systemd-analyze')) {
      // The unit, verified with the holdfast this install made.
      const verify = await run('sh', [join(REPO_ROOT, 'scripts/verify-systemd.sh')], REPO_ROOT, 120_000, freshEnv({ HOLDFAST_BIN: bin }));
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    }
  } finally {
    if (hfPid !== undefined && pidAlive(hfPid)) process.kill(hfPid, 'SIGKILL');
    rmSync(work, { recursive: true, force: true });
  }
});
