// Runs the real `bin/holdfast` in a child process, with a registry dir of its own.
import { after } from 'node:test';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../../helpers/paths';

const made: string[] = [];
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The marker a fixture app writes the moment it runs: its presence means something was started. */
export const MARKER = 'app-ran';

/**
 * A temp app dir holding a trivial app.js that writes MARKER and listens on $PORT, plus `files`.
 * World-readable, so that a test may run the CLI as another user.
 */
export function makeApp(files: Record<string, string | object> = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'holdfast-cli-start-'));
  made.push(root);
  chmodSync(root, 0o755);
  const dir = join(root, 'app');
  mkdirSync(dir, { mode: 0o755 });
  writeFileSync(
    join(dir, 'app.js'),
    "require('fs').writeFileSync(require('path').join(__dirname, 'app-ran'), String(process.pid));\n" +
      "require('http').createServer((req, res) => res.end('hi')).listen(process.env.PORT);\n",
  );
  for (const [path, content] of Object.entries(files)) {
    writeFileSync(join(dir, path), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
  return dir;
}

export function appRan(dir: string): boolean {
  return existsSync(join(dir, MARKER));
}

export function runHoldfast(args: string[], options: { cwd?: string; uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const registry = mkdtempSync(join(tmpdir(), 'holdfast-registry-'));
  made.push(registry);
  const env: NodeJS.ProcessEnv = { ...process.env, HOLDFAST_INSTANCE_REGISTRY_DIR: registry, ...options.env };
  delete env['HOLDFAST_DEBUG'];
  if (options.env?.['HOLDFAST_DEBUG']) env['HOLDFAST_DEBUG'] = options.env['HOLDFAST_DEBUG'];
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? tmpdir(),
    env,
    encoding: 'utf8',
    // A bad config must fail at once; a CLI that got as far as starting is killed, not waited for.
    timeout: 15_000,
    killSignal: 'SIGKILL',
    ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {}),
  });
  if (result.error) throw result.error;
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}
