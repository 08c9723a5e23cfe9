import type { Command } from 'commander';

// `holdfast start`: filled in by the config/CLI work.
export function registerStart(_program: Command): void {}
