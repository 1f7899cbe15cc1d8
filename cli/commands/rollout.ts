/**
 * `bifrost rollout …`: the share of clients the shim sends to Bifrost.
 *
 *   status                      percent, bucket-by, live connections, decisions, the ramp
 *   set <percent>               change the flag now (flags file, or LaunchDarkly REST)
 *   ramp --steps --interval     guarded step-by-step ramp with automatic rollback
 *   pause | resume | rollback   steer a running ramp; rollback = 0% now, then drain
 *
 * The logic lives in cli/rollout/; this file is the command-line surface.
 */
import { hostname, userInfo } from 'node:os';
import { Command } from 'commander';
import { flagsFilePathFromEnv } from '../../proxy/flags-file.ts';
import { stdoutTerminal } from '../migration/terminal.ts';
import { CliError, EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, printJson, collect } from '../output.ts';
import { conflictingOverrides, describeOverrides } from '../rollout/flag-overrides.ts';
import { openFlagTarget, parseBucketBy, parsePercent, type FlagTarget } from '../rollout/flag-target.ts';
import { MetricsSampler, defaultSyncMetricsUrl } from '../rollout/metrics-window.ts';
import { openRampStore } from '../rollout/open-ramp-store.ts';
import { PlainRampReporter, TerminalRampReporter, type RampReporter } from '../rollout/progress-bar.ts';
import { describePlan, formatDuration, parseCount, parseInterval, parseRate, parseSteps, type RampPlan } from '../rollout/ramp-plan.ts';
import { LATE_WRITE_WATCH_EVERY_MS, LATE_WRITE_WATCH_MS, ownerMayStillWrite, watchForLateWrites } from '../rollout/late-write-watch.ts';
import { describeOwner, describeStep, runRamp, type RampOutcome } from '../rollout/ramp-runner.ts';
import { LEASE_STALE_MS, leaseAlive, operatorRollbackDone, operatorRollbackStarted, rampBlocksWrite, unfinished, withEvent, type RampDoc, type RampLease } from '../rollout/ramp-state.ts';
import type { RampStore } from '../rollout/ramp-store.ts';
import { DEFAULT_RAMP_FILE } from '../rollout/ramp-store-file.ts';
import { ROLLBACK_RETRY_MS, ROUTINE_RETRY_MS, errorText, retrying } from '../rollout/retry.ts';
import { gatherStatus, renderStatus, type ShimView } from '../rollout/rollout-status.ts';
import { DEFAULT_APPLY_TIMEOUT_MS, drainIfApplied, waitUntilApplied, type ApplyCheck } from '../rollout/shim-apply.ts';
import { ShimAdminClient, ShimFleet, adminTokenFromEnv, adminUrlsFromOptions, defaultAdminUrl, type ShimAdmins } from '../rollout/shim-admin-client.ts';
import { isDiscoveryUrl } from '../../proxy/bifrost-nodes.ts';

interface CommonOptions {
  json?: boolean;
  flagsFile: string;
  /** Every shim replica's admin API (repeatable); unset = defaultAdminUrl(). */
  adminUrl?: string[];
  rampFile?: string;
  rampPrefix?: string;
  applyTimeout: string;
  createFlagsFile?: boolean;
}


function common(cmd: Command): Command {
  return cmd
    .option('--json', 'print the result as JSON')
    .option('--flags-file <file>', 'flags file when LaunchDarkly live mode is off (env BIFROST_FLAGS_FILE)', flagsFilePathFromEnv())
    .option('--admin-url <url>', `the shim admin API; repeat it for every shim replica behind a load balancer, or give dns+http://NAME:PORT for every address of a name (a headless Service over the shim pods) (default ${defaultAdminUrl()}, from env BIFROST_ADMIN_PORT)`, collect)
    .option('--ramp-file <file>', `ramp state file when REDIS_URL is not set (env BIFROST_RAMP_FILE, default ${DEFAULT_RAMP_FILE})`)
    .option('--ramp-prefix <prefix>', 'Redis key prefix of the ramp state when REDIS_URL is set (env BIFROST_ROLLOUT_PREFIX, default bifrost:rollout:)')
    .option('--apply-timeout <duration>', 'how long the shim gets to report a written percentage (GET /api/rollout on --admin-url)', `${DEFAULT_APPLY_TIMEOUT_MS / 1000}s`)
    .option('--create-flags-file', 'create the flags file when it does not exist (default: refuse, it is probably the wrong path)');
}

