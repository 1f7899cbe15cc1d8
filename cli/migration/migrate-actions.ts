/**
 * What each `bifrost migrate` sub-command does. `cli/commands/migrate.ts`
 * declares the command line and imports this module only when a migrate
 * command runs, so other commands do not load ajv, ioredis or ws for it.
 */
import { adminUrlsFromOptions } from '../rollout/shim-admin-client.ts';
import { tokenSecretFromEnv } from '../../gateway/token.ts';
import { CliError, EXIT_CHECK_FAILED, EXIT_USAGE, printJson } from '../output.ts';
import { findSquad, findStep, problemLines, readCatalog, type MigrationCatalog, type SquadMigration } from './catalog.ts';
import { runChecks, type CheckReporter, type CheckRunResult } from './check-runner.ts';
import { stepChecks } from './checks/index.ts';
import { openStateStore } from './open-state-store.ts';
import { renderHtmlReport } from './report-html.ts';
import { renderJsonReport } from './report-json.ts';
import { renderMarkdownReport } from './report-markdown.ts';
import { overviewTable, renderTableReport, stepsTable } from './report-table.ts';
import { invalidSquadRow, squadProgress, type SquadProgress } from './squad-progress.ts';
import type { StackEndpoints } from './step-check.ts';
import type { StateStore } from './state-store.ts';
import { completeStep, reopenStep } from './step-transitions.ts';
import { StepSpinner, stdoutTerminal, type Terminal } from './terminal.ts';

/** The dev default the gateway also uses when BIFROST_SERVICE_TOKEN is unset. */
export const DEV_SERVICE_TOKEN = 'bifrost-dev-service-token';

export interface CommonOptions {
  migrationsDir: string;
  playbooksDir: string;
  stateFile: string;
  statePrefix?: string;
  json?: boolean;
}

export interface StackOptions {
  privateUrl: string;
  gatewayUrl: string;
  syncUrl: string;
  /** Every shim replica's admin API (`--admin-url`, repeatable, `dns+http://` names allowed); unset = the default admin URL. */
  adminUrl?: string[];
  timeoutMs?: number;
  eventTimeoutMs?: number;
}

const env = process.env;

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
  const adminUrls = adminUrlsFromOptions(o.adminUrl, env);
  return {
    privateUrl: checkUrl('--private-url', o.privateUrl),
    gatewayUrl: checkUrl('--gateway-url', o.gatewayUrl),
    syncUrl: checkUrl('--sync-url', o.syncUrl),
    adminUrl: adminUrls[0]!,
    adminUrls,
    serviceToken,
    tokenSecret: tokenSecretFromEnv({ warn }),
  };
}

/**
 * Loads the catalog (a broken playbook or an unreadable migrations directory
 * stops here with exit 2; invalid manifests do not) and opens the state store.
 */
async function withContext<T>(o: CommonOptions, fn: (catalog: MigrationCatalog, store: StateStore) => Promise<T>): Promise<T> {
  const catalog = await readCatalog({ migrationsDir: o.migrationsDir, playbooksDir: o.playbooksDir });
  const store = openStateStore({ stateFile: o.stateFile, ...(o.statePrefix ? { statePrefix: o.statePrefix } : {}) });
  try {
    return await fn(catalog, store);
  } finally {
    await store.close();
  }
}

/**
 * The named squad (see catalog.ts findSquad for when it is refused). When it
 * works although other manifests are invalid, a one-line warning names them.
 */
function namedSquad(catalog: MigrationCatalog, name: string): SquadMigration {
  const sq = findSquad(catalog, name);
  const n = catalog.invalid.length;
  if (n > 0) {
    process.stderr.write(`warning: ${n} other squad manifest${n === 1 ? ' is' : 's are'} invalid (\`bifrost migrate list\` shows the problems): ${catalog.invalid.map((i) => i.file).join(', ')}\n`);
  }
  return sq;
}

/**
 * For `list` and `report`: the invalid manifests' problems on stderr and exit
 * status 1 (the valid squads are still shown), so CI notices a broken manifest
 * without one squad's mistake hiding everyone's progress.
 */
function reportInvalid(catalog: MigrationCatalog): void {
  const n = catalog.invalid.length;
  if (n === 0) return;
  process.stderr.write(`bifrost: ${n} squad manifest${n === 1 ? ' is' : 's are'} invalid (shown as "invalid manifest"; the other squads are not affected):\n${problemLines(catalog.invalid)}\n`);
  process.exitCode = EXIT_CHECK_FAILED;
}

async function allProgress(catalog: MigrationCatalog, store: StateStore): Promise<SquadProgress[]> {
  const out: SquadProgress[] = [];
  for (const sq of catalog.squads) out.push(squadProgress(sq, await store.read(sq.manifest.squad)));
  return out;
}

/** The playbook's `how` for the squad's next step, `<squad>` filled in (empty when all is done). */
export function nextStepHow(sq: SquadMigration, p: SquadProgress): string[] {
  const step = sq.playbook.steps.find((s) => s.id === p.nextStep);
  return step ? step.how.map((h) => h.replaceAll('<squad>', sq.manifest.squad).replace(/\s+/g, ' ').trim()) : [];
}

