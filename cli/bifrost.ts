/**
 * The `bifrost` command. Each sub-command lives in cli/commands/<name>.ts and
 * exports `register(program)`.
 */
import { Command, CommanderError } from 'commander';
import { CliError, EXIT_USAGE } from './output.ts';
import { register as registerUp } from './commands/up.ts';
import { register as registerGateway } from './commands/gateway.ts';
import { register as registerShim } from './commands/shim.ts';
import { register as registerSyncReference } from './commands/sync-reference.ts';
import { register as registerToken } from './commands/token.ts';
import { register as registerRollout } from './commands/rollout.ts';
import { register as registerMigrate } from './commands/migrate.ts';
import { register as registerSimulate } from './commands/simulate.ts';

const program = new Command('bifrost')
  .description('Bifrost migration kit: move live WebSocket clients off Sync onto Bifrost, one squad at a time.')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerUp(program);
registerGateway(program);
registerShim(program);
registerSyncReference(program);
registerToken(program);
registerRollout(program);
registerMigrate(program);
registerSimulate(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // commander already printed its message; help/version exit 0, usage errors 2.
    process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  }
  if (err instanceof CliError) {
    process.stderr.write(`bifrost: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`bifrost: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(EXIT_USAGE);
}
