// App dirs that tests deploy versions into, good and broken in the ways real deploys break.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Variant =
  | 'good'
  | 'syntax-error'
  | 'exit-at-start'
  | 'hang'
  | 'crash-after-ready'
  | 'crash-later'
  | 'answers-500'
  | 'poison'
  | 'leaky'
  | 'busy'
  | 'wrong-port';
/** A Node app (app.js), a Rack app (config.ru) or a WSGI app (passenger_wsgi.py) of the same variants. */
export type AppKind = 'node' | 'rack' | 'wsgi';

const GOOD = (version: string) => `const http = require('node:http');
http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end('version ${version} pid ' + process.pid);
}).listen(Number(process.env.PORT) || 3000, () => console.log('version ${version} listening'));
`;

export function appSource(variant: Variant, version: string): string {
  switch (variant) {
    case 'good':
      return GOOD(version);
    case 'syntax-error':
      return `console.log('booting ${version}');\nconst broken = ;\n`;
    case 'exit-at-start':
      return `console.error('FATAL: cannot connect to the database (${version})');\nprocess.exit(1);\n`;
    case 'hang':
      return `console.log('waiting for something that never comes');\nsetInterval(() => {}, 1000);\n`;
    case 'crash-after-ready':
      return GOOD(version) + `setTimeout(() => { console.error('crashing after boot'); process.exit(3); }, 1000);\n`;
    case 'crash-later':
      // Boots, serves, passes probation, and dies 5 s after it listens (puma or gunicorn loading the app late).
      return GOOD(version) + `setTimeout(() => { console.error('crashing 5 s after listening'); process.exit(4); }, 5000);\n`;
    case 'answers-500':
      // Boots and listens, but every request fails (a database that is unreachable, a view that cannot load).
      return GOOD(version).replace("res.setHeader('content-type', 'text/plain');", "res.statusCode = 500; console.error('cannot reach the database');");
    case 'poison':
      // A good version with one request that kills its process (and, for a Node app, one that kills
      // it 2 s later, and one answered after 15 s).
      return GOOD(version).replace(
        "res.setHeader('content-type', 'text/plain');",
        "if (req.url === '/poison') process.exit(9);\n  if (req.url === '/poison-later') return void setTimeout(() => process.exit(9), 2000);\n  if (req.url === '/wait') return void setTimeout(() => res.end('waited'), 15000);\n  res.setHeader('content-type', 'text/plain');",
      );
    case 'leaky':
      // A good version whose /grow keeps 200 MB for good: a process to take past memory_limit.
      return GOOD(version).replace("res.setHeader('content-type', 'text/plain');", "if (req.url === '/grow') { (global.kept ||= []).push(Buffer.alloc(200 * 1024 * 1024, 1)); }\n  res.setHeader('content-type', 'text/plain');");
    case 'busy':
      // A good version that burns ~5 ms of CPU per request, so a spike asks for more processes.
      return GOOD(version).replace("res.setHeader('content-type', 'text/plain');", "const end = Date.now() + 5; while (Date.now() < end);\n  res.setHeader('content-type', 'text/plain');");
    case 'wrong-port':
      // For a generic app (app_start_command), which must listen on $PORT.
      return GOOD(version).replace('Number(process.env.PORT) || 3000', 'Number(process.env.PORT) + 1');
  }
}

const RACK_GOOD = (version: string) => `puts 'version ${version} booting'
run lambda { |env| [200, { 'content-type' => 'text/plain' }, ["version ${version} pid #{Process.pid}"]] }
`;

/** The config.ru of a Rack app that breaks as appSource's Node app does. */
export function rackSource(variant: Variant, version: string): string {
  switch (variant) {
    case 'good':
      return RACK_GOOD(version);
    case 'syntax-error':
      return `puts 'booting ${version}'\nbroken = )\nrun nil\n`;
    case 'exit-at-start':
      return `$stderr.puts 'FATAL: cannot connect to the database (${version})'\nexit 1\n`;
    case 'hang':
      return `puts 'waiting for something that never comes'\nsleep\n`;
    case 'crash-after-ready':
      // Each process (a fork of the preloader, or one started directly) dies a second after it is up.
      return (
        RACK_GOOD(version) +
        `crash = -> { Thread.new { sleep 1; $stderr.puts 'crashing after boot'; exit!(3) } }
Process.singleton_class.prepend(Module.new { define_method(:_fork) { super().tap { |pid| crash.call if pid.zero? } } })
crash.call unless ENV['HOLDFAST_PRELOADER'] == '1'
`
      );
    case 'crash-later':
      // Boots, serves, passes probation, and dies 5 s after it is up (each fork of the preloader too).
      return (
        RACK_GOOD(version) +
        `crash = -> { Thread.new { sleep 5; $stderr.puts 'crashing 5 s after listening'; exit!(4) } }
Process.singleton_class.prepend(Module.new { define_method(:_fork) { super().tap { |pid| crash.call if pid.zero? } } })
crash.call unless ENV['HOLDFAST_PRELOADER'] == '1'
`
      );
    case 'answers-500':
      return `puts 'version ${version} booting'\nrun lambda { |env| $stderr.puts 'cannot reach the database'; [500, { 'content-type' => 'text/plain' }, ['error']] }\n`;
    case 'poison':
      return `puts 'version ${version} booting'\nrun lambda { |env| exit!(9) if env['PATH_INFO'] == '/poison'; [200, { 'content-type' => 'text/plain' }, ["version ${version} pid #{Process.pid}"]] }\n`;
    case 'leaky':
      return `puts 'version ${version} booting'\nrun lambda { |env| ($kept ||= []) << ('x' * (200 * 1024 * 1024)) if env['PATH_INFO'] == '/grow'; [200, { 'content-type' => 'text/plain' }, ["version ${version} pid #{Process.pid}"]] }\n`;
    case 'busy':
      return `puts 'version ${version} booting'\nrun lambda { |env| t = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 0.005; nil while Process.clock_gettime(Process::CLOCK_MONOTONIC) < t; [200, { 'content-type' => 'text/plain' }, ["version ${version} pid #{Process.pid}"]] }\n`;
    case 'wrong-port':
      throw new Error('a Rack app listens where its loader says; wrong-port is for generic apps');
  }
}

