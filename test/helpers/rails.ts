// Releases of the Rails fixture (test/fixtures/apps/rails) in the Capistrano layout, good and
// broken in the ways Rails deploys break: a syntax error in a file eager-loaded at boot, a
// database.yml naming an adapter that does not exist, an exception in an initializer.
import { cpSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReleasesLayout } from './apps';
import { fixtureApp } from './paths';

export type RailsVariant = 'good' | 'syntax-error' | 'bad-adapter' | 'initializer-raises';

/** What the log and status show of each broken variant. */
export const RAILS_EVIDENCE: Readonly<Record<Exclude<RailsVariant, 'good'>, RegExp>> = {
  'syntax-error': /SyntaxError/,
  'bad-adapter': /Could not load the 'nonexistent' Active Record adapter/,
  'initializer-raises': /RuntimeError: the payment gateway key is missing/,
};

export class RailsReleases extends ReleasesLayout {
  constructor(version = 'v1') {
    super(mkdtempSync(join(tmpdir(), 'hf-rails-')));
    this.deploy('good', version);
  }

  /** Copies the fixture into releases/N, breaks it as asked, and switches `current` to it. */
  deploy(variant: RailsVariant, version: string): string {
    const release = this.nextRelease();
    cpSync(fixtureApp('rails'), release, { recursive: true, filter: (src) => !/\.sqlite3$|\.log$/.test(src) });
    writeFileSync(join(release, 'config/initializers/version.rb'), `HOLDFAST_APP_VERSION = '${version}'\n`);
    if (variant === 'syntax-error') {
      writeFileSync(join(release, 'app/models/invoice.rb'), 'class Invoice < ApplicationRecord\n  def total(\nend\n');
    } else if (variant === 'bad-adapter') {
      const yml = join(release, 'config/database.yml');
      writeFileSync(yml, readFileSync(yml, 'utf8').replace('adapter: sqlite3', 'adapter: nonexistent'));
    } else if (variant === 'initializer-raises') {
      writeFileSync(join(release, 'config/initializers/payments.rb'), "raise 'the payment gateway key is missing' unless ENV['PAYMENT_KEY']\n");
    }
    return this.publish(release);
  }
}
