// Prometheus metrics of one holdfast (docs/operations.md lists them). The registry is this
// instance's own, never prom-client's global default, so two supervisors in one process (tests)
// never share or clash.
//
// Counters and the histogram are fed by events: the proxy's onRequestDone and the group's observer.
// Gauges are read from one pool snapshot per scrape, so that every gauge of a scrape agrees with
// the others (processes by state add up to the process count of the same instant).

import { Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';
import type { RequestStats } from '../core/process-handle';
import type { PoolSnapshot, ProcessState, RestartKind, RestartOutcomeKind } from '../core/snapshots';
import type { GroupObserver } from '../core/group/group';
import type { SpawnCause } from '../core/app-process';
import type { SpawnErrorDetails } from '../errors';
import type { AdminRoute } from './server';

export interface RequestDoneInfo {
  statusCode: number;
  durationMs: number;
  pid: number | null;
}

export interface Metrics {
  /** `text/plain; version=0.0.4; charset=utf-8` */
  readonly contentType: string;
  /** The proxy's onRequestDone. */
  requestDone(info: RequestDoneInfo): void;
  /** Counts an app process reported for requests on handed-off connections (deltas). */
  handedOffRequests(stats: RequestStats): void;
  /** The group observer that counts spawns, spawn errors, exits and restarts; the supervisor composes it with the others. */
  observe(app: string): GroupObserver;
  /** Requests answered since start, every status (fresh counts from the app processes); the status page draws requests/s from it. */
  requestsTotal(): Promise<number>;
  /** The exposition text, gauges read from a fresh snapshot. */
  text(): Promise<string>;
  /** GET /metrics, for the read-only token (an AdminRoute, also served by the web listeners). */
  route(): AdminRoute;
}

export interface MetricsOptions {
  snapshot(): PoolSnapshot;
  /** Asks the app processes for their latest counts of handed-off requests before a scrape. */
  flush?(): Promise<void>;
  version: string;
  instance: string;
}

/** Seconds; from a quick static answer to a long poll. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const SPAWN_CAUSES: readonly SpawnCause[] = ['start', 'demand', 'restart', 'replace', 'recovery', 'rollback'];
const SPAWN_ERROR_CATEGORIES: readonly SpawnErrorDetails['category'][] = ['os', 'exited', 'timeout', 'probation', 'died', 'health_check', 'deadline'];
const RESTART_KINDS: readonly RestartKind[] = ['plain', 'rolling'];
const RESTART_OUTCOMES: readonly RestartOutcomeKind[] = ['succeeded', 'failed', 'resisted', 'superseded'];
/** Zero-filled for the serving generation; a process being started is in holdfast_spawning_processes. */
const LISTED_STATES: readonly ProcessState[] = ['enabled', 'draining'];

/**
 * The request duration histogram, plus what app processes observed themselves on handed-off
 * connections (reported as bucket counts: prom-client has no way to add those to a Histogram).
 */
class MergedHistogram extends Histogram {
  private readonly reported: number[];
  private reportedSum = 0;
  private reportedCount = 0;

  constructor(configuration: ConstructorParameters<typeof Histogram>[0] & { buckets: number[] }) {
    super(configuration);
    this.reported = new Array<number>(configuration.buckets.length + 1).fill(0);
  }

  /** buckets: per bucket, non-cumulative, the last past every bound. */
  add(buckets: readonly number[], sum: number, count: number): void {
    for (let i = 0; i < this.reported.length && i < buckets.length; i++) this.reported[i]! += buckets[i]!;
    this.reportedSum += sum;
    this.reportedCount += count;
  }

  // What both get() and the registry's text rendering read (prom-client 15 calls it by this name).
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const base = (Histogram.prototype as unknown as { getForPromString(this: Histogram): Promise<MetricObjectWithValues<MetricValueWithName<string>>> }).getForPromString;
    const object = await base.call(this);
    let cumulative = 0;
    let bucket = 0;
    for (const v of object.values) {
      if (v.metricName?.endsWith('_bucket')) {
        cumulative += this.reported[bucket++] ?? 0;
        v.value += cumulative;
      } else if (v.metricName?.endsWith('_sum')) v.value += this.reportedSum;
      else if (v.metricName?.endsWith('_count')) v.value += this.reportedCount;
    }
    return object;
  }
}

