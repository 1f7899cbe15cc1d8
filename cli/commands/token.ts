import type { Command } from 'commander';
import { signAccessToken, tokenSecretFromEnv, parseTtl } from '../../gateway/token.ts';
import { CliError, printJson } from '../output.ts';

export function register(program: Command): void {
  program
    .command('token')
    .description('Mint a development access token (HS256, BIFROST_TOKEN_SECRET) for a user of a team')
    .requiredOption('--user <id>', 'user id (the `sub` claim)')
    .requiredOption('--team <id>', 'team id (the `team` claim)')
    .option('--ttl <duration>', 'lifetime: 90s, 15m, 1h, 7d', '1h')
    .option('--json', 'print {token, userId, teamId, expiresAt} as JSON')
    .addHelpText('after', '\nExample:\n  $ bifrost token --user u1 --team t1 --ttl 2h\n  $ curl -H "x-access-token: $(bifrost token --user u1 --team t1)" http://127.0.0.1:3000/godserver/init')
    .action(async (opts: { user: string; team: string; ttl: string; json?: boolean }) => {
      let seconds: number;
      try {
        seconds = parseTtl(opts.ttl);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const secret = tokenSecretFromEnv({ warn: (m) => process.stderr.write(`warning: ${m}\n`) });
      const token = await signAccessToken(secret, { userId: opts.user, teamId: opts.team }, seconds);
      if (opts.json) {
        printJson({ token, userId: opts.user, teamId: opts.team, expiresAt: new Date(Date.now() + seconds * 1000).toISOString() });
      } else {
        process.stdout.write(token + '\n');
      }
    });
}
