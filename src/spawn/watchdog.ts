// No orphans, even when holdfast is killed with SIGKILL: one tiny /bin/sh per holdfast reads
// `add PGID` / `del PGID` lines on a pipe from holdfast. If the pipe reaches EOF without a `bye`
// first, holdfast is gone: the helper sends SIGTERM to every registered process group, waits up
// to 2 s for them to go, SIGKILLs what is left, and exits. The Node hook covers Node apps on its
// own; this covers generic apps and anything any app forked into its group.
//
// sh rather than a second node: it costs ~1 MB instead of ~40 MB, for a process that mostly sleeps.
// Its script is a file it deletes as it starts (sh keeps reading the open file), so that `ps` shows
// a short, honest line — `holdfast-watchdog watchdog 4242` (the pid of its holdfast) — instead of
// the whole script after `sh -c`.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';

export interface Watchdog {
  /** The helper's pid (for tests and status); undefined if it could not be started. */
  readonly pid: number | undefined;
  /**
   * Kill this process group if holdfast dies before unregister(), then remove files (the app's
   * socket, which a killed app cannot remove itself).
   */
  register(pgid: number, files?: readonly string[]): void;
  unregister(pgid: number): void;
  /** The helper exits without killing anything. Idempotent; resolves once it has exited. */
  close(): Promise<void>;
}

const GRACE_TENTHS = 20;
/** The script's file name: what `ps` shows after the title, with holdfast's pid. */
const SCRIPT_FILE = 'watchdog'; // 2 s between SIGTERM and SIGKILL, checked every 0.1 s

// Runs in its own session (detached), so a Ctrl-C or SIGHUP meant for holdfast's terminal
// group does not take the watchdog down with it; it ignores those signals besides.
// Lines: `add PGID`, `del PGID`, `file PATH` / `unfile PATH` (removed once the groups are gone:
// a SIGKILLed app leaves its Unix socket behind), `dir PATH` (holdfast's own temp dirs: removed
// after the files, with rmdir, so only when nothing else is left in them), `bye`.
export const WATCHDOG_SCRIPT = `
rm -f -- "$0"
rmdir -- "$PWD" 2>/dev/null
cd /
trap '' INT HUP QUIT PIPE
set -f
nl='
'
groups=' '
files=''
dirs=''
finish() {
  IFS=$nl
  for f in $files; do rm -f -- "$f"; done
  for d in $dirs; do rmdir -- "$d" 2>/dev/null; done
  exit 0
}
while IFS= read -r line; do
  case "$line" in
    'add '*) groups="$groups\${line#add } " ;;
    'del '*) g=\${line#del }; rest=' '; for x in $groups; do [ "$x" = "$g" ] || rest="$rest$x "; done; groups=$rest ;;
    'file '*) files="$files\${line#file }$nl" ;;
    'dir '*) dirs="$dirs\${line#dir }$nl" ;;
    'unfile '*) f=\${line#unfile }; rest=''; IFS=$nl; for x in $files; do [ "$x" = "$f" ] || rest="$rest$x$nl"; done; unset IFS; files=$rest ;;
    bye) exit 0 ;;
  esac
done
[ "$groups" = ' ' ] && finish
for g in $groups; do kill -s TERM -- -$g 2>/dev/null; done
i=0
while [ $i -lt ${GRACE_TENTHS} ]; do
  alive=
  for g in $groups; do kill -s 0 -- -$g 2>/dev/null && alive=1; done
  [ -z "$alive" ] && finish
  sleep 0.1
  i=$((i + 1))
done
for g in $groups; do kill -s KILL -- -$g 2>/dev/null; done
finish
`;

class ShellWatchdog implements Watchdog {
  private readonly child: ChildProcess;
  private readonly stdin: Socket;
  private readonly exited: Promise<void>;
  private alive = true;
  private closing: Promise<void> | undefined;
  /** Files registered per group, to take back on unregister(). */
  private readonly files = new Map<number, readonly string[]>();

  constructor() {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-watchdog-'));
    writeFileSync(join(dir, SCRIPT_FILE), WATCHDOG_SCRIPT, { mode: 0o600 });
    this.child = spawn('/bin/sh', [SCRIPT_FILE, String(process.pid)], {
      argv0: 'holdfast-watchdog',
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
      cwd: dir,
    });
    // The script removes itself and its dir; if sh never ran, nobody else would.
    this.child.once('error', () => rmSync(dir, { recursive: true, force: true }));
    this.exited = new Promise<void>((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.once('error', () => resolve());
    }).then(() => {
      this.alive = false;
    });
    this.stdin = this.child.stdin as Socket;
    this.stdin.on('error', () => {
      this.alive = false; // the helper died; registering becomes a no-op rather than a crash
    });
    // Neither the helper nor its pipe may keep holdfast running.
    this.child.unref();
    this.stdin.unref();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  register(pgid: number, files: readonly string[] = []): void {
    this.send(`add ${checkPgid(pgid)}`);
    const kept = files.filter((f) => f !== '' && !f.includes('\n'));
    if (kept.length > 0) this.files.set(pgid, kept);
    for (const f of kept) this.send(`file ${f}`);
  }

  removeDirOnDeath(dir: string): void {
    if (dir !== '' && !dir.includes('\n')) this.send(`dir ${dir}`);
  }

  unregister(pgid: number): void {
    this.send(`del ${checkPgid(pgid)}`);
    for (const f of this.files.get(pgid) ?? []) this.send(`unfile ${f}`);
    this.files.delete(pgid);
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      this.send('bye');
      this.child.ref(); // until it has exited, so close() settles even when nothing else runs
      this.closing = new Promise<void>((resolve) => {
        this.stdin.end();
        // The helper exits within a moment of `bye`; never wait for ever on a wedged one.
        const timer = setTimeout(() => {
          if (this.child.pid !== undefined && this.alive) this.child.kill('SIGKILL');
          resolve();
        }, 2000);
        timer.unref();
        void this.exited.then(() => {
          clearTimeout(timer);
          this.child.unref();
          resolve();
        });
      });
    }
    return this.closing;
  }

  private send(line: string): void {
    if (this.closing !== undefined || !this.alive || this.stdin.destroyed) return;
    this.stdin.write(line + '\n');
  }
}

function checkPgid(pgid: number): number {
  if (!Number.isInteger(pgid) || pgid <= 1) throw new RangeError(`not a process group id: ${pgid}`);
  return pgid;
}

/** Starts the one watchdog of this holdfast; `dirs` (holdfast's temp dirs) are removed, when empty, if it dies. */
export function startWatchdog(options: { dirs?: readonly string[] } = {}): Watchdog {
  const watchdog = new ShellWatchdog();
  for (const d of options.dirs ?? []) watchdog.removeDirOnDeath(d);
  return watchdog;
}
