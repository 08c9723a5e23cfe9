// WSGI (Python) versions of the app dirs in apps.ts, good and broken the way Python deploys break,
// and a Django project deployed into the releases/N + `current` layout.
import { appendFileSync, cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReleasesLayout, type Variant } from './apps';
import { fixtureApp } from './paths';

/** Debian's python, which has python3-flask and python3-django (the first python3 on PATH may not). */
export const SYSTEM_PYTHON = '/usr/bin/python3';

const GOOD = (version: string) => `import os
print('version ${version} loading')


def application(environ, start_response):
    body = ('version ${version} pid %d' % os.getpid()).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
`;

export function wsgiSource(variant: Variant, version: string): string {
  switch (variant) {
    case 'good':
      return GOOD(version);
    case 'syntax-error':
      return `print('booting ${version}')\nbroken = (\n`;
    case 'exit-at-start':
      return `import sys\nsys.stderr.write('FATAL: cannot connect to the database (${version})\\n')\nsys.exit(1)\n`;
    case 'hang':
      return `import time\nprint('waiting for something that never comes', flush=True)\ntime.sleep(3600)\n`;
    case 'crash-after-ready':
      return (
        GOOD(version) +
        `import threading, sys\n\ndef _crash():\n    sys.stderr.write('crashing after boot\\n')\n    sys.stderr.flush()\n    os._exit(3)\n\nthreading.Timer(1.0, _crash).start()\n`
      );
    case 'crash-later':
      return (
        GOOD(version) +
        `import threading, sys\n\ndef _crash():\n    sys.stderr.write('crashing 5 s after listening\\n')\n    sys.stderr.flush()\n    os._exit(4)\n\nthreading.Timer(5.0, _crash).start()\n`
      );
    case 'answers-500':
      return GOOD(version).replace("start_response('200 OK',", "start_response('500 Internal Server Error',");
    case 'poison':
      return GOOD(version).replace("    body = (", "    if environ.get('PATH_INFO') == '/poison':\n        os._exit(9)\n    body = (");
    case 'leaky':
      return GOOD(version).replace("    body = (", "    if environ.get('PATH_INFO') == '/grow':\n        globals().setdefault('kept', []).append(b'x' * (200 * 1024 * 1024))\n    body = (");
    case 'busy':
      return GOOD(version).replace("    body = (", "    import time\n    end = time.monotonic() + 0.005\n    while time.monotonic() < end:\n        pass\n    body = (");
    case 'wrong-port':
      throw new Error('wrong-port is for generic apps');
  }
}

/** A plain WSGI app dir whose passenger_wsgi.py is replaced in place on each deploy (shaped as AppDir). */
export class WsgiAppDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'hf-wsgi-'));

  constructor(variant: Variant = 'good', version = 'v1') {
    this.deploy(variant, version);
  }

  deploy(variant: Variant, version: string): void {
    const tmp = join(this.dir, '.passenger_wsgi.py.new');
    writeFileSync(tmp, wsgiSource(variant, version));
    renameSync(tmp, join(this.dir, 'passenger_wsgi.py'));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** How a Django release can be broken (each one fails while the process boots). */
export type DjangoVariant = 'good' | 'view-syntax-error' | 'bad-database-engine' | 'missing-dependency';

/** test/fixtures/apps/wsgi-django copied into releases/N, with `current` switched atomically. */
export class DjangoReleases extends ReleasesLayout {
  constructor(variant: DjangoVariant = 'good', version = 'v1') {
    super(mkdtempSync(join(tmpdir(), 'hf-django-')));
    this.deploy(variant, version);
  }

  deploy(variant: DjangoVariant, version: string): string {
    const release = this.nextRelease();
    cpSync(fixtureApp('wsgi-django'), release, { recursive: true, filter: (src) => !src.includes('__pycache__') });
    const views = join(release, 'mysite', 'views.py');
    const settings = join(release, 'mysite', 'settings.py');
    writeFileSync(views, readFileSync(views, 'utf8').replace('version v1', `version ${version}`));
    // Each breakage is appended: a later assignment in settings.py wins, as in a real edit.
    if (variant === 'view-syntax-error') appendFileSync(views, '\ndef broken(request:\n    pass\n');
    if (variant === 'bad-database-engine') {
      appendFileSync(settings, "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresqll', 'NAME': 'shop'}}\n");
    }
    if (variant === 'missing-dependency') {
      // A package the new release needs that is not installed on this host.
      appendFileSync(settings, "INSTALLED_APPS = ['rest_framework_not_installed']\n");
    }
    return this.publish(release);
  }
}
