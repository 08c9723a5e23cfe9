// A stand-in for holdfast, run as its own process by the orphan tests:
//   node spawn-orphan-harness.js SOCKET_DIR MODE
// It starts a watchdog and a ChildSpawner, spawns a Node app and a generic app whose start
// command forks a `sleep`, and prints one JSON line with every pid. Then, by MODE:
//   wait         sit there until the test kills it (with SIGKILL)
//   no-watchdog  like wait, but with a watchdog that does nothing and only the Node app: the hook alone must do
//   clean-exit   terminate both apps, close the watchdog, and exit by itself: nothing may keep it alive

import { ChildSpawner } from '../../src/spawn/child-spawner';
import { startWatchdog, type Watchdog } from '../../src/spawn/watchdog';
import type { ProcessHandle } from '../../src/core/process-handle';
import { fixtureApp } from './paths';

async function main(): Promise<void> {
  const [socketDir, mode = 'wait'] = process.argv.slice(2);
  if (!socketDir) throw new Error('usage: spawn-orphan-harness SOCKET_DIR [wait|no-watchdog|clean-exit]');
  const watchdog: Watchdog =
    mode === 'no-watchdog' ? { pid: undefined, register() {}, unregister() {}, close: async () => {} } : startWatchdog();
  let forked: number | undefined;
  const base = { environment: 'production', envvars: {}, startTimeoutMs: 30_000, socketDir, watchdog };
  const nodeApp = await new ChildSpawner({ ...base, appDir: fixtureApp('hello') }).spawn({ generation: 1, signal: new AbortController().signal });
  const handles: ProcessHandle[] = [nodeApp];
  const pids: Record<string, number | undefined> = { harness: process.pid, watchdog: watchdog.pid, node: nodeApp.pid };
  if (mode !== 'no-watchdog') {
    const generic = await new ChildSpawner({
      ...base,
      appDir: fixtureApp('generic'),
      appStartCommand: 'sleep 1000 & echo "forked $!"; exec python3 server.py',
      onOutput: (line) => {
        const m = /^forked (\d+)$/.exec(line);
        if (m) forked = Number(m[1]);
      },
    }).spawn({ generation: 1, signal: new AbortController().signal });
    handles.push(generic);
    Object.assign(pids, { generic: generic.pid, forked });
  }
  process.stdout.write(JSON.stringify(pids) + '\n');

  if (mode === 'clean-exit') {
    await Promise.all(handles.map((h) => h.terminate(5000)));
    await watchdog.close();
    process.stdout.write('closed\n');
    return; // the test checks that the process now exits on its own
  }
  setInterval(() => undefined, 60_000); // stay until killed
}

main().catch((e: unknown) => {
  process.stderr.write(`harness failed: ${String(e)}\n`);
  process.exit(1);
});
