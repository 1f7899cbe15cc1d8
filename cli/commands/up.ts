import type { Command } from 'commander';
import pc from 'picocolors';
import { startStack, stackOptionsFromEnv } from '../stack.ts';
import { onStopSignal } from '../graceful.ts';
import { CliError, printJson } from '../output.ts';

export function register(program: Command): void {
  program
    .command('up')
    .description('Run the whole stack on this machine: Sync + Godserver, Bifrost gateway + private API, shim + admin/dashboard')
    .option('--redis <url>', 'share a Redis broker (env REDIS_URL); default: embedded in-process broker')
    .option('--nodes <n>', 'number of Bifrost gateway processes (needs --redis when > 1)', '1')
    .option('--log-level <level>', 'log level of every component', process.env.LOG_LEVEL ?? 'warn')
    .option('--json', 'print the URLs as one JSON object when ready')
    .addHelpText(
      'after',
      `
Ports come from BIFROST_SHIM_PORT (3000), BIFROST_ADMIN_PORT (9090), BIFROST_GATEWAY_PORT (8080),
BIFROST_PRIVATE_PORT (8081) and SYNC_PORT (1337); 0 picks free ports. Flags: BIFROST_FLAGS_FILE
(.bifrost/flags.json, created at 0%). Ctrl-C stops everything.

Examples:
  $ npx bifrost up
  $ npx bifrost up --redis redis://127.0.0.1:6379 --nodes 3`,
    )
    .action(async (o: { redis?: string; nodes: string; logLevel: string; json?: boolean }) => {
      const nodes = Number(o.nodes);
      const unset = ['BIFROST_TOKEN_SECRET', 'BIFROST_SERVICE_TOKEN', 'BIFROST_ADMIN_TOKEN'].filter((k) => !process.env[k]);
      if (unset.length) {
        process.stderr.write(pc.yellow(`warning: ${unset.join(', ')} not set: using the built-in development secrets. Fine on a laptop; never in production.\n`));
      }
      const opts = stackOptionsFromEnv(process.env, { redis: o.redis, nodes, logLevel: o.logLevel });
      if (!o.json) opts.onProgress = (m) => process.stderr.write(pc.dim(`… ${m}\n`));
      let stack;
      try {
        stack = await startStack(opts);
      } catch (err) {
        throw new CliError(`bifrost up failed: ${(err as Error).message}`);
      }
      const s = stack;
      if (o.json) {
        printJson({ shimUrl: s.shimUrl, adminUrl: s.adminUrl, syncUrl: s.syncUrl, nodes: s.nodes.map(({ nodeId, publicUrl, privateUrl }) => ({ nodeId, publicUrl, privateUrl })), flagsFile: s.flagsFile, broker: s.broker });
      } else {
        const line = (k: string, v: string) => process.stdout.write(`  ${k.padEnd(22)} ${v}\n`);
        process.stdout.write(pc.bold(`\nBifrost stack is up`) + ` (${s.broker === 'redis' ? `Redis broker, ${s.nodes.length} node(s)` : 'embedded broker'}, flags file ${s.flagsFile})\n\n`);
        line('clients connect to', `${s.shimUrl}   (Godserver: ${s.shimUrl}/godserver/init)`);
        line('shim admin', `${s.adminUrl}/api/rollout   ${s.adminUrl}/metrics   ${s.adminUrl}/dashboard`);
        line('Sync (reference)', s.syncUrl);
        for (const n of s.nodes) {
          line(`Bifrost ${n.nodeId}`, `${n.publicUrl}   (native ws: ${n.publicUrl.replace(/^http/, 'ws')}/ws, legacy: ${n.publicUrl}/socket.io/)`);
          line(`  private API`, n.privateUrl);
        }
        process.stdout.write(`\nMint a token:   npx bifrost token --user u1 --team t1\n`);
        process.stdout.write(`Try it:         curl -H "x-access-token: $(npx bifrost token --user u1 --team t1)" ${s.shimUrl}/godserver/init\n`);
        process.stdout.write(`Move users:     npx bifrost rollout set 25\n`);
        process.stdout.write(pc.dim(`\nCtrl-C stops everything.\n`));
      }
      onStopSignal(async () => {
        if (!o.json) process.stderr.write('stopping…\n');
        await s.close();
      });
    });
}
