import type { Command } from 'commander';

// status, restart, resume, stop: filled in by the admin work.
export function registerAdminCommands(_program: Command): void {}
