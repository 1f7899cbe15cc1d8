/**
 * Terminal tables (cli-table3): the overview of every squad (`migrate list`,
 * `report --format table`) and one squad's checklist (`migrate show`).
 */
import { invalidRowName, type InvalidSquadRow, type SquadProgress, type StepProgress } from './squad-progress.ts';
import { newTable, progressBar, type Terminal } from './terminal.ts';

function colorEnabled(t: Terminal): boolean {
  return t.colors.red('x') !== 'x';
}

/**
 * One row per squad: progress bar, done/total, next step, owner, target date
 * (overdue in red); then one row per invalid manifest: "invalid manifest" and
 * its problems, one `file:line:col field: expected …` line each.
 */
export function overviewTable(squads: SquadProgress[], t: Terminal, invalid: readonly InvalidSquadRow[] = []): string {
  const c = t.colors;
  const table = newTable(['squad', 'progress', 'next step', 'owner', 'target'], c, colorEnabled(t));
  for (const s of squads) {
    const target = s.overdue ? c.red(`${s.targetDate} overdue`) : s.complete ? c.green(`${s.targetDate} ✓`) : s.targetDate;
    table.push([c.bold(s.squad), progressBar(s.done, s.total, 12, t), s.nextStep ?? c.green('all done'), s.owners, target]);
  }
  for (const r of invalid) {
    table.push([c.bold(invalidRowName(r)), c.red(r.status), { colSpan: 3, content: r.problems.map((p) => p.message).join('\n') }]);
  }
  return table.toString();
}

export function stepStateLabel(step: StepProgress, t: Terminal): string {
  const c = t.colors;
  if (step.status === 'done') return c.green(step.via === 'check' ? 'done (check)' : 'done');
  if (step.blockedBy.length > 0) return c.dim(`blocked by ${step.blockedBy.join(', ')}`);
  if (step.reason) return c.yellow('reopened');
  return step.manual ? c.yellow('to do (manual)') : c.yellow('to do');
}

function lastCheckLabel(step: StepProgress, t: Terminal): string {
  const lc = step.lastCheck;
  if (!lc) return step.manual ? t.colors.dim('manual') : t.colors.dim('never run');
  return `${lc.ok ? t.colors.green('pass') : t.colors.red('fail')} ${lc.at.slice(0, 16).replace('T', ' ')}\n${lc.summary}`;
}

/** One squad's checklist: step, state, who/when, evidence or reason, last check. */
export function stepsTable(s: SquadProgress, t: Terminal): string {
  const table = newTable(['#', 'step', 'state', 'by / when', 'evidence / reason', 'last check'], t.colors, colorEnabled(t));
  s.steps.forEach((st, i) => {
    table.push([
      String(i + 1),
      `${st.id}\n${t.colors.dim(st.title)}`,
      stepStateLabel(st, t),
      st.by ? `${st.by}\n${(st.at ?? '').slice(0, 16).replace('T', ' ')}` : '',
      st.evidence ?? (st.reason ? `reopened: ${st.reason}` : ''),
      lastCheckLabel(st, t),
    ]);
  });
  return table.toString();
}

/** The full table report: the overview (invalid manifests included), then every valid squad's checklist. */
export function renderTableReport(squads: SquadProgress[], t: Terminal, invalid: readonly InvalidSquadRow[] = []): string {
  const parts = [overviewTable(squads, t, invalid)];
  for (const s of squads) parts.push(`\n${t.colors.bold(s.squad)}${s.title ? ` — ${s.title}` : ''} (${s.owners}; playbook ${s.playbook})\n${stepsTable(s, t)}`);
  return parts.join('\n') + '\n';
}
