// Bodies far larger than the proxy's memory budget go through intact, and the proxy's process
// (measured from outside, in a child process of its own) never holds them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { REPO_ROOT } from '../../helpers/paths';
import { dataChunks, dataSha256 } from '../../helpers/proxy-data';
import { pidAlive } from '../../helpers/holdfast';

const MB = 1024 * 1024;
const RSS_LIMIT_BYTES = 150 * MB;

/** Resident and peak resident memory of a process, from /proc. */
function memoryOf(pid: number): { rssBytes: number; peakBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rssBytes: kb('VmRSS'), peakBytes: kb('VmHWM') };
}

async function startHarness(): Promise<{ child: ChildProcess; port: number; upstreamPid: number }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist/test/helpers/proxy-harness.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout!.setEncoding('utf8');
  let output = '';
  const ready = await new Promise<{ port: number; upstreamPid: number }>((resolve, reject) => {
    child.stdout!.on('data', (chunk: string) => {
      output += chunk;
      const line = output.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line) as { port: number; upstreamPid: number });
    });
    child.once('exit', (code) => reject(new Error(`proxy harness exited with ${code}`)));
  });
  return { child, ...ready };
}

async function stopHarness(child: ChildProcess, upstreamPid: number): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
  assert.ok(!pidAlive(child.pid!), `harness pid ${child.pid} is gone`);
  for (let i = 0; i < 100 && pidAlive(upstreamPid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(!pidAlive(upstreamPid), `harness upstream pid ${upstreamPid} is gone`);
}

test('a 100 MB upload and a 300 MB download arrive intact while the proxy process stays under 150 MB', { timeout: 180_000 }, async (t) => {
  const { child, port, upstreamPid } = await startHarness();
  const pid = child.pid!;
  let maxRss = memoryOf(pid).rssBytes;
  const sampler = setInterval(() => {
    try {
      maxRss = Math.max(maxRss, memoryOf(pid).rssBytes);
    } catch {
      // the process is gone; the test will say why
    }
  }, 50);
  try {
    // Upload: 100 MB made as it is sent, hashed on the way out.
    const uploadBytes = 100 * MB;
    const sent = createHash('sha256');
    const body = Readable.from(
      (function* () {
        for (const chunk of dataChunks(uploadBytes)) {
          sent.update(chunk);
          yield chunk;
        }
      })(),
    );
    const uploaded = await new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, method: 'POST', path: '/upload', agent: false, headers: { 'content-length': String(uploadBytes) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve(JSON.parse(text) as { bytes: number; sha256: string }));
        },
      );
      req.on('error', reject);
      pipeline(body, req).catch(reject);
    });
    assert.equal(uploaded.bytes, uploadBytes);
    assert.equal(uploaded.sha256, sent.digest('hex'));

    // A chunked upload (no Content-Length) of 20 MB, too.
    const chunkedBytes = 20 * MB;
    const chunked = await new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(JSON.parse(text) as { bytes: number; sha256: string }));
      });
      req.on('error', reject);
      pipeline(Readable.from(dataChunks(chunkedBytes)), req).catch(reject);
    });
    assert.equal(chunked.bytes, chunkedBytes);
    assert.equal(chunked.sha256, dataSha256(chunkedBytes));

    // Download: 300 MB, hashed as it arrives.
    const downloadBytes = 300 * MB;
    const received = createHash('sha256');
    let receivedBytes = 0;
    await new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: `/download?bytes=${downloadBytes}`, agent: false }, (res) => {
          res.on('data', (chunk: Buffer) => {
            receivedBytes += chunk.length;
            received.update(chunk);
          });
          res.on('end', resolve);
          res.on('error', reject);
        })
        .on('error', reject);
    });
    assert.equal(receivedBytes, downloadBytes);
    assert.equal(received.digest('hex'), dataSha256(downloadBytes));

    const { peakBytes } = memoryOf(pid);
    t.diagnostic(`proxy process peak RSS ${Math.round(peakBytes / MB)} MB`);
    assert.ok(peakBytes < RSS_LIMIT_BYTES, `proxy process peak RSS ${Math.round(peakBytes / MB)} MB must stay under 150 MB`);
    assert.ok(maxRss < RSS_LIMIT_BYTES, `proxy process RSS reached ${Math.round(maxRss / MB)} MB`);
  } finally {
    clearInterval(sampler);
    await stopHarness(child, upstreamPid);
  }
});
