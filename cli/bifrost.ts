/**
 * The `bifrost` command. Each sub-command lives in cli/commands/<name>.ts and
 * exports `register(program)`.
 */
import { Command, CommanderError } from 'commander';
import { CliError, EXIT_CHECK_FAILED, EXIT_USAGE } from './output.ts';
const program = new Command('bifrost')
  .description('Bifrost migration kit: move live WebSocket clients off Sync onto Bifrost, one squad at a time.')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

/**
 * Each command's module is loaded only when that command runs (all of them for
 * help or an unknown word): starting Sails, the shim or the gateway code costs
 * seconds of CPU that `bifrost token` or `bifrost migrate list` should not pay.
 */
const COMMANDS: Record<string, () => Promise<{ register(program: Command): void }>> = {
  up: () => import('./commands/up.ts'),
  gateway: () => import('./commands/gateway.ts'),
  shim: () => import('./commands/shim.ts'),
  'sync-reference': () => import('./commands/sync-reference.ts'),
  token: () => import('./commands/token.ts'),
  rollout: () => import('./commands/rollout.ts'),
  migrate: () => import('./commands/migrate.ts'),
  simulate: () => import('./commands/simulate.ts'),
};
const asked = process.argv[2];
const wanted = asked && Object.hasOwn(COMMANDS, asked) ? [asked] : Object.keys(COMMANDS);
for (const name of wanted) (await COMMANDS[name]!()).register(program);

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
  // A runtime failure (Redis, the file system, the network), not bad usage: exit 1, one line; the stack with BIFROST_DEBUG=1.
  const e = err as (Error & { code?: string }) | undefined;
  const line = e instanceof Error ? `${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}` : String(err);
  process.stderr.write(process.env.BIFROST_DEBUG ? `bifrost: ${e?.stack ?? line}\n` : `bifrost: ${line.split('\n')[0]} (BIFROST_DEBUG=1 shows the stack trace)\n`);
  process.exit(EXIT_CHECK_FAILED);
}
