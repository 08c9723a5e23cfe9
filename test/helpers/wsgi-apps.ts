// Debian's python, and a Django project deployed into the releases/N + `current` layout, broken the
// way Django deploys break (plain WSGI apps of every variant: apps.ts, wsgiSource).
import { appendFileSync, cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReleasesLayout } from './apps';
import { fixtureApp } from './paths';

/** Debian's python, which has python3-flask and python3-django (the first python3 on PATH may not). */
export const SYSTEM_PYTHON = '/usr/bin/python3';


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
