import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGitCommit } from '../../../src/spawn/git-commit';

const A = 'a'.repeat(40);
const B = '0123456789abcdef0123456789abcdef01234567';

async function withTree(files: Record<string, string>, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hf-git-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('reads the commit of the branch HEAD points to', async () => {
  await withTree({ '.git/HEAD': 'ref: refs/heads/main\n', '.git/refs/heads/main': `${A}\n` }, async (dir) => {
    assert.equal(await readGitCommit(dir), A);
  });
});

test('finds a branch that only exists in packed-refs', async () => {
  const packed = `# pack-refs with: peeled fully-peeled sorted\n${A} refs/heads/other\n${B} refs/heads/main\n^${A}\n`;
  await withTree({ '.git/HEAD': 'ref: refs/heads/main\n', '.git/packed-refs': packed }, async (dir) => {
    assert.equal(await readGitCommit(dir), B);
  });
});

test('reads a detached HEAD as it is', async () => {
  await withTree({ '.git/HEAD': `${B}\n` }, async (dir) => {
    assert.equal(await readGitCommit(dir), B);
  });
});

test('follows a .git file to a worktree and its common dir', async () => {
  await withTree(
    {
      'repo/.git/refs/heads/feature': `${B}\n`,
      'repo/.git/worktrees/wt/HEAD': 'ref: refs/heads/feature\n',
      'repo/.git/worktrees/wt/commondir': '../..\n',
      'wt/.git': 'gitdir: ../repo/.git/worktrees/wt\n',
    },
    async (dir) => {
      assert.equal(await readGitCommit(join(dir, 'wt')), B);
    },
  );
});

test('reports no commit for a dir that is not a git checkout, or an unborn branch', async () => {
  await withTree({ 'app.js': '' }, async (dir) => {
    assert.equal(await readGitCommit(dir), undefined);
  });
  await withTree({ '.git/HEAD': 'ref: refs/heads/main\n' }, async (dir) => {
    assert.equal(await readGitCommit(dir), undefined);
  });
});
