// The wire format of the admin API, shared by the server and the client (docs/admin-api.md).
// snake_case like the snapshots; `holdfast status --json` prints StatusDocument as is.

import type { ErrorCode } from '../errors';
import type { PoolSnapshot, RestartKind } from '../core/snapshots';
import type { RestartOutcome, RestartProgress } from '../core/operations';

/** What a token grants. read: status (and metrics). admin: everything. */
export type Access = 'read' | 'admin';

export interface InstanceStatus {
  name: string;
  pid: number;
  address: string;
  port: number;
  started_at: string;
  uptime_seconds: number;
}

/** GET /status */
export interface StatusDocument extends PoolSnapshot {
  version: string;
  /** When the snapshot was taken (ISO 8601, UTC). */
  date: string;
  instance: InstanceStatus;
}

/** POST /restart request body. */
export interface RestartRequest {
  /** Omitted: the configured default (rolling_restarts). */
  rolling?: boolean;
  /** true: stream NDJSON progress lines and the outcome; false (default): 202 at once. */
  wait?: boolean;
}

/** POST /restart without wait: 202. */
export interface RestartAccepted {
  accepted: true;
  kind: RestartKind | null;
  generation: number | null;
}

/** One NDJSON line of POST /restart with wait. The last line is an outcome or an error. */
export type RestartStreamLine =
  | ({ type: 'progress' } & RestartProgress)
  | ({ type: 'outcome' } & RestartOutcome)
  | ({ type: 'error' } & ErrorEnvelope);

/** POST /resume */
export interface ResumeResult {
  was_resisting: boolean;
}

/** POST /stop: 202, then the instance stops. */
export interface StopAccepted {
  stopping: true;
  pid: number;
}

/** Every error response: the HTTP status and this body. */
export interface ErrorEnvelope {
  error: { code: ErrorCode; message: string };
}

export const NDJSON = 'application/x-ndjson';
