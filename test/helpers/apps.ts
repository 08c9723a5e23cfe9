// App dirs that tests deploy versions into, good and broken in the ways real deploys break.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Variant = 'good' | 'syntax-error' | 'exit-at-start' | 'hang' | 'crash-after-ready' | 'crash-later' | 'answers-500' | 'poison' | 'wrong-port';

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
      // A good version with one request that kills its process.
      return GOOD(version).replace("res.setHeader('content-type', 'text/plain');", "if (req.url === '/poison') process.exit(9);\n  res.setHeader('content-type', 'text/plain');");
    case 'wrong-port':
      // For a generic app (app_start_command), which must listen on $PORT.
      return GOOD(version).replace('Number(process.env.PORT) || 3000', 'Number(process.env.PORT) + 1');
  }
}

/** A plain app dir whose app.js is replaced in place on each deploy. */
export class AppDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'hf-app-'));

  constructor(variant: Variant = 'good', version = 'v1') {
    this.deploy(variant, version);
  }

  deploy(variant: Variant, version: string): void {
    const tmp = join(this.dir, '.app.js.new');
    writeFileSync(tmp, appSource(variant, version));
    renameSync(tmp, join(this.dir, 'app.js'));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The Capistrano/Deployer layout: releases/N and a `current` symlink switched on deploy. */
export class ReleasesDir {
  readonly root = mkdtempSync(join(tmpdir(), 'hf-cap-'));
  readonly current = join(this.root, 'current');
  private n = 0;

  constructor(variant: Variant = 'good', version = 'v1') {
    mkdirSync(join(this.root, 'releases'));
    this.deploy(variant, version);
  }

  /** Writes a new release and switches `current` to it atomically; returns the release dir. */
  deploy(variant: Variant, version: string): string {
    const release = join(this.root, 'releases', String(++this.n));
    mkdirSync(release);
    writeFileSync(join(release, 'app.js'), appSource(variant, version));
    const link = join(this.root, `.current-${this.n}`);
    symlinkSync(release, link);
    renameSync(link, this.current);
    return release;
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
