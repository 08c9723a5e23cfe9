// Paths from compiled tests (dist/test/helpers) back to the repository.
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '../../..');
export const FIXTURE_APPS = join(REPO_ROOT, 'test/fixtures/apps');
export const CLI = join(REPO_ROOT, 'bin/holdfast');

export function fixtureApp(name: string): string {
  return join(FIXTURE_APPS, name);
}
