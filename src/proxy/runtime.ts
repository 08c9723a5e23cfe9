// What the request and upgrade paths of one proxy share.

import type { SessionSource } from '../core/leases';
import { isHoldfastError } from '../errors';
import type { Logger } from '../log/logger';
import { codeOf, errorIdOf, errorPage, type ErrorPage } from './error-pages';
import type { UpstreamPools } from './upstream-pools';

export interface ProxyRuntime {
  readonly sessions: SessionSource;
  readonly logger: Logger;
  readonly environment: string;
  /** Lowercase. */
  readonly requestIdHeader: string;
  readonly pools: UpstreamPools;
  closing(): boolean;
}

export interface FailedRequest {
  method: string | undefined;
  url: string | undefined;
  requestId: string;
  accept: string | undefined;
}

/** The query string may hold secrets; the log gets the path only. */
export function pathOf(url: string | undefined): string | undefined {
  const q = url?.indexOf('?') ?? -1;
  return q >= 0 ? url!.slice(0, q) : url;
}

/**
 * Logs a request the app could not answer, under the error id the visitor will see, and returns
 * the page. The log line has every detail; the page only what the environment allows.
 */
export function failurePage(runtime: ProxyRuntime, error: unknown, request: FailedRequest, how?: { quiet: boolean }): ErrorPage {
  const errorId = errorIdOf(error);
  const page = errorPage(error, errorId, { environment: runtime.environment, accept: request.accept, requestId: request.requestId });
  const code = codeOf(error);
  const fields = {
    event: 'request_failed',
    error_id: errorId,
    code,
    status: page.status,
    method: request.method,
    path: pathOf(request.url),
    request_id: request.requestId,
    err: error,
  };
  const message = isHoldfastError(error) ? error.message : 'unexpected error while proxying a request';
  // quiet: the caller logged it its own way (once per burst, or with the process's pid).
  if (how?.quiet) runtime.logger.debug(fields, message);
  else if (code === 'HF_QUEUE_FULL' || code === 'HF_SHUTTING_DOWN' || code === 'HF_QUEUE_TIMEOUT') runtime.logger.warn(fields, message);
  else runtime.logger.error(fields, message);
  return page;
}
