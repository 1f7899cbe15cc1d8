/**
 * `bifrost migrate …`: per-squad migration checklists. Squads describe their
 * feature in `migrations/<squad>.yaml`, follow a playbook from `playbooks/`,
 * and record progress (automated checks against the live stack, manual
 * completions with evidence, reopenings with a reason) in the state store.
 * The logic lives in cli/migration/; this file is the command-line surface.
 */
import { Command, Option } from 'commander';
import { tokenSecretFromEnv } from '../../gateway/token.ts';
import { CliError, EXIT_CHECK_FAILED, EXIT_USAGE, printJson } from '../output.ts';
import { findSquad, findStep, loadCatalog, type MigrationCatalog } from '../migration/catalog.ts';
import { runChecks, type CheckReporter, type CheckRunResult } from '../migration/check-runner.ts';
import { stepChecks } from '../migration/checks/index.ts';
import { DEFAULT_STATE_FILE, openStateStore } from '../migration/open-state-store.ts';
import { renderHtmlReport } from '../migration/report-html.ts';
import { renderJsonReport } from '../migration/report-json.ts';
import { renderMarkdownReport } from '../migration/report-markdown.ts';
import { overviewTable, renderTableReport, stepsTable } from '../migration/report-table.ts';
import { squadProgress, type SquadProgress } from '../migration/squad-progress.ts';
import type { StackEndpoints } from '../migration/step-check.ts';
import type { StateStore } from '../migration/state-store.ts';
import { completeStep, reopenStep } from '../migration/step-transitions.ts';
import { StepSpinner, stdoutTerminal, type Terminal } from '../migration/terminal.ts';

/** The dev default the gateway also uses when BIFROST_SERVICE_TOKEN is unset. */
export const DEV_SERVICE_TOKEN = 'bifrost-dev-service-token';

interface CommonOptions {
  migrationsDir: string;
  playbooksDir: string;
  stateFile: string;
  statePrefix?: string;
  json?: boolean;
}

interface StackOptions {
  privateUrl: string;
  gatewayUrl: string;
  syncUrl: string;
  adminUrl: string;
  timeoutMs?: number;
  eventTimeoutMs?: number;
}

const env = process.env;

function common(cmd: Command): Command {
  return cmd
    .option('--migrations-dir <dir>', 'where the squad manifests are', 'migrations')
    .option('--playbooks-dir <dir>', 'where the playbooks are', 'playbooks')
    .option('--state-file <file>', 'state file when REDIS_URL is not set', DEFAULT_STATE_FILE)
    .option('--state-prefix <prefix>', 'Redis key prefix when REDIS_URL is set (default: BIFROST_STATE_PREFIX or bifrost:migrations:)')
    .option('--json', 'print the result as JSON');
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new CliError(`${name} must be a positive integer (milliseconds), got "${v}"`, EXIT_USAGE);
    return n;
  };
}

function stackOptions(cmd: Command): Command {
  return cmd
    .option('--private-url <url>', 'Bifrost private API', `http://127.0.0.1:${env.BIFROST_PRIVATE_PORT || 8081}`)
    .option('--gateway-url <url>', 'Bifrost public gateway (native protocol on /ws)', `http://127.0.0.1:${env.BIFROST_GATEWAY_PORT || 8080}`)
    .option('--sync-url <url>', 'the legacy Sync app', `http://127.0.0.1:${env.SYNC_PORT || 1337}`)
    .option('--admin-url <url>', 'the shim admin API', `http://127.0.0.1:${env.BIFROST_ADMIN_PORT || 9090}`)
    .option('--timeout-ms <ms>', 'timeout of each HTTP call and frame (overrides the playbook)', positiveInt('--timeout-ms'))
    .option('--event-timeout-ms <ms>', 'how long probes wait for an event (overrides the playbook)', positiveInt('--event-timeout-ms'));
}

function checkUrl(name: string, v: string): string {
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    return v;
  } catch {
    throw new CliError(`${name} must be an http(s) URL, got "${v}"`, EXIT_USAGE);
  }
}