/** Retries a flag or store call while its failure may be transient (a line on stderr per retry). */
function routine<T>(what: string, fn: () => Promise<T>): Promise<T> {
  return retrying(what, fn, { forMs: ROUTINE_RETRY_MS, onRetry: (line) => note(`retry: ${line}`) });
}

/** One line about whether the shim applied a write (or why nobody could confirm it). */
function applyLine(check: ApplyCheck, c: ReturnType<typeof stdoutTerminal>['colors']): string {
  if (check.state === 'applied') return c.dim(`${check.replicas ? `all ${check.replicas.length} shim replicas` : 'the shim'} applied it after ${formatDuration(check.afterMs)}`);
  if (check.state === 'no-shim') return `${c.yellow('warning:')} ${check.message}`;
  return `${c.red('✗')} ${check.message}`;
}

function applyJson(check: ApplyCheck) {
  const replicas = check.replicas ? { replicas: check.replicas } : {};
  if (check.state === 'applied') return { state: check.state, afterMs: check.afterMs, shimPercent: check.snapshot.percent, ...replicas };
  if (check.state === 'not-applied') return { state: check.state, afterMs: check.afterMs, shimPercent: check.snapshot.percent, message: check.message, ...replicas };
  return { state: check.state, message: check.message, ...replicas };
}

function checkUrl(name: string, v: string): string {
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    return v.replace(/\/+$/, '');
  } catch {
    throw new CliError(`${name} must be an http(s) URL, got "${v}"`, EXIT_USAGE);
  }
}

function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

function flagTarget(o: CommonOptions): FlagTarget {
  return openFlagTarget({ flagsFile: o.flagsFile, note, createFlagsFile: o.createFlagsFile === true });
}

function rampStore(o: CommonOptions): RampStore {
  return openRampStore({ rampFile: o.rampFile, rampPrefix: o.rampPrefix });
}

/**
 * One client per `--admin-url` (each shim replica), deduplicated; the default
 * admin URL when none is given. With a `dns+http://` name among them, a fleet
 * that looks the names up at each use.
 */
function adminClient(o: CommonOptions): ShimAdmins {
  const urls = adminUrlsFromOptions(o.adminUrl);
  if (urls.some(isDiscoveryUrl)) return new ShimFleet(urls, adminTokenFromEnv());
  const clients = urls.map((u) => new ShimAdminClient(u, adminTokenFromEnv()));
  return clients.length === 1 ? clients[0]! : clients;
}

function operator(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? 'unknown';
  }
  return `${user}@${hostname()}`;
}

