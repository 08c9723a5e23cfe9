// The admin API client the CLI uses: finds the instance, reads its token, speaks HTTP on its socket.

import { readFile } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { RestartOutcome, RestartProgress } from '../core/operations';
import { AdminError, ERROR_CODES, HoldfastError, type ErrorCode } from '../errors';
import {
  NDJSON,
  type Access,
  type ErrorEnvelope,
  type RestartAccepted,
  type RestartStreamLine,
  type ResumeResult,
  type StatusDocument,
  type StopAccepted,
} from './api';
import { ADMIN_TOKEN_FILE, READ_TOKEN_FILE, findInstance, type InstanceRecord } from './instance';

export interface ConnectOptions {
  /** Which instance; required when several run. */
  name?: string;
  registryDir?: string;
  /** Which token to read: 'read' for status, 'admin' to change things. */
  access: Access;
  /** Bound on each request that does not wait for a restart. Default 30 s. */
  timeoutMs?: number;
}

export interface RestartOptions {
  /** Omitted: the instance's configured default. */
  rolling?: boolean;
  onProgress?: (progress: RestartProgress) => void;
}

/** Finds the instance (findInstance) and reads the token for the access asked. */
export async function connectAdmin(opts: ConnectOptions): Promise<AdminClient> {
  const instance = await findInstance(opts.name, opts.registryDir);
  return new AdminClient(instance, await readToken(instance, opts.access), opts.timeoutMs ?? 30_000);
}

/** The instance's token for this access, from its instance dir (only its user may read it). */
export async function readToken(instance: InstanceRecord, access: Access): Promise<string> {
  const file = join(instance.dir, access === 'admin' ? ADMIN_TOKEN_FILE : READ_TOKEN_FILE);
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new HoldfastError(
      'HF_ADMIN_UNAUTHORIZED',
      `cannot read the ${access} token of instance "${instance.name}" (${file}): ${messageOf(err)}; run as the user that started it`,
      { cause: err },
    );
  }
}

export class AdminClient {
  constructor(
    readonly instance: InstanceRecord,
    private readonly token: string,
    private readonly timeoutMs = 30_000,
  ) {}

  async status(): Promise<StatusDocument> {
    return (await this.json('GET', '/status')) as StatusDocument;
  }

  /** Without wait: resolves once the restart was accepted. */
  restart(opts: RestartOptions & { wait: false }): Promise<RestartAccepted>;
  /** With wait (the default): streams progress to onProgress and resolves with the outcome. */
  restart(opts?: RestartOptions & { wait?: true }): Promise<RestartOutcome>;
  async restart(opts: RestartOptions & { wait?: boolean } = {}): Promise<RestartOutcome | RestartAccepted> {
    const body: { rolling?: boolean; wait: boolean } = { wait: opts.wait !== false };
    if (opts.rolling !== undefined) body.rolling = opts.rolling;
    if (!body.wait) return (await this.json('POST', '/restart', body)) as RestartAccepted;

    const res = await this.send('POST', '/restart', body, 0);
    await throwIfError(res);
    if (!String(res.headers['content-type'] ?? '').startsWith(NDJSON)) {
      res.resume();
      throw new HoldfastError('HF_INTERNAL', `instance "${this.instance.name}" answered POST /restart with ${res.headers['content-type'] ?? 'no content type'}, not NDJSON`);
    }
    const lost = () =>
      new HoldfastError(
        'HF_INSTANCE_NOT_FOUND',
        `lost the connection to instance "${this.instance.name}" (pid ${this.instance.pid}) before the restart finished; see holdfast status`,
      );
    let buffered = '';
    const chunks = (async function* () {
      try {
        for await (const chunk of res) yield chunk as Buffer;
      } catch (err) {
        throw Object.assign(lost(), { cause: err });
      }
    })();
    for await (const chunk of chunks) {
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (text === '') continue;
        const line = JSON.parse(text) as RestartStreamLine;
        if (line.type === 'progress') {
          const { type: _type, ...progress } = line;
          opts.onProgress?.(progress);
        } else if (line.type === 'outcome') {
          const { type: _type, ...outcome } = line;
          res.resume();
          return outcome;
        } else {
          res.resume();
          throw toError(line, 500);
        }
      }
    }
    throw lost();
  }

  async resume(): Promise<ResumeResult> {
    return (await this.json('POST', '/resume', {})) as ResumeResult;
  }

  /** Asks the instance to stop; resolves when it accepted (it then stops on its own). */
  async stop(): Promise<StopAccepted> {
    return (await this.json('POST', '/stop', {})) as StopAccepted;
  }

  private async json(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const res = await this.send(method, path, body, this.timeoutMs);
    await throwIfError(res);
    const text = await readAll(res).catch((err: unknown) => {
      throw new HoldfastError('HF_INSTANCE_NOT_FOUND', `lost the connection to instance "${this.instance.name}" during ${method} ${path}`, { cause: err });
    });
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new HoldfastError('HF_INTERNAL', `instance "${this.instance.name}" answered ${method} ${path} with something that is not JSON`);
    }
  }

  /** timeoutMs 0: no idle bound (a rolling restart may be quiet for minutes between steps). */
  private send(method: string, path: string, body: unknown, timeoutMs: number): Promise<IncomingMessage> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { name, pid, socket_path: socketPath } = this.instance;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath,
          path,
          method,
          agent: false,
          headers: {
            host: 'holdfast',
            authorization: `Bearer ${this.token}`,
            accept: 'application/json, application/x-ndjson',
            ...(payload === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          },
        },
        (res) => {
          // The deadline covered getting an answer; a body (the restart stream) may take longer.
          req.setTimeout(0);
          resolve(res);
        },
      );
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () => {
          req.destroy(new HoldfastError('HF_INSTANCE_NOT_FOUND', `instance "${name}" (pid ${pid}) did not answer ${method} ${path} within ${Math.round(timeoutMs / 1000)} s`));
        });
      }
      req.on('error', (err) => {
        if (err instanceof HoldfastError) reject(err);
        else {
          reject(
            new HoldfastError('HF_INSTANCE_NOT_FOUND', `cannot reach instance "${name}" (pid ${pid}) on its admin socket ${socketPath}: ${messageOf(err)}`, {
              cause: err,
            }),
          );
        }
      });
      req.end(payload);
    });
  }
}

async function throwIfError(res: IncomingMessage): Promise<void> {
  const status = res.statusCode ?? 0;
  if (status < 400) return;
  const text = await readAll(res);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  throw toError(parsed, status);
}

function toError(body: unknown, status: number): AdminError {
  const error = (body as Partial<ErrorEnvelope> | null)?.error;
  if (error && typeof error.message === 'string' && typeof error.code === 'string') {
    const code: ErrorCode = error.code in ERROR_CODES ? error.code : 'HF_INTERNAL';
    return new AdminError(code, status, error.message);
  }
  return new AdminError('HF_INTERNAL', status, `the admin API answered ${status} without an error envelope`);
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