function stackFrom(o: StackOptions): StackEndpoints {
  const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);
  let serviceToken = env.BIFROST_SERVICE_TOKEN;
  if (!serviceToken) {
    warn('BIFROST_SERVICE_TOKEN is not set: using the development service token. Never run this in production.');
    serviceToken = DEV_SERVICE_TOKEN;
  }
  return {
    privateUrl: checkUrl('--private-url', o.privateUrl),
    gatewayUrl: checkUrl('--gateway-url', o.gatewayUrl),
    syncUrl: checkUrl('--sync-url', o.syncUrl),
    adminUrl: checkUrl('--admin-url', o.adminUrl),
    serviceToken,
    tokenSecret: tokenSecretFromEnv({ warn }),
  };
}

async function withContext<T>(o: CommonOptions, fn: (catalog: MigrationCatalog, store: StateStore) => Promise<T>): Promise<T> {
  const catalog = await loadCatalog({ migrationsDir: o.migrationsDir, playbooksDir: o.playbooksDir });
  const store = openStateStore({ stateFile: o.stateFile, ...(o.statePrefix ? { statePrefix: o.statePrefix } : {}) });
  try {
    return await fn(catalog, store);
  } finally {
    await store.close();
  }
}

async function allProgress(catalog: MigrationCatalog, store: StateStore): Promise<SquadProgress[]> {
  const out: SquadProgress[] = [];
  for (const sq of catalog.squads) out.push(squadProgress(sq, await store.read(sq.manifest.squad)));
  return out;
}

