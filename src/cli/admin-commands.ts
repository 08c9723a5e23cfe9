import type { Command } from 'commander';
import { registerRestart } from './restart';
import { registerResume } from './resume';
import { registerStatus } from './status';
import { registerStop } from './stop';

// The operator commands: each talks to a running instance through its admin API.
export function registerAdminCommands(program: Command): void {
  registerStatus(program);
  registerRestart(program);
  registerResume(program);
  registerStop(program);
}
