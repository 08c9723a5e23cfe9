// The resolved configuration: flags > config file > defaults, already validated.

import type { AppType, SpawnMethod } from './app-type';
import type { HostPort } from './host-port';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface HoldfastConfig {
  /** Absolute app dir as given (may be a symlink a deploy tool switches; resolved at each spawn). */
  appDir: string;
  /** The config file that was read, if any. */
  configFile: string | undefined;
  port: number;
  address: string;
  environment: string;
  minInstances: number;
  maxPoolSize: number;
  /** Detected as Passenger does (config/app-type.ts), or named by app_type. */
  appType: AppType;
  /** Why appType is what it is, for the start-up log ("config.ru found", "app_type", ...). */
  appTypeReason: string;
  /** Interpreters of Rack and WSGI apps (a command on PATH or an absolute path). */
  ruby: string;
  python: string;
  /** smart = one preloader per generation forks the processes (Rack apps only); direct = each from scratch. */
  spawnMethod: SpawnMethod;
  /** Max sessions per process; 0 = unlimited. Default by app type: 1 for Rack and WSGI, else 0. */
  concurrency: number;
  poolIdleTimeMs: number;
  /** 0 = off. */
  maxRequests: number;
  /** 0 = off. */
  memoryLimitBytes: number;
  /** 0 = unbounded. */
  maxRequestQueueSize: number;
  /** Visitor connections held at once; 0 = derived from the file descriptor limit (max_connections). */
  maxConnections: number;
  startTimeoutMs: number;
  drainTimeoutMs: number;
  rollingRestarts: boolean;
  resistDeploymentErrors: boolean;
  /** Node and Rack apps take whole visitor connections instead of proxied requests (connection_handoff). */
  connectionHandoff: boolean;
  appStartCommand: string | undefined;
  /** Serve files of staticFilesDir from holdfast (static_files). */
  staticFiles: boolean;
  /** As given, relative to the app dir (static_files_dir). */
  staticFilesDir: string;
  /** Cache-Control of fingerprinted static files; '' = none (static_files_cache_control). */
  staticFilesCacheControl: string;
  /** Buffer request bodies before taking a process with a concurrency limit (request_buffering). */
  requestBuffering: boolean;
  /** Absolute; undefined = the system temp dir (data_buffer_dir). */
  dataBufferDir: string | undefined;
  /** 0 = unlimited (max_request_body_size). */
  maxRequestBodyBytes: number;
  /** 0 = off (max_request_queue_time). */
  maxRequestQueueTimeMs: number;
  /** 0 = off (max_request_time). */
  maxRequestTimeMs: number;
  /** As given: relative paths are relative to the app dir (resolve it against the release dir at each spawn). */
  startupFile: string | undefined;
  envvars: Record<string, string>;
  /** Absolute; undefined = standard output. */
  logFile: string | undefined;
  logLevel: LogLevel;
  name: string;
  /** A process that exits this soon after becoming ready counts as a failed spawn (probation_time). */
  probationMs: number;
  /** The token-less GET /metrics listener for a scraper; undefined = none (metrics_address). */
  metricsAddress: HostPort | undefined;
  /** The status page listener (read-only token); undefined = none (status_address). */
  statusAddress: HostPort | undefined;
  /** Path on the public port answering 200 while a process can serve, 503 otherwise; undefined = off. */
  readinessPath: string | undefined;
  /** Processes a rolling restart may run above max_pool_size for one replacement (rolling_restart_surge). */
  rollingRestartSurge: number;
  /** GET that every new process must answer 2xx before it serves; undefined = no check (health_check_path). */
  healthCheckPath: string | undefined;
  healthCheckTimeoutMs: number;
  /**
   * Things worth a warning at start that are not errors (e.g. resist_deployment_errors without
   * rolling_restarts, Passengerfile.json options that have no effect). Added by config/; the CLI logs
   * them. Optional so that configs built in tests need not list any.
   */
  warnings?: readonly string[];
}