function howLines(sq: SquadMigration, p: SquadProgress, t: Terminal): string {
  const how = nextStepHow(sq, p);
  if (!how.length) return '';
  return `${t.colors.bold(`how to do ${p.nextStep}`)} (${sq.playbook.file}):\n${how.map((h) => `  ${h}`).join('\n')}\n`;
}

function showSquad(sq: SquadMigration, p: SquadProgress, t: Terminal, storeDescription: string): string {
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
  const how = howLines(sq, p, t);
  return `${head.join('\n')}\n${stepsTable(p, t)}\n${details.length ? `\n${details.join('\n')}\n` : ''}${how ? `\n${how}` : ''}`;
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

export async function listAction(o: CommonOptions): Promise<void> {
    await withContext(o, async (catalog, store) => {
      const progress = await allProgress(catalog, store);
      const invalid = catalog.invalid.map(invalidSquadRow);
      reportInvalid(catalog);
      if (o.json) return printJson({ squads: progress, invalid });
      const t = stdoutTerminal();
      t.write(overviewTable(progress, t, invalid) + '\n' + t.colors.dim(`state: ${store.description}`) + '\n');
    });
}

export async function showAction(squad: string, o: CommonOptions & { history?: number }): Promise<void> {
    await withContext(o, async (catalog, store) => {
      const sq = namedSquad(catalog, squad);
      const p = squadProgress(sq, await store.read(squad));
      const history = await store.audit({ squad, limit: o.history ?? 50 });
      if (o.json) return printJson({ ...p, nextStepHow: nextStepHow(sq, p), history });
      const t = stdoutTerminal();
      t.write(showSquad(sq, p, t, store.description));
      if (o.history) {
        t.write(`\nhistory (last ${o.history}):\n`);
        for (const e of history) {
          t.write(`  ${e.at} ${e.step} ${e.action} by ${e.by} (${e.previous?.status ?? 'pending'} → ${e.next.status})${e.evidence ? ` evidence: ${e.evidence}` : ''}${e.reason ? ` reason: ${e.reason}` : ''}\n`);
        }
      }
    });
}

export async function checkAction(squad: string, stepId: string | undefined, o: CommonOptions & StackOptions): Promise<void> {
    await withContext(o, async (catalog, store) => {
      const sq = namedSquad(catalog, squad);
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
      if (o.json) printJson({ squad, ok: failed.length === 0, results, progress: { done: p.done, total: p.total, nextStep: p.nextStep, nextStepHow: nextStepHow(sq, p) } });
      else {
        t.write(
          `\n${squad}: ${ran.length} check(s) run, ${ran.length - failed.length} passed, ${failed.length} failed · ${p.done}/${p.total} steps done · next: ${p.nextStep ?? 'nothing, all done'}\n`,
        );
        if (failed.length > 0) t.write(howLines(sq, p, t));
      }
      if (failed.length > 0) process.exitCode = EXIT_CHECK_FAILED;
    });
}

export async function completeAction(squad: string, stepId: string, o: CommonOptions & { by: string; evidence?: string }): Promise<void> {
    if (!o.by.trim()) throw new CliError('--by must name who completes the step', EXIT_USAGE);
    await withContext(o, async (catalog, store) => {
      const sq = namedSquad(catalog, squad);
      const step = findStep(sq, stepId);
      const r = await store.update(squad, completeStep(sq, step, { by: o.by, ...(o.evidence ? { evidence: o.evidence } : {}) }));
      if (o.json) return printJson({ squad, ...r });
      const t = stdoutTerminal();
      t.write(`${r.changed ? t.colors.green('✓') : t.colors.yellow('=')} ${r.message}\n`);
    });
}

export async function reopenAction(squad: string, stepId: string, o: CommonOptions & { by: string; reason: string }): Promise<void> {
    if (!o.by.trim()) throw new CliError('--by must name who reopens the step', EXIT_USAGE);
    await withContext(o, async (catalog, store) => {
      const sq = namedSquad(catalog, squad);
      const step = findStep(sq, stepId);
      const r = await store.update(squad, reopenStep(sq, step, { by: o.by, reason: o.reason }));
      if (o.json) return printJson({ squad, ...r });
      const t = stdoutTerminal();
      t.write(`${r.changed ? t.colors.yellow('↺') : t.colors.yellow('=')} ${r.message}\n`);
      if (r.changed && r.doneDependents.length) t.write(`  note: ${r.doneDependents.join(', ')} depend on it and are still done; reopen them too if they no longer hold\n`);
    });
}

export async function reportAction(o: CommonOptions & { format: 'table' | 'md' | 'json' | 'html' }): Promise<void> {
    await withContext(o, async (catalog, store) => {
      const progress = await allProgress(catalog, store);
      const invalid = catalog.invalid.map(invalidSquadRow);
      reportInvalid(catalog);
      const generatedAt = new Date().toISOString();
      const format = o.json ? 'json' : o.format;
      const t = stdoutTerminal();
      const text =
        format === 'json'
          ? renderJsonReport(progress, generatedAt, invalid)
          : format === 'md'
            ? renderMarkdownReport(progress, generatedAt, invalid)
            : format === 'html'
              ? renderHtmlReport(progress, generatedAt, invalid)
              : renderTableReport(progress, t, invalid);
      t.write(text);
      if (format === 'table') t.write(t.colors.dim(`state: ${store.description}`) + '\n');
    });
}