function examples(lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

function showSquad(p: SquadProgress, t: Terminal, storeDescription: string): string {
  const c = t.colors;
  const head = [
    `${c.bold(p.squad)}${p.title ? ` — ${p.title}` : ''}`,
    `owners ${p.owners} · playbook ${p.playbook} · target ${p.overdue ? c.red(`${p.targetDate} (overdue)`) : p.targetDate} · ${p.done}/${p.total} done · next: ${p.nextStep ?? 'nothing, all done'}`,
    c.dim(`state: ${storeDescription}`),
  ];
  const details: string[] = [];
  for (const s of p.steps) {
    if (s.lastCheck && s.lastCheck.output.length) {
      details.push(`${c.bold(s.id)} — last check ${s.lastCheck.ok ? c.green('passed') : c.red('failed')} at ${s.lastCheck.at} (${s.lastCheck.durationMs} ms): ${s.lastCheck.summary}`);
      for (const line of s.lastCheck.output) details.push(`    ${line}`);
    }
  }
  return `${head.join('\n')}\n${stepsTable(p, t)}\n${details.length ? `\n${details.join('\n')}\n` : ''}`;
}

function terminalReporter(t: Terminal): CheckReporter {
  let spinner: StepSpinner | undefined;
  const c = t.colors;
  return {
    begin(step) {
      spinner = new StepSpinner(t, `${step.id} — ${step.title}`);
      spinner.start();
      return (d) => spinner?.update(d);
    },
    end(r) {
      let line: string;
      if (r.skipped === 'done') line = `${c.green('✓')} ${r.step} ${c.dim('— done already')}`;
      else if (r.skipped === 'manual') line = `${c.yellow('•')} ${r.step} ${c.dim(`— ${r.summary}`)}`;
      else if (r.skipped === 'blocked') line = `${c.dim('·')} ${r.step} ${c.dim(`— ${r.summary}`)}`;
      else {
        const mark = r.ok ? c.green('✓') : c.red('✗');
        line = `${mark} ${r.step} — ${r.summary} ${c.dim(`(${r.durationMs} ms)`)}`;
        const extra = [...r.output.map((o) => `    ${o}`), `    → ${r.message}`];
        line += `\n${(r.ok ? extra.slice(-1) : extra).join('\n')}`;
      }
      if (spinner && !r.skipped) {
        spinner.stop(line);
        spinner = undefined;
      } else t.write(line + '\n');
    },
  };
}

const silentReporter: CheckReporter = { begin: () => () => {}, end: () => {} };

export function register(program: Command): void {
  const migrate = program
    .command('migrate')
    .description('Per-squad migration checklists: playbook steps, automated checks against the live stack, and an audit trail')
    .addHelpText('after', examples(['bifrost migrate list', 'bifrost migrate check collections', 'bifrost migrate report --format html > report.html']));

  common(migrate.command('list'))
    .description('Every squad: progress, next step, owner and target date (overdue in red)')
    .addHelpText('after', examples(['bifrost migrate list', 'NO_COLOR=1 bifrost migrate list --migrations-dir ./migrations', 'bifrost migrate list --json | jq ".squads[] | {squad, done, total}"']))
    .action(async (o: CommonOptions) => {
      await withContext(o, async (catalog, store) => {
        const progress = await allProgress(catalog, store);
        if (o.json) return printJson({ squads: progress });
        const t = stdoutTerminal();
        t.write(overviewTable(progress, t) + '\n');
      });
    });

  common(migrate.command('show').argument('<squad>', 'squad name (from migrations/<squad>.yaml)'))
    .description("One squad's checklist: each step's state, who, when, evidence, and the last check result with its output")
    .option('--history <n>', 'also print the last n audit entries', positiveInt('--history'))
    .addHelpText('after', examples(['bifrost migrate show collections', 'bifrost migrate show collections --history 20', 'bifrost migrate show collections --json']))
    .action(async (squad: string, o: CommonOptions & { history?: number }) => {
      await withContext(o, async (catalog, store) => {
        const sq = findSquad(catalog, squad);
        const p = squadProgress(sq, await store.read(squad));
        const history = await store.audit({ squad, limit: o.history ?? 50 });
        if (o.json) return printJson({ ...p, history });
        const t = stdoutTerminal();
        t.write(showSquad(p, t, store.description));
        if (o.history) {
          t.write(`\nhistory (last ${o.history}):\n`);
          for (const e of history) {
            t.write(`  ${e.at} ${e.step} ${e.action} by ${e.by} (${e.previous?.status ?? 'pending'} → ${e.next.status})${e.evidence ? ` evidence: ${e.evidence}` : ''}${e.reason ? ` reason: ${e.reason}` : ''}\n`);
          }
        }
      });
    });

  stackOptions(common(migrate.command('check').argument('<squad>', 'squad name').argument('[step]', 'one step id (default: every automated step not done yet)')))
    .description('Run the automated checks against the live stack and record the results; a pass completes the step when its dependencies are done')
    .addHelpText(
      'after',
      examples([
        'bifrost migrate check collections',
        'bifrost migrate check collections dual-publish --event-timeout-ms 10000',
        'bifrost migrate check collections route-parity --private-url http://127.0.0.1:8081 --sync-url http://127.0.0.1:1337',
      ]) + '\nExit status: 0 every check run passed, 1 a check failed, 2 bad usage or configuration.\n',
    )
    .action(async (squad: string, stepId: string | undefined, o: CommonOptions & StackOptions) => {
      await withContext(o, async (catalog, store) => {
        const sq = findSquad(catalog, squad);
        const step = stepId ? findStep(sq, stepId) : undefined;
        if (step?.manual) {
          throw new CliError(`step "${step.id}" is manual (${stepChecks[step.check.type].describes}): record it with \`bifrost migrate complete ${squad} ${step.id} --by <you>${step.evidence === 'required' ? ' --evidence <link>' : ''}\``, EXIT_USAGE);
        }
        const stack = stackFrom(o);
        const t = stdoutTerminal();
        const results: CheckRunResult[] = await runChecks({
          sq,
          store,
          stack,
          ...(step ? { only: step } : {}),
          paramOverrides: { timeoutMs: o.timeoutMs, eventTimeoutMs: o.eventTimeoutMs },
          reporter: o.json ? silentReporter : terminalReporter(t),
        });
        const ran = results.filter((r) => !r.skipped);
        const failed = ran.filter((r) => !r.ok);
        const p = squadProgress(sq, await store.read(squad));
        if (o.json) printJson({ squad, ok: failed.length === 0, results, progress: { done: p.done, total: p.total, nextStep: p.nextStep } });
        else {
          t.write(
            `\n${squad}: ${ran.length} check(s) run, ${ran.length - failed.length} passed, ${failed.length} failed · ${p.done}/${p.total} steps done · next: ${p.nextStep ?? 'nothing, all done'}\n`,
          );
        }
        if (failed.length > 0) process.exitCode = EXIT_CHECK_FAILED;
      });
    });

  common(migrate.command('complete').argument('<squad>', 'squad name').argument('<step>', 'step id'))
    .description('Record a step as done by a person (manual steps, or an automated step verified another way)')
    .requiredOption('--by <who>', 'who completes it (name or email)')
    .option('--evidence <text|url>', 'proof: a link to the merged change, a dashboard, a ticket (required by some steps)')
    .addHelpText('after', examples(['bifrost migrate complete collections decommission --by ada@example.com --evidence https://git.example.com/sync/pull/812']))
    .action(async (squad: string, stepId: string, o: CommonOptions & { by: string; evidence?: string }) => {
      if (!o.by.trim()) throw new CliError('--by must name who completes the step', EXIT_USAGE);
      await withContext(o, async (catalog, store) => {
        const sq = findSquad(catalog, squad);
        const step = findStep(sq, stepId);
        const r = await store.update(squad, completeStep(sq, step, { by: o.by, ...(o.evidence ? { evidence: o.evidence } : {}) }));
        if (o.json) return printJson({ squad, ...r });
        const t = stdoutTerminal();
        t.write(`${r.changed ? t.colors.green('✓') : t.colors.yellow('=')} ${r.message}\n`);
      });
    });

  common(migrate.command('reopen').argument('<squad>', 'squad name').argument('<step>', 'step id'))
    .description('Put a done step back to pending, with a reason (kept in the audit trail)')
    .requiredOption('--by <who>', 'who reopens it')
    .requiredOption('--reason <text>', 'why the step is not done after all')
    .addHelpText('after', examples(['bifrost migrate reopen collections route-parity --by grace@example.com --reason "PATCH /collection/:id differs since v2.3"']))
    .action(async (squad: string, stepId: string, o: CommonOptions & { by: string; reason: string }) => {
      if (!o.by.trim()) throw new CliError('--by must name who reopens the step', EXIT_USAGE);
      await withContext(o, async (catalog, store) => {
        const sq = findSquad(catalog, squad);
        const step = findStep(sq, stepId);
        const r = await store.update(squad, reopenStep(sq, step, { by: o.by, reason: o.reason }));
        if (o.json) return printJson({ squad, ...r });
        const t = stdoutTerminal();
        t.write(`${r.changed ? t.colors.yellow('↺') : t.colors.yellow('=')} ${r.message}\n`);
        if (r.changed && r.doneDependents.length) t.write(`  note: ${r.doneDependents.join(', ')} depend on it and are still done; reopen them too if they no longer hold\n`);
      });
    });

  common(migrate.command('report'))
    .description('Every squad\'s progress as a table, Markdown, JSON, or one self-contained HTML page')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'md', 'json', 'html']).default('table'))
    .addHelpText('after', examples(['bifrost migrate report', 'bifrost migrate report --format md > MIGRATION.md', 'bifrost migrate report --format html > migration-report.html']))
    .action(async (o: CommonOptions & { format: 'table' | 'md' | 'json' | 'html' }) => {
      await withContext(o, async (catalog, store) => {
        const progress = await allProgress(catalog, store);
        const generatedAt = new Date().toISOString();
        const format = o.json ? 'json' : o.format;
        const t = stdoutTerminal();
        const text =
          format === 'json'
            ? renderJsonReport(progress, generatedAt)
            : format === 'md'
              ? renderMarkdownReport(progress, generatedAt)
              : format === 'html'
                ? renderHtmlReport(progress, generatedAt)
                : renderTableReport(progress, t);
        t.write(text);
      });
    });
}
