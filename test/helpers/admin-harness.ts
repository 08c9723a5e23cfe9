// A stand-in holdfast for CLI tests: a real instance dir and admin server in a process of its own,
// with a FakeControl behind it. Run as `node admin-harness.js '<HarnessConfig JSON>'`; prints
// "ready" once its socket listens, appends every Control call as a JSON line to callsFile, exits
// when stopped over the admin API, on SIGTERM, or when its stdin closes (its test went away).

import { appendFileSync } from 'node:fs';
import { createInstance } from '../../src/admin/instance';
import { startAdminServer, type AdminServer } from '../../src/admin/server';
import type { RestartOutcome, RestartProgress } from '../../src/core/operations';
import type { RestartOutcomeKind } from '../../src/core/snapshots';
import { silentLogger } from '../../src/log/logger';
import { FakeControl } from './fake-control';
import { groupSnapshot, poolSnapshot, resistingGroup, spawnErrorSnapshot } from './status-fixtures';

export interface HarnessConfig {
  name: string;
  registryDir: string;
  callsFile: string;
  port?: number;
  scenario?: 'normal' | 'resisting';
  restart?: RestartOutcomeKind;
  /** Let stop take this long, to show that `holdfast stop` waits for the pid. */
  stopDelayMs?: number;
}

function harnessSteps(total: number, upTo: number): RestartProgress[] {
  const steps: RestartProgress[] = [];
  for (let replaced = 0; replaced <= upTo; replaced++) steps.push({ kind: 'rolling', generation: 4, total, replaced });
  return steps;
}

function harnessOutcome(kind: RestartOutcomeKind): RestartOutcome {
  if (kind === 'succeeded') return { outcome: 'succeeded', kind: 'rolling', generation: 4, replaced: 2, total: 2, error: null };
  return { outcome: kind, kind: 'rolling', generation: 4, replaced: 1, total: 2, error: spawnErrorSnapshot() };
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as HarnessConfig;
  const instance = await createInstance({
    name: cfg.name,
    registryDir: cfg.registryDir,
    address: '127.0.0.1',
    port: cfg.port ?? 3000,
    appRoot: '/srv/shop/current',
  });
  let server: AdminServer | null = null;
  let shuttingDown: Promise<void> | null = null;
  const shutdown = () =>
    (shuttingDown ??= (async () => {
      await server?.close();
      await instance.remove();
      process.exit(0);
    })());

  const outcomeKind = cfg.restart ?? 'succeeded';
  const control = new FakeControl({
    pool: poolSnapshot([cfg.scenario === 'resisting' ? resistingGroup() : groupSnapshot()]),
    script: {
      steps: harnessSteps(2, outcomeKind === 'succeeded' ? 2 : 1),
      outcome: harnessOutcome(outcomeKind),
      stepMs: 20,
    },
    onCall: (call) => appendFileSync(cfg.callsFile, JSON.stringify({ instance: cfg.name, ...call }) + '\n'),
    onStop: async () => {
      await new Promise((r) => setTimeout(r, cfg.stopDelayMs ?? 0));
      void shutdown();
    },
  });
  control.resisting = cfg.scenario === 'resisting';
  server = await startAdminServer({ instance, control, logger: silentLogger(), version: '0.1.0' });

  process.on('SIGTERM', () => void shutdown());
  process.stdin.on('end', () => void shutdown());
  process.stdin.resume();
  process.stdout.write('ready\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`admin-harness: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
