// When a failed attempt is tried again on another process: one rule for the request path and the
// Upgrade path. A request is retried once, and only when it is idempotent and has no body (GET,
// HEAD) so that nothing of it is lost, and only when the process cannot have acted on it:
// - the connection was refused, or broke before the request was written: it never reached it;
// - the process died while requests it had been sent were unanswered: the oldest of them is taken
//   for the one it was working on — the possible cause (a poison request) — and is never sent
//   again, so that it cannot kill a second process; the others it had not started on (a process
//   serves its requests in order) and go to another process. The Upgrade path takes no such guess:
//   an upgrade that was written is never retried.

/** What a failed attempt tells the policy. */
export interface FailedAttempt {
  /** The process looks gone: refused, reset, or its socket vanished. */
  unreachable: boolean;
  /** The whole request was written to the process's connection. */
  reached: boolean;
  /** Written, and the oldest request unanswered when the process went away: the possible cause. */
  suspect: boolean;
}

/** Whether a request may be retried at all (decided once, when it arrives). */
export function isRetryable(method: string | undefined, hasBody: boolean): boolean {
  return (method === 'GET' || method === 'HEAD') && !hasBody;
}

/** Whether this failed attempt, the `attempts`th, is tried again on another process. */
export function shouldRetry(retryable: boolean, attempts: number, failure: FailedAttempt): boolean {
  return retryable && attempts === 1 && failure.unreachable && (!failure.reached || !failure.suspect);
}
