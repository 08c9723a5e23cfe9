// The commit a release was checked out at, read from .git directly: spawning a git process per
// app spawn would be slow, and git may not even be installed on the server.

import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The .git dir of a checkout: a dir, or a file `gitdir: <path>` (worktrees, submodules). */
async function gitDirOf(dir: string): Promise<string | undefined> {
  const dotGit = join(dir, '.git');
  try {
    if ((await stat(dotGit)).isDirectory()) return dotGit;
  } catch {
    return undefined;
  }
  const m = /^gitdir:\s*(.+?)\s*$/m.exec((await readText(dotGit)) ?? '');
  return m ? resolve(dir, m[1]!) : undefined;
}

/** Where shared refs live: a worktree's gitdir names it in `commondir`. */
async function commonDirOf(gitDir: string): Promise<string> {
  const common = (await readText(join(gitDir, 'commondir')))?.trim();
  return common ? resolve(gitDir, common) : gitDir;
}

async function resolveRef(gitDir: string, commonDir: string, ref: string): Promise<string | undefined> {
  for (const dir of gitDir === commonDir ? [gitDir] : [gitDir, commonDir]) {
    const value = (await readText(join(dir, ref)))?.trim().toLowerCase();
    if (value !== undefined && SHA.test(value)) return value;
  }
  const packed = (await readText(join(commonDir, 'packed-refs'))) ?? '';
  for (const line of packed.split('\n')) {
    if (line.startsWith('#') || line.startsWith('^')) continue;
    const [sha, name] = line.trim().split(' ');
    if (name === ref && sha !== undefined && SHA.test(sha.toLowerCase())) return sha.toLowerCase();
  }
  return undefined;
}

/** The commit HEAD points to when dir is a git checkout; undefined otherwise or when unreadable. */
export async function readGitCommit(dir: string): Promise<string | undefined> {
  const gitDir = await gitDirOf(dir);
  if (gitDir === undefined) return undefined;
  const head = (await readText(join(gitDir, 'HEAD')))?.trim();
  if (head === undefined) return undefined;
  if (SHA.test(head.toLowerCase())) return head.toLowerCase(); // detached HEAD
  const m = /^ref:\s*(refs\/\S+)$/.exec(head);
  if (!m || m[1]!.split('/').includes('..')) return undefined;
  return resolveRef(gitDir, await commonDirOf(gitDir), m[1]!);
}
