// A deploy under load, shared by the integration and soak tests.
import assert from 'node:assert/strict';
import type { AppDir } from './apps';
import { get, pidAlive } from './holdfast';
import type { Holdfast } from './holdfast';
import { runLoad } from './load';
import type { LoadResult } from './load';

/** Runs load for the whole of fn, then returns both results. */
export async function underLoad<T>(hf: Holdfast, connections: number, fn: () => Promise<T>): Promise<{ value: T; load: LoadResult }> {
  const ac = new AbortController();
  const load = runLoad({ url: hf.url('/'), connections, durationMs: 120_000, signal: ac.signal, countBodies: true });
  await new Promise((r) => setTimeout(r, 500));
  try {
    const value = await fn();
    await new Promise((r) => setTimeout(r, 500));
    return { value, load: await (ac.abort(), load) };
  } finally {
    ac.abort();
    await load;
  }
}

export async function goodRollingDeploy(hf: Holdfast, app: Pick<AppDir, 'deploy'>, version: string): Promise<LoadResult> {
  const before = (await hf.status()).groups[0]!.processes.map((p) => p.pid);
  const { value: r, load } = await underLoad(hf, 16, async () => {
    app.deploy('good', version);
    return hf.cli(['restart', '--rolling']);
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const after = (await hf.status()).groups[0]!.processes;
  assert.equal(after.length, before.length);
  assert.ok(after.every((p) => !before.includes(p.pid)), 'every process replaced');
  assert.ok(before.every((p) => !pidAlive(p)));
  assert.match((await get(hf.url('/'))).body, new RegExp(`version ${version}`));
  assert.equal(load.failed, 0, load.errors.join('\n'));
  return load;
}

