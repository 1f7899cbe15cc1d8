// Placeholder until this command is built (see the README status table).
import type { Command } from 'commander';
import { CliError } from '../output.ts';

export function register(program: Command): void {
  program
    .command('up')
    .description('not built yet')
    .allowUnknownOption()
    .action(() => {
      throw new CliError('bifrost up is not built yet');
    });
}
