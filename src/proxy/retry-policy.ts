// When a failed attempt is tried again on another process: one rule for the request path and the
// Upgrade path. Only a request that provably never reached its process is retried — the connection
// was refused, or broke before the request was written — and only once, and only when it is
// idempotent and has no body (GET, HEAD) so that nothing of it is lost. A request the process
// received is never sent again: the process may have acted on it, and a request that kills its
// process (a poison request) must not kill a second one.

/** What a failed attempt tells the policy. */
export interface FailedAttempt {
  /** The process looks gone: refused, reset, or its socket vanished. */
  unreachable: boolean;
  /** The whole request was written to the process's connection. */
  reached: boolean;
}

/** Whether a request may be retried at all (decided once, when it arrives). */
export function isRetryable(method: string | undefined, hasBody: boolean): boolean {
  return (method === 'GET' || method === 'HEAD') && !hasBody;
}

/** Whether this failed attempt, the `attempts`th, is tried again on another process. */
export function shouldRetry(retryable: boolean, attempts: number, failure: FailedAttempt): boolean {
  return retryable && attempts === 1 && failure.unreachable && !failure.reached;
}
