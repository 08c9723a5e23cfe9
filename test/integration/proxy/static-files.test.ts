// Files under the app's public/ are answered by holdfast (the proxy, or the hook inside the app
// process on the hand-off path) without the app's own code ever seeing the request: type,
// validators, 304, ranges, HEAD, precompressed siblings, a 500 MB file in bounded memory, and
// nothing outside the directory, however the path is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { Holdfast, get, stopClean } from '../../helpers/holdfast';
import { fixtureApp } from '../../helpers/paths';

const MB = 1024 * 1024;
const BIG_BYTES = 500 * MB;
const RSS_GROWTH_LIMIT_BYTES = 20 * MB;
const SECRET = 'TOPSECRET-outside-public';
const SCRIPT = 'console.log("hello from a static file");\n'.repeat(20);

interface StaticApp {
  dir: string;
  remove(): void;
}

/** The front fixture app with a public/ dir: small files, a fingerprinted one, a .gz sibling, symlinks out, a secret beside it. */
function staticApp(options: { big?: boolean } = {}): StaticApp {
  const dir = mkdtempSync(join(tmpdir(), 'hf-static-'));
  copyFileSync(join(fixtureApp('front'), 'app.js'), join(dir, 'app.js'));
  const pub = join(dir, 'public');
  mkdirSync(join(pub, 'assets'), { recursive: true });
  writeFileSync(join(pub, 'style.css'), 'body { color: #123456; }\n');
  writeFileSync(join(pub, 'assets', 'app-3f2a9c1b7d.js'), SCRIPT);
  writeFileSync(join(pub, 'script.js'), SCRIPT);
  writeFileSync(join(pub, 'script.js.gz'), gzipSync(SCRIPT));
  writeFileSync(join(pub, 'index.html'), '<h1>static index</h1>\n');
  writeFileSync(join(dir, 'secret.txt'), SECRET);
  symlinkSync(join(dir, 'secret.txt'), join(pub, 'leak.txt'));
  symlinkSync(dir, join(pub, 'up'));
  if (options.big) {
    // Sparse, with stamped blocks spread over it: intact means every byte where it belongs.
    const fd = openSync(join(pub, 'big.bin'), 'w');
    ftruncateSync(fd, BIG_BYTES);
    for (let at = 0; at < BIG_BYTES; at += 37 * MB) writeSync(fd, Buffer.from(`block at ${at} `.repeat(100)), 0, undefined, at);
    closeSync(fd);
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function request(url: string, o: { method?: string; headers?: http.OutgoingHttpHeaders; agent?: http.Agent } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? 'GET', headers: o.headers ?? {}, agent: o.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

/** A request line written as is: HTTP clients would normalize the traversal away. */
function raw(port: number, target: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (text += c));
    socket.on('error', reject);
    socket.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text }));
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
    socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  });
}