export function createMetrics(opts: MetricsOptions): Metrics {
  const registry = new Registry();
  const registers = [registry];
  let answered = 0;

  // ---- fed by events ----
  const requests = new Counter({
    name: 'holdfast_requests_total',
    help: 'Requests answered by the public server, by status class (499, the visitor went away, counts as 4xx).',
    labelNames: ['status_class'] as const,
    registers,
  });
  const duration = new MergedHistogram({
    name: 'holdfast_request_duration_seconds',
    help: 'Time from a request arriving to the last byte of its answer, queueing included.',
    buckets: DURATION_BUCKETS,
    registers,
  });
  const spawns = new Counter({
    name: 'holdfast_spawns_total',
    help: 'App processes that started and became ready, by cause.',
    labelNames: ['app', 'cause'] as const,
    registers,
  });
  const spawnErrors = new Counter({
    name: 'holdfast_spawn_errors_total',
    help: 'App processes that could not be started, by category (os, exited, timeout, probation).',
    labelNames: ['app', 'category'] as const,
    registers,
  });
  const restarts = new Counter({
    name: 'holdfast_restarts_total',
    help: 'Finished restarts, by kind (plain, rolling) and outcome (succeeded, failed, resisted, superseded).',
    labelNames: ['app', 'kind', 'outcome'] as const,
    registers,
  });
  const exits = new Counter({
    name: 'holdfast_process_exits_total',
    help: 'App processes that ended, by reason (idle, max_requests, memory_limit, restart, shutdown, died, ...).',
    labelNames: ['app', 'reason'] as const,
    registers,
  });
  for (const status_class of STATUS_CLASSES) requests.inc({ status_class }, 0);
  // Counted once per request: resolve each label set once, so that an increment hashes no labels.
  const requestsByClass = STATUS_CLASSES.map((status_class) => requests.labels({ status_class }));

  // ---- read from the snapshot at each scrape ----
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers });
  // Not "instance": Prometheus gives every scraped series an instance label of its own (the target).
  const info = gauge('holdfast_info', 'Always 1; the labels say which holdfast this is (name: --name).', ['version', 'name']);
  const maxPoolSize = gauge('holdfast_max_pool_size', 'Most app processes that may run at once (max_pool_size).', []);
  const processes = gauge('holdfast_processes', 'App processes, by state and by the generation they were started from.', ['app', 'state', 'generation']);
  const spawning = gauge('holdfast_spawning_processes', 'App processes being started now.', ['app']);
  const queue = gauge('holdfast_requests_in_queue', 'Requests waiting for a process.', ['app']);
  const generation = gauge('holdfast_generation', 'The generation that serves now; each restart raises it.', ['app']);
  const resisting = gauge(
    'holdfast_resisting_deployment_error',
    '1 while the app resists a deployment error (the previous version serves; nothing spawns until holdfast restart or resume), else 0.',
    ['app'],
  );
  const restartRunning = gauge('holdfast_restart_in_progress', '1 while a restart runs, else 0.', ['app']);
  const restartReplaced = gauge('holdfast_restart_replaced_processes', 'Old processes the running restart has replaced so far (0 when none runs).', ['app']);
  const restartToReplace = gauge('holdfast_restart_processes_to_replace', 'Old processes the running restart replaces in all (0 when none runs).', ['app']);
  const perProcess = ['app', 'pid', 'generation'] as const;
  const sessions = gauge('holdfast_process_sessions', 'Requests and upgraded connections an app process serves now.', perProcess);
  const rss = gauge('holdfast_process_resident_memory_bytes', 'Resident memory (RSS) of an app process.', perProcess);
  const cpu = gauge('holdfast_process_cpu_ratio', 'CPU use of an app process over the last few seconds, as a fraction of one core.', perProcess);
  const startTime = gauge('holdfast_process_start_time_seconds', 'When an app process was started, in seconds since the Unix epoch.', perProcess);
  const appInfo = gauge('holdfast_app_info', 'Always 1; the labels say how the app runs: app_type (node, rack, wsgi, generic) and spawn_method (smart, direct).', ['app', 'app_type', 'spawn_method']);
  const preloaders = gauge('holdfast_preloader_processes', 'Smart spawning: app processes a running preloader has forked that still run, per preloader pid and generation.', perProcess);
  const snapshotGauges = [processes, spawning, queue, generation, resisting, restartRunning, restartReplaced, restartToReplace, sessions, rss, cpu, startTime, appInfo, preloaders];

  info.set({ version: opts.version, name: opts.instance }, 1);

  function refresh(snapshot: PoolSnapshot): void {
    for (const g of snapshotGauges) g.reset(); // processes come and go: no series of a gone pid stays
    maxPoolSize.set(snapshot.max_pool_size);
    for (const group of snapshot.groups) {
      const app = group.name;
      for (const state of LISTED_STATES) processes.set({ app, state, generation: String(group.generation) }, 0);
      for (const p of group.processes) {
        const labels = { app, pid: String(p.pid), generation: String(p.generation) };
        processes.inc({ app, state: p.state, generation: labels.generation });
        sessions.set(labels, p.sessions);
        if (p.rss_bytes !== null) rss.set(labels, p.rss_bytes);
        cpu.set(labels, p.cpu_percent / 100);
        const started = Date.parse(p.started_at);
        if (Number.isFinite(started)) startTime.set(labels, started / 1000);
      }
      spawning.set({ app }, group.spawning);
      queue.set({ app }, group.requests_in_queue);
      generation.set({ app }, group.generation);
      resisting.set({ app }, group.resisting_deployment_error ? 1 : 0);
      restartRunning.set({ app }, group.restart ? 1 : 0);
      restartReplaced.set({ app }, group.restart?.replaced ?? 0);
      restartToReplace.set({ app }, group.restart?.total ?? 0);
      if (group.app_type !== undefined) appInfo.set({ app, app_type: group.app_type, spawn_method: group.spawn_method ?? 'direct' }, 1);
      for (const p of group.preloaders ?? []) preloaders.set({ app, pid: String(p.pid), generation: String(p.generation) }, p.processes);
    }
  }

  const metrics: Metrics = {
    contentType: registry.contentType,
    requestDone({ statusCode, durationMs }) {
      answered++;
      const cls = Math.floor(statusCode / 100);
      requestsByClass[cls >= 1 && cls <= 5 ? cls - 1 : 4]!.inc();
      duration.observe(Math.max(0, durationMs) / 1000);
    },
    handedOffRequests(stats) {
      for (let i = 0; i < STATUS_CLASSES.length; i++) {
        const n = stats.status[i] ?? 0;
        if (n > 0) requestsByClass[i]!.inc(n);
      }
      answered += stats.count;
      duration.add(stats.buckets, stats.sum, stats.count);
    },
    observe(app) {
      for (const cause of SPAWN_CAUSES) spawns.inc({ app, cause }, 0);
      for (const category of SPAWN_ERROR_CATEGORIES) spawnErrors.inc({ app, category }, 0);
      for (const kind of RESTART_KINDS) for (const outcome of RESTART_OUTCOMES) restarts.inc({ app, kind, outcome }, 0);
      exits.inc({ app, reason: 'died' }, 0);
      exits.inc({ app, reason: 'crashed' }, 0);
      return {
        spawned: (_p, i) => spawns.inc({ app, cause: i.cause }),
        spawnFailed: (e) => spawnErrors.inc({ app, category: e.details.category }),
        processStopped: (_p, reason) => exits.inc({ app, reason }),
        processDied: (_p, _exit, crash) => exits.inc({ app, reason: crash ? 'crashed' : 'died' }),
        restartFinished: (o) => restarts.inc({ app, kind: o.kind, outcome: o.outcome }),
      };
    },
    requestsTotal: async () => {
      await opts.flush?.();
      return answered;
    },
    async text() {
      await opts.flush?.();
      refresh(opts.snapshot());
      return registry.metrics();
    },
    route: () => ({
      method: 'GET',
      path: '/metrics',
      access: 'read',
      handle: async (ctx) => {
        const body = await metrics.text();
        ctx.res.writeHead(200, {
          'content-type': metrics.contentType,
          'content-length': Buffer.byteLength(body),
          'cache-control': 'no-store',
        });
        ctx.res.end(body);
      },
    }),
  };
  return metrics;
}
