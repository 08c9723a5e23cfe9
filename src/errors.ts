// The one error vocabulary of holdfast. Imports nothing: every layer may use it.
// Errors are translated for humans at three edges only: proxy, admin API, CLI.

export const ERROR_CODES = {
  HF_CONFIG_INVALID: 'the configuration (file or flags) is invalid',
  HF_APP_DIR: 'the app directory is missing or unusable',
  HF_LISTEN: 'an address (public, status_address or metrics_address) could not be bound (in use, or not permitted)',
  HF_SPAWN_OS: 'an app process could not be started at all (command missing, not executable)',
  HF_SPAWN_EXITED: 'an app process exited (code or signal) before it was ready',
  HF_SPAWN_TIMEOUT: 'an app process did not become ready within start_timeout',
  HF_SPAWN_PROBATION: 'an app process exited during its probation right after becoming ready',
  HF_SPAWN_DIED: 'a process of a new version died before its rolling restart finished, or the new version crash-loops',
  HF_HEALTH_CHECK: 'a new app process did not answer health_check_path with 2xx in time',
  HF_RESTART_TIMEOUT: 'a restart did not finish within its deadline',
  HF_QUEUE_FULL: 'the request queue is full (max_request_queue_size)',
  HF_SHUTTING_DOWN: 'holdfast is stopping and takes no new requests',
  HF_QUEUE_TIMEOUT: 'a request waited in the queue for too long',
  HF_REQUEST_TIMEOUT: 'an app process spent longer than max_request_time on one request; it was replaced',
  HF_UPSTREAM: 'the app process failed while serving a request',
  HF_ADMIN_UNAUTHORIZED: 'an admin request had no valid token',
  HF_ADMIN_FORBIDDEN: 'an admin request used a token that may not do this',
  HF_ADMIN_NOT_FOUND: 'no such admin endpoint',
  HF_ADMIN_BAD_REQUEST: 'an admin request was malformed',
  HF_INSTANCE_NOT_FOUND: 'no running holdfast instance matches',
  HF_INSTANCE_AMBIGUOUS: 'several holdfast instances run; --name must pick one',
  HF_INSTANCE_EXISTS: 'an instance with this name is already running',
  HF_INTERNAL: 'a bug in holdfast',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class HoldfastError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HoldfastError';
    this.code = code;
  }
}

/** All problems of a configuration at once, each naming its source (file or flag), key and what is allowed. */
export class ConfigError extends HoldfastError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('HF_CONFIG_INVALID', problems.join('; '));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * os: could not run; exited: before ready; timeout: not ready within start_timeout; probation: died
 * within probation_time; died: a new version's process died before its restart finished, or the new
 * version crash-loops; health_check: did not pass health_check_path; deadline: the restart ran out of time.
 */
export type SpawnErrorCategory = 'os' | 'exited' | 'timeout' | 'probation' | 'died' | 'health_check' | 'deadline';

export interface SpawnErrorDetails {
  category: SpawnErrorCategory;
  /** Short id shown on the error page and in the log line, to match a visitor's report to the log. */
  errorId: string;
  command: string;
  exitCode: number | null;
  signal: string | null;
  /** Last lines the process wrote to stdout/stderr, oldest first. */
  outputTail: readonly string[];
  /** Release dir (resolved app dir) the spawn was attempted from. */
  release: string;
  generation: number;
  at: number;
}

const SPAWN_CODES: Record<SpawnErrorCategory, ErrorCode> = {
  os: 'HF_SPAWN_OS',
  exited: 'HF_SPAWN_EXITED',
  timeout: 'HF_SPAWN_TIMEOUT',
  probation: 'HF_SPAWN_PROBATION',
  died: 'HF_SPAWN_DIED',
  health_check: 'HF_HEALTH_CHECK',
  deadline: 'HF_RESTART_TIMEOUT',
};

/** A process that never became ready (or died in probation). */
export class SpawnError extends HoldfastError {
  readonly details: SpawnErrorDetails;
  constructor(message: string, details: SpawnErrorDetails, options?: { cause?: unknown }) {
    super(SPAWN_CODES[details.category], message, options);
    this.name = 'SpawnError';
    this.details = details;
  }
}

/** The pool cannot take the request: queue full, shutting down, queue timeout. */
export class CapacityError extends HoldfastError {
  constructor(code: 'HF_QUEUE_FULL' | 'HF_SHUTTING_DOWN' | 'HF_QUEUE_TIMEOUT', message: string) {
    super(code, message);
    this.name = 'CapacityError';
  }
}

export class AdminError extends HoldfastError {
  readonly status: number;
  constructor(code: ErrorCode, status: number, message: string) {
    super(code, message);
    this.name = 'AdminError';
    this.status = status;
  }
}

/** Eight lowercase hex characters; random enough to find one line in a log. */
export function newErrorId(random: () => number = Math.random): string {
  let id = '';
  for (let i = 0; i < 8; i++) id += Math.floor(random() * 16).toString(16);
  return id;
}

export function isHoldfastError(e: unknown): e is HoldfastError {
  return e instanceof HoldfastError;
}