async function withStore<T>(o: CommonOptions, fn: (store: RampStore) => Promise<T>): Promise<T> {
  const store = rampStore(o);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function rampSummary(d: RampDoc | null) {
  if (!d) return null;
  return {
    id: d.id,
    phase: d.phase,
    paused: d.paused,
    pausedBy: d.pausedBy,
    steps: d.plan.steps,
    intervalMs: d.plan.intervalMs,
    stepIndex: d.stepIndex,
    percent: d.percent,
    ownerAlive: leaseAlive(d.owner, { now: Date.now(), host: hostname(), staleMs: LEASE_STALE_MS }),
    owner: d.owner,
    outcome: d.outcome,
    rollback: d.rollback ?? null,
  };
}

function registerStatus(rollout: Command): void {
  common(rollout.command('status'))
    .description('Show the rollout: percent, bucket-by, live connections per backend and Bifrost node, decisions and upgrade failures per backend (totals and the last 5 minutes), and the ramp')
    .addHelpText(
      'after',
      `
Reads the flag (flags file, or LaunchDarkly when LD_API_TOKEN, LD_PROJECT_KEY and
LD_ENVIRONMENT_KEY are set), the shim admin API and the ramp state. Exit 1 when the
shim or the flag cannot be read.

Examples:
  $ bifrost rollout status
  $ bifrost rollout status --json --admin-url http://127.0.0.1:9090`,
    )
    .action(async (o: CommonOptions) => {
      const flag = flagTarget(o);
      const admin = adminClient(o);
      const status = await withStore(o, (store) => gatherStatus({ flag, admin, readRamp: () => store.read(), host: hostname(), staleMs: LEASE_STALE_MS }));
      const ok = status.shim.reachable && !('error' in status.flag) && (status.replicas ?? []).every((v) => v.reachable);
      if (o.json) {
        const view = (v: ShimView) => (v.reachable ? { url: v.url, reachable: true, ...v.snapshot, upgrades: v.upgrades } : { url: v.url, reachable: false, error: v.error });
        const shim = view(status.shim);
        const percent = 'error' in status.flag ? (status.shim.reachable ? status.shim.snapshot.percent : null) : status.flag.percent;
        const bucketBy = 'error' in status.flag ? (status.shim.reachable ? status.shim.snapshot.bucketBy : null) : status.flag.bucketBy;
        printJson({ percent, bucketBy, flag: status.flag, shim, ...(status.replicas ? { shimReplicas: status.replicas.map(view) } : {}), ramp: status.ramp, ...(status.rampError ? { rampError: status.rampError } : {}) });
      } else {
        const t = stdoutTerminal();
        process.stdout.write(renderStatus(status, t.colors, t.colors.isColorSupported));
      }
      if (!ok) process.exitCode = EXIT_CHECK_FAILED;
    });
}

function registerSet(rollout: Command): void {
  common(rollout.command('set'))
    .description('Set the share of users (or teams) routed to Bifrost, now')
    .argument('<percent>', 'share on Bifrost, 0..100 (up to 3 decimals)')
    .option('--bucket-by <kind>', 'bucket by user or team (teams move together); default: keep the flag\'s')
    .option('--force', 'change the flag even while a ramp is running')
    .addHelpText(
      'after',
      `
Flags-file mode (default) rewrites the flag in BIFROST_FLAGS_FILE / --flags-file atomically,
keeping its salt so raising the percentage only adds users (a missing file is refused unless
--create-flags-file). Then the shim's GET /api/rollout (--admin-url) is polled until it reports
the new percentage (--apply-timeout): exit 1 when the shim answers but does not apply it, a
warning when no shim answers.
Live mode (LD_API_TOKEN, LD_PROJECT_KEY, LD_ENVIRONMENT_KEY set; LD_BASE_URI to override
https://app.launchdarkly.com) changes the flag's fallthrough rollout with a semantic patch.
Individual targets and rules come before the percentage: a warning names those in force that
serve another variation (the flags-file write removes the file's, and says so).

Examples:
  $ bifrost rollout set 5
  $ bifrost rollout set 25 --bucket-by team
  $ LD_API_TOKEN=api-… LD_PROJECT_KEY=default LD_ENVIRONMENT_KEY=production bifrost rollout set 10`,
    )
    .action(async (percentArg: string, o: CommonOptions & { bucketBy?: string; force?: boolean }) => {
      const percent = parsePercent(percentArg);
      const bucketBy = o.bucketBy === undefined ? undefined : parseBucketBy(o.bucketBy);
      const applyTimeoutMs = parseInterval(o.applyTimeout, '--apply-timeout');
      const flag = flagTarget(o);
      const admin = adminClient(o);
      await withStore(o, async (store) => {
        const doc = await routine('reading the ramp state', () => store.read());
        const block = o.force ? null : rampBlocksWrite(doc);
        if (block?.reason === 'rolling-back') {
          throw new CliError(`the ramp ${describePlan(block.ramp.plan)} breached and its rollback to ${block.ramp.rollback?.to}% is unfinished: finish it with \`bifrost rollout ramp --resume\` or \`bifrost rollout rollback\`, or pass --force`, EXIT_USAGE);
        }
        if (block?.reason === 'running') {
          throw new CliError(`a ramp is running (${describeOwner(block.ramp)}, at ${describeStep(block.ramp)}) and would override this: pause it with \`bifrost rollout pause\`, stop it with \`bifrost rollout rollback\`, or pass --force`, EXIT_USAGE);
        }
      });
      const result = await routine(`writing ${percent}% to ${flag.description}`, () => flag.write({ percent, bucketBy, comment: `bifrost rollout set ${percent}%${bucketBy ? ` --bucket-by ${bucketBy}` : ''} by ${operator()}` }));
      const check = await waitUntilApplied(admin, flag, { percent: result.percent, bucketBy: result.bucketBy }, { timeoutMs: applyTimeoutMs });
      if (check.state === 'not-applied') process.exitCode = EXIT_CHECK_FAILED;
      if (o.json) {
        if (check.state === 'no-shim') note(`warning: ${check.message}`);
        for (const w of result.warnings ?? []) note(`warning: ${w}`);
        printJson({ percent: result.percent, bucketBy: result.bucketBy, version: result.version ?? null, target: flag.kind, where: flag.description, notes: result.notes, warnings: result.warnings ?? [], overrides: result.overrides ?? [], shimApplied: applyJson(check) });
        return;
      }
      const c = stdoutTerminal().colors;
      for (const n of result.notes) process.stdout.write(`${c.yellow('note:')} ${n}\n`);
      for (const w of result.warnings ?? []) process.stdout.write(`${c.yellow('warning:')} ${w}\n`);
      const who = result.bucketBy === 'team' ? 'teams' : 'users';
      const mark = check.state === 'applied' ? c.green('✓') : check.state === 'no-shim' ? c.yellow('!') : c.red('✗');
      process.stdout.write(`${mark} rollout set to ${c.bold(`${result.percent}%`)} of ${who} on Bifrost (${flag.description}${result.version !== undefined ? `, version ${result.version}` : ''})\n${applyLine(check, c)}\n`);
    });
}

function reporterFor(json: boolean | undefined, intervalMs: number): RampReporter {
  if (json) return new PlainRampReporter(process.stderr, Math.min(60_000, Math.max(1000, intervalMs / 4)));
  if (process.stdout.isTTY) return new TerminalRampReporter(process.stdout);
  return new PlainRampReporter(process.stdout, Math.min(60_000, Math.max(1000, intervalMs / 4)));
}

interface RampOptions extends CommonOptions {
  steps?: string;
  interval: string;
  maxErrorRate: string;
  maxP99Ms: string;
  rollbackTo?: string;
  minRequests: string;
  bucketBy?: string;
  gatewayUrl: string[];
  syncMetricsUrl?: string;
  resume?: boolean;
  restart?: boolean;
}

function planFrom(o: RampOptions): RampPlan | null {
  if (!o.steps) {
    if (o.resume) return null;
    throw new CliError('--steps is required (e.g. --steps 1,5,25,50,100), or --resume to continue the unfinished ramp', EXIT_USAGE);
  }
  const p99 = Number(o.maxP99Ms);
  if (o.maxP99Ms.trim() === '' || !Number.isFinite(p99) || p99 < 0) throw new CliError(`--max-p99-ms must be a number of milliseconds (0 turns the latency guard off), got "${o.maxP99Ms}"`, EXIT_USAGE);
  return {
    steps: parseSteps(o.steps),
    intervalMs: parseInterval(o.interval),
    maxErrorRate: parseRate(o.maxErrorRate),
    maxP99Ms: p99 === 0 ? null : p99,
    rollbackTo: o.rollbackTo === undefined ? null : parsePercent(o.rollbackTo, '--rollback-to'),
    minRequests: parseCount(o.minRequests, '--min-requests'),
    bucketBy: o.bucketBy === undefined ? null : parseBucketBy(o.bucketBy),
  };
}

function printRampOutcome(r: RampOutcome, json: boolean | undefined): void {
  if (json) {
    printJson({
      outcome: r.kind,
      message: r.message,
      percent: r.doc.percent,
      resumed: r.resumed,
      startedAtStep: r.startedAtStep,
      applied: r.applied,
      rolledBackTo: r.rolledBackTo ?? null,
      breaches: r.breaches,
      readings: r.readings,
      drain: r.drain ?? null,
      shimApplied: r.applyCheck ? applyJson(r.applyCheck) : null,
      ramp: rampSummary(r.doc),
    });
    return;
  }
  const c = stdoutTerminal().colors;
  const out = (s: string) => process.stdout.write(`${s}\n`);
  if (r.kind === 'completed') out(`${c.green('✓')} ${r.message}`);
  else if (r.kind === 'rolled-back' || r.kind === 'rollback-unfinished') {
    out(`${c.red('✗')} ${r.message}`);
    for (const b of r.breaches) out(`  ${c.red('breached')} ${b.text}`);
    if (r.applyCheck) out(`  ${applyLine(r.applyCheck, c)}`);
    if (r.drain) out('error' in r.drain ? `  ${c.yellow('drain request failed:')} ${r.drain.error}` : `  shim drain: ${r.drain.queued} connection(s) queued to move back at ${r.drain.rate}/s`);
  } else out(`${c.yellow('!')} ${r.message}`);
}

function registerRamp(rollout: Command): void {
  common(rollout.command('ramp'))
    .description('Ramp the rollout step by step, watching error rate, p99 latency and upgrade failures; roll back on a breach')
    .option('--steps <list>', 'percentages to go through, increasing (e.g. 1,5,25,50,100)')
    .option('--interval <duration>', 'how long each step is watched: 500ms, 30s, 10m, 1h', '10m')
    .option('--max-error-rate <ratio>', 'guard: request error rate and Bifrost upgrade failure rate (0.01 or 1%)', '0.01')
    .option('--max-p99-ms <ms>', 'guard: p99 request latency through Bifrost (0 = no latency guard)', '250')
    .option('--rollback-to <percent>', 'where a breach goes (default: the last good step)')
    .option('--min-requests <n>', 'events a window needs before a rate or p99 can breach (fallbacks: decisions, or fallbacks alone)', '20')
    .option('--bucket-by <kind>', 'user or team (default: keep the flag\'s)')
    .option('--gateway-url <url>', 'a gateway whose /metrics to watch (repeatable; default: the shim\'s node list)', collect, [])
    .option('--sync-metrics-url <url>', 'Sync\'s request metrics, the baseline for request errors and p99 (default: the shim\'s Sync URL + /__bifrost/metrics, else http://127.0.0.1:${SYNC_PORT||1337}/__bifrost/metrics; unreachable = no baseline)')
    .option('--resume', 'continue the unfinished ramp with its stored plan')
    .option('--restart', 'discard an unfinished ramp (not a running one) and start this plan')
    .addHelpText(
      'after',
      `
Each step's percentage is applied, then the shim's and gateways' /metrics (and Sync's, the
baseline) are sampled for --interval. When Sync carried at least --min-requests requests,
request errors and p99 breach only when over the limit AND worse than Sync's. Each step must be
applied by the shim (GET /api/rollout) and, to pass, show readable gateway metrics (the ramp
must reach every gateway's /metrics: with a DNS node list run it in the cluster or pass
--gateway-url per pod). Fallbacks to Sync (no usable Bifrost node) breach over --max-error-rate
of the shim's Bifrost decisions (Godserver and socket), once there are --min-requests decisions
or fallbacks. A breach rolls back strictly below the breaching step (--rollback-to if below, else
the last good step if below, else 0%): recorded "rolling-back" first, written with retries for up
to 15 minutes (ownership checked before each attempt), confirmed by the shim, then the shim is
asked to drain; it prints what breached with the numbers and exits 1 (130 on Ctrl-C).
A rollback that could not be written is finished by --resume. The first step may not be below the
current percentage (exit 2). The ramp's state is kept in
.bifrost/ramp.json (Redis when REDIS_URL is set): \`bifrost rollout pause|resume\` steer it from
another terminal, a killed ramp continues where it stopped when the same command (or
--resume) runs again, and a second ramp is refused while one runs.

Examples:
  $ bifrost rollout ramp --steps 1,5,25,50,100 --interval 10m
  $ bifrost rollout ramp --steps 5,25 --interval 30s --max-error-rate 0.005 --max-p99-ms 200 --rollback-to 0
  $ bifrost rollout ramp --resume
  $ bifrost rollout ramp --steps 5,25,100 --interval 10m --admin-url dns+http://bifrost-shim-admin.default.svc.cluster.local.:9090   # every shim pod`,
    )
    .action(async (o: RampOptions) => {
      const plan = planFrom(o);
      const applyTimeoutMs = parseInterval(o.applyTimeout, '--apply-timeout');
      const gatewayUrls = o.gatewayUrl.length ? o.gatewayUrl.map((u) => checkUrl('--gateway-url', u)) : undefined;
      const sync = { url: o.syncMetricsUrl === undefined ? undefined : checkUrl('--sync-metrics-url', o.syncMetricsUrl), fallbackUrl: defaultSyncMetricsUrl() };
      const admin = adminClient(o);
      const flag = flagTarget(o);
      const store = rampStore(o);
      const ac = new AbortController();
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals += 1;
        if (signals > 1) process.exit(130);
        process.stderr.write(`\n${sig}: stopping the ramp (it stays resumable)…\n`);
        ac.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let result: RampOutcome;
      try {
        const intervalMs = plan?.intervalMs ?? (await store.read())?.plan.intervalMs ?? 60_000;
        result = await runRamp(
          { plan, resume: o.resume === true, restart: o.restart === true },
          { store, flag, admin, sampler: new MetricsSampler({ admin, gatewayUrls, sync }), reporter: reporterFor(o.json, intervalMs), signal: ac.signal, leaseStaleMs: LEASE_STALE_MS, applyTimeoutMs },
        );
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await store.close();
      }
      printRampOutcome(result, o.json);
      process.exitCode = result.kind === 'completed' ? EXIT_OK : result.kind === 'interrupted' ? 130 : EXIT_CHECK_FAILED;
    });
}

function registerPauseResume(rollout: Command, verb: 'pause' | 'resume'): void {
  const pausing = verb === 'pause';
  common(rollout.command(verb))
    .description(pausing ? 'Hold the running ramp at its current step (its clock stops; guards keep watching)' : 'Let a paused ramp continue')
    .addHelpText('after', `\nExample:\n  $ bifrost rollout ${verb}`)
    .action(async (o: CommonOptions) => {
      const by = operator();
      const r = await withStore(o, (store) =>
        store.update<{ doc: RampDoc | null; changed: boolean }>((cur) => {
          const u = unfinished(cur);
          if (!u) return { result: { doc: cur, changed: false } };
          if (u.phase === 'rolling-back') return { result: { doc: u, changed: false } };
          if (u.paused === pausing) return { result: { doc: u, changed: false } };
          const now = new Date();
          const next = withEvent(
            { ...u, paused: pausing, pausedBy: pausing ? by : null, pausedAt: pausing ? now.toISOString() : null, updatedAt: now.toISOString() },
            { event: pausing ? 'paused' : 'unpaused', percent: u.percent, detail: `by ${by}` },
            now,
          );
          return { next, result: { doc: next, changed: true } };
        }),
      );
      const u = unfinished(r.doc);
      if (!u) throw new CliError(`no ramp in progress to ${verb}${r.doc ? ` (the last one ${r.doc.phase === 'completed' ? 'completed' : 'was rolled back'})` : ''}`, EXIT_CHECK_FAILED);
      if (u.phase === 'rolling-back') throw new CliError(`the ramp is rolling back to ${u.rollback?.to}% after a breach: nothing to ${verb} — \`bifrost rollout ramp --resume\` finishes the rollback`, EXIT_CHECK_FAILED);
      const alive = leaseAlive(u.owner, { now: Date.now(), host: hostname(), staleMs: LEASE_STALE_MS });
      if (o.json) {
        printJson({ paused: u.paused, changed: r.changed, ramp: rampSummary(u) });
        return;
      }
      const c = stdoutTerminal().colors;
      const what = pausing
        ? r.changed
          ? `ramp paused at ${describeStep(u)}: the rollout holds ${u.percent}% until \`bifrost rollout resume\``
          : `the ramp was already paused at ${describeStep(u)}`
        : r.changed
          ? `ramp resumed at ${describeStep(u)} (${formatDuration(Math.max(0, u.plan.intervalMs - u.stepElapsedMs))} left in the step)`
          : `the ramp was not paused (at ${describeStep(u)})`;
      process.stdout.write(`${c.green('✓')} ${what}\n`);
      if (!alive) process.stdout.write(c.yellow(`no ramp process is running it: continue it with \`bifrost rollout ramp --resume\`\n`));
    });
}

function registerRollback(rollout: Command): void {
  common(rollout.command('rollback'))
    .description('Move everyone back to Sync now: rollout 0% (retried until written), end any ramp, then ask the shim to drain Bifrost connections')
    .addHelpText(
      'after',
      `
Order: the ramp (if any) is marked "rolling back" so its process stops; 0% is written, retried
with backoff for up to ${ROLLBACK_RETRY_MS / 60_000} minutes (a line per retry); when a ramp process may still be
writing, the flag is watched (every ${LATE_WRITE_WATCH_EVERY_MS / 1000}s, until that process records it stopped, at most
${LATE_WRITE_WATCH_MS / 1000}s) and 0% written again if a late write landed; the shim's GET /api/rollout is polled
until it routes 0% (--apply-timeout); only then is the ramp recorded "rolled back" and the shim
asked to drain (POST /api/drain with BIFROST_ADMIN_TOKEN), which closes the moved connections at
its rebalance rate so unchanged clients reconnect to Sync. Exit 1 when 0% could not be written,
no shim answered or it did not apply it, or the drain failed.
With live LaunchDarkly, 0% is the fallthrough; when the flag's off variation is "sync" the
rollback also turns targeting off, so contexts served Bifrost by an individual target or a rule
get Sync too. Otherwise targeting stays on and a warning names the targets and rules that keep
contexts on Bifrost. In flags-file mode the write removes the file's targets and rules (a
warning names them): everyone gets Sync.

Example:
  $ bifrost rollout rollback`,
    )
    .action(async (o: CommonOptions) => {
      const by = operator();
      const applyTimeoutMs = parseInterval(o.applyTimeout, '--apply-timeout');
      const flag = flagTarget(o);
      const admin = adminClient(o);
      const message = `rolled back to 0% by \`bifrost rollout rollback\` (${by})`;
      const comment = `bifrost rollout rollback by ${by}`;
      await withStore(o, async (store) => {
        // 1. Stop the ramp from writing steps: "rolling back to 0%", no owner (its process stops at its next tick).
        //    If the store is down, the flag still goes to 0% (step 2): the flag matters more than the record.
        let ended: { doc: RampDoc; liveOwner: boolean; owner: RampLease | null } | null = null;
        let storeError: string | null = null;
        try {
          ended = await routine(`updating the ramp state (${store.description})`, () =>
            store.update<{ doc: RampDoc; liveOwner: boolean; owner: RampLease | null } | null>((cur) => {
              const u = unfinished(cur);
              if (!u) return { result: null };
              const now = new Date();
              const liveOwner = leaseAlive(u.owner, { now: now.getTime(), host: hostname(), staleMs: LEASE_STALE_MS });
              const next = operatorRollbackStarted(u, message, by, now);
              return { next, result: { doc: next, liveOwner, owner: u.owner } };
            }),
          );
        } catch (err) {
          storeError = errorText(err);
          note(`warning: could not mark the ramp as rolling back in ${store.description} (${storeError}); writing 0% anyway`);
        }

        // 2. 0% until it is written.
        const write = () =>
          retrying(`writing 0% to ${flag.description}`, () => flag.write({ percent: 0, comment, rollback: true }), { forMs: ROLLBACK_RETRY_MS, all: true, onRetry: (line) => note(`retry: ${line}`) });
        let written;
        try {
          written = await write();
          // The ramp's process may have been writing (a step, or its own rollback) at this very moment, with a
          // write attempt already past its ownership check: watch the flag and write 0% again if a late write
          // lands (late-write-watch.ts). Not needed when the ramp had no owner, or its process is gone (same host).
          const owner = ended?.owner;
          if (ended && ownerMayStillWrite(owner)) {
            await watchForLateWrites({
              rampId: ended.doc.id,
              owner,
              readRamp: () => store.read(),
              readPercent: async () => (await routine('reading the flag', () => flag.read())).percent,
              writeZero: async () => {
                written = await write();
              },
              onLateWrite: (percent) => note(`warning: the ramp's process wrote ${percent}% after the rollback; writing 0% again`),
            });
          }
        } catch (err) {
          throw new CliError(
            `could not write 0% to ${flag.description}: ${errorText(err)} — the rollout may still be at ${ended?.doc.rollback?.from ?? 'its old percentage'}%${ended ? '; the ramp is recorded as rolling back to 0%' : ''}: run \`bifrost rollout rollback\` again`,
            EXIT_CHECK_FAILED,
          );
        }

        // 3. The shim routes by it: only then does a drain move anyone.
        const check = await waitUntilApplied(admin, flag, { percent: 0 }, { timeoutMs: applyTimeoutMs });

        // 4. The record follows the flag.
        let recorded: RampDoc | null = null;
        if (ended || storeError) {
          try {
            recorded = await routine(`updating the ramp state (${store.description})`, () =>
              store.update<RampDoc | null>((cur) => {
                const u = unfinished(cur);
                if (!u) return { result: null };
                const next = operatorRollbackDone(u, message, by);
                return { next, result: next };
              }),
            );
          } catch (err) {
            note(`warning: the flag is at 0% but ${store.description} could not record the ramp's end (${errorText(err)}); run \`bifrost rollout rollback\` again once it answers`);
          }
        }

        // 5. Drain (only once the shim routes by 0%).
        const drain = await drainIfApplied(admin, check);
        const failed = 'error' in drain || check.state !== 'applied';
        // Targets and rules still in force that serve Bifrost keep their contexts there at 0%.
        const stuck = conflictingOverrides(written.overrides ?? [], 0);
        const warnings = written.warnings ?? [];
        if (o.json) {
          for (const w of warnings) note(`warning: ${w}`);
          printJson({ percent: written.percent, bucketBy: written.bucketBy, on: written.on ?? null, target: flag.kind, where: flag.description, notes: written.notes, warnings, overrides: written.overrides ?? [], rampEnded: recorded ? rampSummary(recorded) : ended ? rampSummary(ended.doc) : null, shimApplied: applyJson(check), drain });
        } else {
          const c = stdoutTerminal().colors;
          const who = stuck.length ? `everyone but the contexts of the flag's ${describeOverrides(stuck)} is routed to Sync` : 'everyone is routed to Sync';
          process.stdout.write(`${check.state === 'applied' && !stuck.length ? c.green('✓') : c.yellow('!')} rollout set to ${c.bold('0%')}: ${who} (${flag.description})\n  ${applyLine(check, c)}\n`);
          for (const n of written.notes) process.stdout.write(`  ${c.yellow('note:')} ${n}\n`);
          for (const w of warnings) process.stdout.write(`  ${c.yellow('warning:')} ${w}\n`);
          if (ended) process.stdout.write(`  the ramp ${describePlan(ended.doc.plan)} was ended${ended.liveOwner ? '; its process stops before its next flag write' : ''}\n`);
          if ('error' in drain) process.stdout.write(`  ${c.red('drain failed:')} ${drain.error}\n  the shim still moves connections on the flag change if its drain policy is "close"\n`);
          else process.stdout.write(`  shim drain: ${drain.queued} connection(s) queued to move back at ${drain.rate}/s\n`);
        }
        if (failed) process.exitCode = EXIT_CHECK_FAILED;
      });
    });
}

export function register(program: Command): void {
  const rollout = program
    .command('rollout')
    .description('Control the share of clients the shim sends to Bifrost: status, set, guarded ramp, pause/resume, rollback')
    .addHelpText(
      'after',
      `
Examples:
  $ bifrost rollout status
  $ bifrost rollout set 5
  $ bifrost rollout ramp --steps 1,5,25,50,100 --interval 10m --max-error-rate 0.01 --max-p99-ms 250
  $ bifrost rollout pause
  $ bifrost rollout rollback`,
    );
  registerStatus(rollout);
  registerSet(rollout);
  registerRamp(rollout);
  registerPauseResume(rollout, 'pause');
  registerPauseResume(rollout, 'resume');
  registerRollback(rollout);
}