const WSGI_GOOD = (version: string) => `import os
print('version ${version} loading')


def application(environ, start_response):
    body = ('version ${version} pid %d' % os.getpid()).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
`;

/** The passenger_wsgi.py of a WSGI app that breaks as appSource's Node app does. */
export function wsgiSource(variant: Variant, version: string): string {
  switch (variant) {
    case 'good':
      return WSGI_GOOD(version);
    case 'syntax-error':
      return `print('booting ${version}')\nbroken = (\n`;
    case 'exit-at-start':
      return `import sys\nsys.stderr.write('FATAL: cannot connect to the database (${version})\\n')\nsys.exit(1)\n`;
    case 'hang':
      return `import time\nprint('waiting for something that never comes', flush=True)\ntime.sleep(3600)\n`;
    case 'crash-after-ready':
      return (
        WSGI_GOOD(version) +
        `import threading, sys\n\ndef _crash():\n    sys.stderr.write('crashing after boot\\n')\n    sys.stderr.flush()\n    os._exit(3)\n\nthreading.Timer(1.0, _crash).start()\n`
      );
    case 'crash-later':
      return (
        WSGI_GOOD(version) +
        `import threading, sys\n\ndef _crash():\n    sys.stderr.write('crashing 5 s after listening\\n')\n    sys.stderr.flush()\n    os._exit(4)\n\nthreading.Timer(5.0, _crash).start()\n`
      );
    case 'answers-500':
      return WSGI_GOOD(version).replace("start_response('200 OK',", "start_response('500 Internal Server Error',");
    case 'poison':
      return WSGI_GOOD(version).replace("    body = (", "    if environ.get('PATH_INFO') == '/poison':\n        os._exit(9)\n    body = (");
    case 'leaky':
      return WSGI_GOOD(version).replace("    body = (", "    if environ.get('PATH_INFO') == '/grow':\n        globals().setdefault('kept', []).append(b'x' * (200 * 1024 * 1024))\n    body = (");
    case 'busy':
      return WSGI_GOOD(version).replace("    body = (", "    import time\n    end = time.monotonic() + 0.005\n    while time.monotonic() < end:\n        pass\n    body = (");
    case 'wrong-port':
      throw new Error('wrong-port is for generic apps');
  }
}

const ENTRY: Readonly<Record<AppKind, string>> = { node: 'app.js', rack: 'config.ru', wsgi: 'passenger_wsgi.py' };

function entryFile(kind: AppKind): string {
  return ENTRY[kind];
}

function sourceOf(kind: AppKind, variant: Variant, version: string): string {
  return kind === 'rack' ? rackSource(variant, version) : kind === 'wsgi' ? wsgiSource(variant, version) : appSource(variant, version);
}

/** A plain app dir whose app.js (or config.ru, or passenger_wsgi.py) is replaced in place on each deploy. */
export class AppDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'hf-app-'));

  constructor(variant: Variant = 'good', version = 'v1', readonly kind: AppKind = 'node') {
    this.deploy(variant, version);
  }

  deploy(variant: Variant, version: string): void {
    const tmp = join(this.dir, `.${entryFile(this.kind)}.new`);
    writeFileSync(tmp, sourceOf(this.kind, variant, version));
    renameSync(tmp, join(this.dir, entryFile(this.kind)));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The Capistrano/Deployer layout, whatever the app: releases/N and a `current` symlink switched atomically. */
export class ReleasesLayout {
  readonly current: string;
  private n = 0;

  constructor(readonly root: string) {
    this.current = join(root, 'current');
    mkdirSync(join(root, 'releases'));
  }

  /** The dir of the next release (not made yet). */
  protected nextRelease(): string {
    return join(this.root, 'releases', String(++this.n));
  }

  /** Switches `current` to the release at once (a rename over the old link); returns the release dir. */
  protected publish(release: string): string {
    const link = join(this.root, `.current-${this.n}`);
    symlinkSync(release, link);
    renameSync(link, this.current);
    return release;
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** The releases layout of the Node, Rack or WSGI app of appSource / rackSource / wsgiSource. */
export class ReleasesDir extends ReleasesLayout {
  constructor(variant: Variant = 'good', version = 'v1', readonly kind: AppKind = 'node') {
    super(mkdtempSync(join(tmpdir(), 'hf-cap-')));
    this.deploy(variant, version);
  }

  /** Writes a new release and switches `current` to it atomically; returns the release dir. */
  deploy(variant: Variant, version: string): string {
    const release = this.nextRelease();
    mkdirSync(release);
    writeFileSync(join(release, entryFile(this.kind)), sourceOf(this.kind, variant, version));
    return this.publish(release);
  }
}