function rssOf(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

async function seenByApp(hf: Holdfast): Promise<string[]> {
  return (JSON.parse((await get(hf.url('/_seen'))).body) as { seen: string[] }).seen;
}

const PATHS = [
  { name: 'the hand-off path (served by the hook inside the app process)', args: ['--probation-time', '0'], handoff: true },
  { name: 'the proxy path', args: ['--no-connection-handoff'], handoff: false },
];

for (const path of PATHS) {
  test(`public/ files on ${path.name}: type, 304, ranges, HEAD, precompressed siblings, traversal refused, and the app sees none of it`, async () => {
    const app = staticApp();
    const hf = await Holdfast.start(app.dir, ['--max-pool-size', '1', ...path.args]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const css = await request(hf.url('/style.css'), { agent });
      assert.equal(css.status, 200);
      assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
      assert.equal(css.body.toString(), 'body { color: #123456; }\n');
      assert.equal(css.headers['accept-ranges'], 'bytes');
      assert.equal(css.headers['cache-control'], undefined, 'a file without a fingerprint gets no long cache');
      const etag = css.headers.etag!;
      const lastModified = css.headers['last-modified']!;
      assert.match(etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
      assert.ok(!Number.isNaN(Date.parse(lastModified)));
      if (path.handoff) {
        const processes = (await hf.status()).groups[0]!.processes;
        assert.equal(processes[0]!.connections, 1, 'the kept-alive connection was handed to the app process');
      }

      const byEtag = await request(hf.url('/style.css'), { agent, headers: { 'if-none-match': `"other", ${etag}` } });
      assert.equal(byEtag.status, 304);
      assert.equal(byEtag.body.length, 0);
      assert.equal(byEtag.headers.etag, etag);
      const byDate = await request(hf.url('/style.css'), { agent, headers: { 'if-modified-since': lastModified } });
      assert.equal(byDate.status, 304);
      const stale = await request(hf.url('/style.css'), { agent, headers: { 'if-modified-since': new Date(Date.parse(lastModified) - 60_000).toUTCString() } });
      assert.equal(stale.status, 200);

      const range = await request(hf.url('/style.css'), { agent, headers: { range: 'bytes=7-11' } });
      assert.equal(range.status, 206);
      assert.equal(range.body.toString(), 'color');
      assert.equal(range.headers['content-range'], 'bytes 7-11/25');
      const suffix = await request(hf.url('/style.css'), { agent, headers: { range: 'bytes=-2' } });
      assert.equal(suffix.status, 206);
      assert.equal(suffix.body.toString(), '}\n');
      const beyond = await request(hf.url('/style.css'), { agent, headers: { range: 'bytes=1000-' } });
      assert.equal(beyond.status, 416);
      assert.equal(beyond.headers['content-range'], 'bytes */25');
      const otherVersion = await request(hf.url('/style.css'), { agent, headers: { range: 'bytes=7-11', 'if-range': '"not-it"' } });
      assert.equal(otherVersion.status, 200, 'If-Range that does not match: the whole file');

      const head = await request(hf.url('/style.css'), { agent, method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '25');
      assert.equal(head.body.length, 0);

      const fingerprinted = await request(hf.url('/assets/app-3f2a9c1b7d.js'), { agent });
      assert.equal(fingerprinted.status, 200);
      assert.equal(fingerprinted.headers['content-type'], 'text/javascript; charset=utf-8');
      assert.equal(fingerprinted.headers['cache-control'], 'public, max-age=31536000, immutable');

      const gzipped = await request(hf.url('/script.js'), { agent, headers: { 'accept-encoding': 'br;q=1, gzip' } });
      assert.equal(gzipped.headers['content-encoding'], 'gzip');
      assert.equal(gzipped.headers['vary'], 'Accept-Encoding');
      assert.equal(gzipped.headers['content-type'], 'text/javascript; charset=utf-8');
      assert.equal(gunzipSync(gzipped.body).toString(), SCRIPT);
      const identity = await request(hf.url('/script.js'), { agent, headers: { 'accept-encoding': 'gzip;q=0' } });
      assert.equal(identity.headers['content-encoding'], undefined);
      assert.equal(identity.body.toString(), SCRIPT);

      const index = await request(hf.url('/'), { agent });
      assert.equal(index.body.toString(), '<h1>static index</h1>\n', 'a directory answers its index.html');

      // Nothing outside public/, however it is spelled; none of it reaches the app either.
      const attempts = [
        '/../secret.txt',
        '/assets/../../secret.txt',
        '/%2e%2e/secret.txt',
        '/%2E%2E%2Fsecret.txt',
        '/assets/%2e%2e/%2e%2e/secret.txt',
        '/%252e%252e/secret.txt',
        '/%252e%252e%252fsecret.txt',
        '/..%5csecret.txt',
        '/..%255csecret.txt',
        '/..\\secret.txt',
        '/style.css%00.txt',
        '/leak.txt',
        '/up/secret.txt',
        '/./style.css',
      ];
      for (const target of attempts) {
        const answer = await raw(hf.port, target);
        assert.ok(answer.status === 400 || answer.status === 404, `${target} answered ${answer.status}`);
        assert.ok(!answer.text.includes(SECRET), `${target} leaked the file outside public/`);
      }

      // Not a file under public/: the app answers, as before.
      const dynamic = await request(hf.url('/not-a-file?x=1'), { agent });
      assert.match(dynamic.body.toString(), /^app \d+ \/not-a-file\?x=1$/);
      const posted = await request(hf.url('/style.css'), { agent, method: 'POST' });
      assert.match(posted.body.toString(), /^app \d+ \/style\.css$/, 'only GET and HEAD are served from public/');
      assert.deepEqual(await seenByApp(hf), ['GET /not-a-file?x=1', 'POST /style.css'], 'the app saw no static file request and no traversal');
    } finally {
      agent.destroy();
      await stopClean(hf);
      app.remove();
    }
  });

  test(`a 500 MB public/ file streams intact on ${path.name}, with holdfast's memory growing less than 20 MB`, async (t) => {
    const app = staticApp({ big: true });
    const hf = await Holdfast.start(app.dir, ['--max-pool-size', '1', ...path.args]);
    try {
      const expected = createHash('sha256');
      for await (const chunk of createReadStream(join(app.dir, 'public', 'big.bin'))) expected.update(chunk as Buffer);
      const appPid = [...hf.appPids][0]!;
      // The process that reads the file: holdfast on the proxy path, the app process (its hook) on the hand-off path.
      const watched = [hf.child.pid!, appPid];
      const before = watched.map(rssOf);
      const peak = [...before];
      const sampler = setInterval(() => watched.forEach((pid, i) => (peak[i] = Math.max(peak[i]!, rssOf(pid)))), 50);
      const got = await new Promise<{ status: number; bytes: number; sha256: string }>((resolve, reject) => {
        http
          .get(hf.url('/big.bin'), { agent: false }, (res) => {
            const hash = createHash('sha256');
            let bytes = 0;
            res.on('data', (c: Buffer) => {
              bytes += c.length;
              hash.update(c);
            });
            res.on('end', () => resolve({ status: res.statusCode!, bytes, sha256: hash.digest('hex') }));
            res.on('error', reject);
          })
          .on('error', reject);
      });
      clearInterval(sampler);
      assert.equal(got.status, 200);
      assert.equal(got.bytes, BIG_BYTES);
      assert.equal(got.sha256, expected.digest('hex'));
      const growth = peak.map((p, i) => p - before[i]!);
      t.diagnostic(`RSS growth: holdfast ${(growth[0]! / MB).toFixed(1)} MB, app process ${(growth[1]! / MB).toFixed(1)} MB`);
      assert.ok(growth[0]! < RSS_GROWTH_LIMIT_BYTES, `holdfast's RSS grew ${(growth[0]! / MB).toFixed(1)} MB`);
      assert.ok(growth[1]! < RSS_GROWTH_LIMIT_BYTES, `the app process's RSS grew ${(growth[1]! / MB).toFixed(1)} MB`);
      assert.deepEqual(await seenByApp(hf), []);
    } finally {
      await stopClean(hf);
      app.remove();
    }
  });
}

test('--no-static-files sends public/ paths to the app, and static_files_dir names another dir', async () => {
  const app = staticApp();
  mkdirSync(join(app.dir, 'static'));
  writeFileSync(join(app.dir, 'static', 'other.txt'), 'from static/\n');
  const off = await Holdfast.start(app.dir, ['--no-static-files', '--probation-time', '0']);
  try {
    assert.match((await get(off.url('/style.css'))).body, /^app \d+ \/style\.css$/);
  } finally {
    await stopClean(off);
  }
  const moved = await Holdfast.start(app.dir, ['--static-files-dir', 'static', '--no-connection-handoff']);
  try {
    assert.equal((await get(moved.url('/other.txt'))).body, 'from static/\n');
    assert.match((await get(moved.url('/style.css'))).body, /^app \d+ \/style\.css$/);
  } finally {
    await stopClean(moved);
    app.remove();
  }
});
