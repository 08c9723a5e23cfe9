// The text pictures of the admin commands, as pure functions of what the admin API returned.
// `holdfast status` follows passenger-status; times are relative to the document's own date,
// so one document always renders the same text.

import type { StatusDocument } from '../admin/api';
import type { GroupSnapshot, LastRestartSnapshot, ProcessSnapshot, RestartKind, RestartSnapshot, SpawnErrorSnapshot } from '../core/snapshots';
import type { RestartOutcome, RestartProgress } from '../core/operations';

/** Output lines a status shows per spawn error; a restart failure shows more. */
export const STATUS_OUTPUT_LINES = 15;
export const RESTART_OUTPUT_LINES = 30;

export interface StatusTextOptions {
  /** Output lines shown per spawn error (default STATUS_OUTPUT_LINES); --watch shrinks it to keep the processes on screen. */
  outputLines?: number;
  /** The resisted spawn error in one line instead of its detail block (--watch on a small terminal). */
  compact?: boolean;
}

export function renderStatus(doc: StatusDocument, options: StatusTextOptions = {}): string {
  const now = Date.parse(doc.date);
  const lines: string[] = [];
  const inst = doc.instance;
  lines.push(`Version : ${doc.version}`);
  lines.push(`Date    : ${formatTime(doc.date)}`);
  lines.push(`Instance: ${inst.name} (pid ${inst.pid}, ${hostPort(inst.address, inst.port)}, up ${formatDuration(inst.uptime_seconds)})`);
  lines.push('');
  lines.push('----------- General information -----------');
  lines.push(`Max pool size : ${doc.max_pool_size}`);
  lines.push(`App groups    : ${doc.groups.length}`);
  lines.push(`Processes     : ${doc.process_count}`);
  lines.push(`Requests in top-level queue : ${doc.requests_in_top_level_queue}`);
  lines.push('');
  lines.push('----------- Application groups -----------');
  if (doc.groups.length === 0) lines.push('(none)');
  for (const group of doc.groups) lines.push(...renderGroup(group, now, options), '');
  while (lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n') + '\n';
}

function renderGroup(group: GroupSnapshot, now: number, options: StatusTextOptions): string[] {
  const lines: string[] = [];
  lines.push(`${group.name} (${group.environment}):`);
  lines.push(`  App root: ${group.app_root}`);
  if (group.app_type !== undefined) lines.push(`  App type: ${group.app_type}${spawnNote(group)}`);
  lines.push(`  Generation: ${group.generation}`);
  const modes = [group.rolling_restarts ? 'rolling restarts' : 'plain restarts'];
  if (group.resist_deployment_errors) modes.push('resists deployment errors');
  lines.push(`  Mode: ${modes.join(', ')}`);
  lines.push(`  ${group.restart ? restartLine(group.restart, now) : 'Restart: none running'}`);
  if (group.last_restart) lines.push(`  ${lastRestartLine(group.last_restart, now)}`);
  if (group.resisting_deployment_error) {
    const r = group.resisting_deployment_error;
    lines.push(`  Resisting deployment error ${r.error.error_id} since ${formatTime(r.since)} (for ${formatDuration(r.for_seconds)})`);
    if (options.compact) lines.push(`    ${cause(r.error)}: ${oneLine(r.error.message)} (holdfast status shows the output)`);
    else {
      lines.push(
        `    ${r.note[0]!.toUpperCase()}${r.note.slice(1)}.`,
        ...spawnErrorLines(r.error, '    ', options.outputLines ?? STATUS_OUTPUT_LINES),
      );
    }
  } else if (group.last_spawn_error) {
    const e = group.last_spawn_error;
    // A newer generation started since: the error is history, not the state of the app.
    const newer = group.processes.filter((p) => p.generation > e.generation && Date.parse(p.started_at) > Date.parse(e.at)).map((p) => p.generation);
    const label = newer.length > 0 ? `Past spawn error (before generation ${Math.min(...newer)} started)` : 'Last spawn error';
    lines.push(`  ${label}: ${e.error_id} at ${formatTime(e.at)} (${ago(e.at, now)}): ${cause(e)}: ${oneLine(e.message)}`);
  }
  lines.push(`  Requests in queue: ${group.requests_in_queue}`);
  if (group.spawning > 0) lines.push(`  Spawning: ${group.spawning}`);
  if (group.processes.length === 0) lines.push('  (no processes)');
  for (const p of group.processes) lines.push(...processLines(p, group, now));
  return lines;
}

// The two lines of a process share their columns, as passenger-status does: CPU under PID,
// Memory under Gen, Last used under Sessions, Connections under Uptime.
const PID_WIDTH = 8;
const COLUMNS = { first: 5 + PID_WIDTH, second: 'Gen: '.length + 4 + 1 + 'State: '.length + 9, third: 'Sessions: '.length + 6 + 1 + 'Processed: '.length + 8 };

function processLines(p: ProcessSnapshot, group: GroupSnapshot, now: number): string[] {
  const state = p.state === 'enabled' && p.in_probation ? 'probation' : p.state;
  const lines = [
    '  * ' +
      [
        col('PID', p.pid, PID_WIDTH),
        col('Gen', p.generation, 4),
        col('State', state, 9),
        col('Sessions', p.sessions, 6),
        col('Processed', p.processed, 8),
        `Uptime: ${formatDuration(p.uptime_seconds)}`,
      ].join(' '),
    (
      '    ' +
      [
        `CPU: ${Math.round(p.cpu_percent)}%`.padEnd(COLUMNS.first),
        `Memory: ${p.rss_bytes !== null && p.rss_bytes > 0 ? formatMegabytes(p.rss_bytes) : '-'}`.padEnd(COLUMNS.second),
        `Last used: ${p.last_used_at === null ? 'never' : ago(p.last_used_at, now)}`.padEnd(COLUMNS.third),
        // Visitor connections handed off to it (the fast path); none on the proxy path.
        p.connections > 0 ? `Connections: ${p.connections}` : '',
      ].join(' ')
    ).trimEnd(),
  ];
  // Worth a line only when it tells something the group does not: a release switched by a deploy tool.
  if (p.release !== group.app_root || p.commit !== null) {
    lines.push(`    Release: ${p.release}${p.commit ? ` (commit ${p.commit.slice(0, 12)})` : ''}`);
  }
  return lines;
}

function restartLine(r: RestartSnapshot, now: number): string {
  return `${kindTitle(r.kind)} restart: ${r.replaced} of ${r.total} replaced (to generation ${r.generation}, started ${ago(r.started_at, now)})`;
}

function lastRestartLine(r: LastRestartSnapshot, now: number): string {
  const error = r.error ? ` (error ${r.error.error_id})` : '';
  return `Last restart: ${r.outcome}${error}, ${r.kind}, generation ${r.generation}, finished ${ago(r.finished_at, now)}`;
}

/** The spawn error in detail: what an operator needs to see why a version did not start. */
export function spawnErrorLines(e: SpawnErrorSnapshot, indent: string, maxOutputLines: number): string[] {
  const lines = [
    `${indent}Error id: ${e.error_id} (${e.code}) at ${formatTime(e.at)}`,
    `${indent}Cause   : ${cause(e)}`,
    `${indent}Message : ${oneLine(e.message)}`,
    `${indent}Command : ${e.command}`,
    `${indent}Release : ${e.release} (generation ${e.generation})`,
  ];
  const output = trimTrailingBlank(e.output_tail);
  if (output.length === 0) {
    lines.push(`${indent}Output  : (none captured)`);
  } else {
    lines.push(`${indent}Output (${output.length} line${output.length === 1 ? '' : 's'}${maxOutputLines <= 0 ? ', not shown here: holdfast status shows them' : ''}):`);
    const pipe = (line: string) => (line === '' ? `${indent}  |` : `${indent}  | ${line}`);
    const head = Math.max(1, Math.ceil((maxOutputLines - 1) / 3));
    const tail = Math.max(1, maxOutputLines - 1 - head);
    if (maxOutputLines > 0 && output.length > head + tail + 1) {
      // The first lines name the error (a Ruby or Python syntax error), the last ones how it ended.
      const left = output.length - head - tail;
      lines.push(...output.slice(0, head).map(pipe), `${indent}  | … ${left} line${left === 1 ? '' : 's'} …`, ...output.slice(-tail).map(pipe));
    } else if (maxOutputLines > 0) {
      lines.push(...output.map(pipe));
    }
  }
  return lines;
}

/** One line of restart progress: `Restarting <app>: 1 of 3 replaced`. */
export function renderRestartProgress(app: string, p: RestartProgress): string {
  return `Restarting ${app}: ${p.replaced} of ${p.total} replaced`;
}

/**
 * The end of a waited restart. ok: exit 0. Otherwise text goes to stderr and the exit is 1;
 * its first line is `holdfast: ...`, the rest is the spawn error a deploy script needs to show.
 */
export function renderRestartOutcome(app: string, o: RestartOutcome): { ok: boolean; text: string } {
  const counts = `${o.replaced} of ${o.total} replaced`;
  if (o.outcome === 'succeeded') {
    return { ok: true, text: `Restarted ${app}: ${counts}, now generation ${o.generation} (${o.kind} restart).\n` };
  }
  const lines: string[] = [];
  if (o.outcome === 'superseded') {
    lines.push(`holdfast: the ${o.kind} restart of ${app} to generation ${o.generation} was superseded by a newer restart (${counts}); see holdfast status`);
  } else {
    const what = o.error ? `: ${oneLine(o.error.message)}` : ' (no spawn error was reported)';
    lines.push(`holdfast: the ${o.kind} restart of ${app} to generation ${o.generation} ${o.outcome === 'resisted' ? 'was stopped by a spawn error' : 'failed'}${what}`);
    lines.push(
      o.outcome === 'resisted'
        ? `  Outcome : resisted, ${counts}; the previous version keeps serving until the next restart or holdfast resume`
        : `  Outcome : failed, ${counts}`,
    );
  }
  if (o.error) lines.push(...spawnErrorLines(o.error, '  ', RESTART_OUTPUT_LINES));
  return { ok: false, text: lines.join('\n') + '\n' };
}

function cause(e: SpawnErrorSnapshot): string {
  const how = e.exit_code !== null ? `exit code ${e.exit_code}` : e.signal !== null ? `signal ${e.signal}` : null;
  switch (e.category) {
    case 'exited':
      return `exited before it was ready${how ? ` (${how})` : ''}`;
    case 'timeout':
      return 'did not become ready within start_timeout';
    case 'os':
      return 'could not be started';
    case 'probation':
      return `exited right after it became ready${how ? ` (${how})` : ''}`;
    case 'died':
      return `a process of the new version died${how ? ` (${how})` : ''}`;
    case 'health_check':
      return 'did not pass the health check';
    case 'deadline':
      return 'the restart ran out of time';
  }
}

function kindTitle(kind: RestartKind): string {
  return kind === 'rolling' ? 'Rolling' : 'Plain';
}

function col(label: string, value: string | number, width: number): string {
  return `${label}: ${String(value).padEnd(width)}`;
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** `2026-03-01 12:00:00 UTC`; UTC so that the same document renders the same everywhere. */
export function formatTime(iso: string): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** passenger-status style: `45s`, `2m 3s`, `1h 2m 3s`, `3d 4h 5m`. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m ${sec}s`;
  if (m > 0) return `${m}m ${sec}s`;
  return `${sec}s`;
}

function ago(iso: string, now: number): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  return `${formatDuration((now - t) / 1000)} ago`;
}

function formatMegabytes(bytes: number | null): string {
  if (bytes === null) return '-';
  return `${Math.round(bytes / (1024 * 1024))}M`;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

function trimTrailingBlank(lines: readonly string[]): string[] {
  const out = [...lines];
  while (out.length > 0 && out[out.length - 1]!.trim() === '') out.pop();
  return out;
}

/** "(smart spawning, preloader pid 123)" for a smart-spawned group; "" for the others. */
function spawnNote(group: GroupSnapshot): string {
  if (group.spawn_method !== 'smart') return '';
  const pids = (group.preloaders ?? []).map((p) => p.pid);
  if (pids.length === 0) return ' (smart spawning, no preloader running)';
  return ` (smart spawning, preloader pid ${pids.join(', ')})`;
}
