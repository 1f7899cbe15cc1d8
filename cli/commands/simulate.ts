import type { Command } from 'commander';
import { DEV_TOKEN_SECRET } from '../../gateway/token.ts';
import { DEV_ADMIN_TOKEN } from '../../proxy/shim-defaults.ts';
import { parseDurationMs } from '../graceful.ts';
import { CliError, EXIT_CHECK_FAILED, EXIT_USAGE, printJson } from '../output.ts';
import { openRampStore } from '../rollout/open-ramp-store.ts';
import { describeOwner, describeStep } from '../rollout/ramp-runner.ts';
import { rampBlocksWrite } from '../rollout/ramp-state.ts';
import { statsLine, statsTable } from '../simulate/render.ts';
import { runSimulation, SimulationError } from '../simulate/simulation.ts';

interface SimulateCliOptions {
  clients: string;
  ramp: string;
  every: string;
  collections: string;
  updatesPerSec: string;
  grace: string;
  shim: string;
  adminUrl: string;
  rampFile?: string;
  json?: boolean;
}

/** Refuses to start while a ramp runs: both would set the rollout, and the ramp's guards would judge the simulation's traffic. */
async function refuseWhileRamping(rampFile: string | undefined): Promise<void> {
  const store = openRampStore({ ...(rampFile ? { rampFile } : {}) });
  try {
    const block = rampBlocksWrite(await store.read());
    if (block?.reason === 'rolling-back') {
      throw new CliError(
        `a ramp breached and its rollback to ${block.ramp.rollback?.to}% is unfinished: bifrost simulate would move the rollout away from it; finish it first (\`bifrost rollout ramp --resume\` or \`bifrost rollout rollback\`)`,
        EXIT_USAGE,
      );
    }
    if (block?.reason === 'running') {
      throw new CliError(
        `a ramp is running (${describeOwner(block.ramp)}, at ${describeStep(block.ramp)}): bifrost simulate sets the rollout itself and would fight it; wait for the ramp to finish, or pause it (\`bifrost rollout pause\`) or stop it (\`bifrost rollout rollback\`) first`,
        EXIT_USAGE,
      );
    }
  } finally {
    await store.close();
  }
}

function positiveInt(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`${name} must be a whole number ≥ 1, got "${v}"`);
  return n;
}

export function register(program: Command): void {
  program
    .command('simulate')
    .description('Drive N real unchanged legacy clients through the shim while ramping the rollout, and count what they miss')
    .option('--clients <n>', 'number of clients (sails.io.js 1.2.1 on socket.io-client 2)', '200')
    .option('--ramp <percents>', 'rollout steps, comma separated', '0,25,50,100')
    .option('--every <duration>', 'time at each step', '5s')
    .option('--collections <n>', 'collections the clients share', '20')
    .option('--updates-per-sec <n>', 'updates per second across all clients', '5')
    .option('--grace <duration>', 'how long an update may take to reach its subscribers', '2s')
    .option('--shim <url>', 'the shim clients connect to', `http://127.0.0.1:${process.env.BIFROST_SHIM_PORT ?? 3000}`)
    .option('--admin-url <url>', "the shim's admin API", `http://127.0.0.1:${process.env.BIFROST_ADMIN_PORT ?? 9090}`)
    .option('--ramp-file <file>', 'ramp state file to check for a running ramp when REDIS_URL is not set (env BIFROST_RAMP_FILE, default .bifrost/ramp.json)')
    .option('--json', 'print the final figures as JSON (no live table)')
    .addHelpText(
      'after',
      `
Needs a running stack (bifrost up) in flags-file mode; uses BIFROST_ADMIN_TOKEN and BIFROST_TOKEN_SECRET.
It changes the REAL rollout of that shim (PUT /api/rollout) at each step: every user of the stack
moves with it. The percentage it found is put back when it ends, also after an error or Ctrl-C
(exit 130; a second Ctrl-C exits at once without restoring). It refuses to start while a
\`bifrost rollout ramp\` is running (exit 2).
An update counts as missed when a client subscribed to its collection stayed connected from before
the update until the grace period after it and never received it. Exits 1 if anything was missed
or a request failed on a connected client.

Example:
  $ bifrost simulate --clients 200 --ramp 0,25,50,100 --every 5s`,
    )
    .action(async (o: SimulateCliOptions) => {
      const ramp = o.ramp.split(',').map((p) => Number(p.trim()));
      if (ramp.length === 0 || ramp.some((p) => !Number.isFinite(p) || p < 0 || p > 100)) throw new CliError(`--ramp must be percentages 0..100 separated by commas, got "${o.ramp}"`);
      let everyMs: number, graceMs: number;
      try {
        everyMs = parseDurationMs(o.every, '--every');
        graceMs = parseDurationMs(o.grace, '--grace');
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      await refuseWhileRamping(o.rampFile);
      const tty = process.stdout.isTTY && !o.json;
      let lastLines = 0;
      let stats;
      // Ctrl-C stops the ramp and restores the rollout; a second one exits at once.
      const abort = new AbortController();
      const onSignal = () => {
        if (abort.signal.aborted) process.exit(130);
        process.stderr.write('stopping: closing the clients and putting the rollout back (Ctrl-C again to exit at once)\n');
        abort.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        stats = await runSimulation({
          shimUrl: o.shim.replace(/\/$/, ''),
          adminUrl: o.adminUrl.replace(/\/$/, ''),
          adminToken: process.env.BIFROST_ADMIN_TOKEN || DEV_ADMIN_TOKEN,
          tokenSecret: process.env.BIFROST_TOKEN_SECRET || DEV_TOKEN_SECRET,
          clients: positiveInt(o.clients, '--clients'),
          collections: positiveInt(o.collections, '--collections'),
          updatesPerSec: positiveInt(o.updatesPerSec, '--updates-per-sec'),
          ramp,
          everyMs,
          graceMs,
          signal: abort.signal,
          onTick: (s) => {
            if (o.json) return;
            if (tty) {
              const text = statsTable(s);
              if (lastLines) process.stdout.write(`\x1b[${lastLines}A\x1b[0J`);
              process.stdout.write(text + '\n');
              lastLines = text.split('\n').length;
            } else process.stdout.write(statsLine(s) + '\n');
          },
        });
      } catch (err) {
        if (err instanceof SimulationError) throw new CliError(err.message);
        throw err;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      const lost = stats.missed > 0 || stats.failedRequests > 0;
      if (o.json) printJson({ ...stats, ok: !lost && !stats.interrupted });
      else {
        process.stdout.write(
          `\n${stats.interrupted ? 'INTERRUPTED' : lost ? 'LOST' : 'OK'}: ${stats.clients} clients, ${stats.updates} updates, ${stats.delivered} deliveries, ${stats.missed} missed, ${stats.failedRequests} failed requests, ${stats.reconnects} reconnects; ${stats.onBackend.bifrost} on Bifrost and ${stats.onBackend.sync} on Sync at the end.\n`,
        );
        for (const f of stats.failures) process.stdout.write(`  failed: ${f}\n`);
        if (stats.restored) process.stdout.write(`rollout put back to ${stats.startPercent}% (where it was before the simulation)\n`);
      }
      if (stats.interrupted) process.exitCode = 130;
      else if (lost) process.exitCode = EXIT_CHECK_FAILED;
    });
}
