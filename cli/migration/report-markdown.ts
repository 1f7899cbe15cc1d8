/** The Markdown report: an overview table and one checklist per squad, for a wiki page or a pull request. */
import { invalidRowName, type InvalidSquadRow, type SquadProgress } from './squad-progress.ts';

/** Escapes text for a Markdown table cell. */
export function mdCell(s: string | undefined): string {
  return (s ?? '').replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');
}

function bar(done: number, total: number): string {
  const n = total === 0 ? 10 : Math.round((done / total) * 10);
  return `${'▰'.repeat(n)}${'▱'.repeat(10 - n)} ${done}/${total}`;
}

export function renderMarkdownReport(squads: SquadProgress[], generatedAt: string, invalid: readonly InvalidSquadRow[] = []): string {
  const out: string[] = [];
  out.push('# Bifrost migration report', '', `Generated ${generatedAt}.`, '');
  out.push('| squad | progress | next step | owners | target date |', '| --- | --- | --- | --- | --- |');
  for (const s of squads) {
    const target = s.overdue ? `**${s.targetDate} — overdue**` : s.complete ? `${s.targetDate} ✅` : s.targetDate;
    out.push(`| ${mdCell(s.squad)} | ${bar(s.done, s.total)} | ${mdCell(s.nextStep ?? 'all done')} | ${mdCell(s.owners)} | ${target} |`);
  }
  for (const r of invalid) out.push(`| ${mdCell(invalidRowName(r))} | **${r.status}** | ${mdCell(r.problems.map((p) => p.message).join('\n'))} | | |`);
  for (const s of squads) {
    out.push('', `## ${mdCell(s.squad)}${s.title ? ` — ${mdCell(s.title)}` : ''}`, '');
    out.push(`Owners: ${mdCell(s.owners)} · playbook \`${s.playbook}\` · target ${s.targetDate}${s.overdue ? ' (**overdue**)' : ''}`, '');
    out.push('| | step | state | by | when | evidence / reason | last check |', '| --- | --- | --- | --- | --- | --- | --- |');
    for (const st of s.steps) {
      const box = st.status === 'done' ? '[x]' : '[ ]';
      const state = st.status === 'done' ? (st.via === 'check' ? 'done (check)' : 'done') : st.blockedBy.length ? `blocked by ${st.blockedBy.join(', ')}` : st.reason ? 'reopened' : 'to do';
      const check = st.lastCheck ? `${st.lastCheck.ok ? '✅ pass' : '❌ fail'} ${st.lastCheck.at}: ${st.lastCheck.summary}` : st.manual ? 'manual' : '—';
      const ev = st.evidence ?? (st.reason ? `reopened: ${st.reason}` : '');
      out.push(`| ${box} | **${mdCell(st.id)}** ${mdCell(st.title)} | ${state} | ${mdCell(st.by)} | ${mdCell(st.at)} | ${mdCell(ev)} | ${mdCell(check)} |`);
    }
  }
  return out.join('\n') + '\n';
}
