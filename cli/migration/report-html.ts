/**
 * The HTML report: one self-contained page (inline CSS, no script, no external
 * resource) a lead can mail around or attach to a ticket. Every value from a
 * manifest or the state is HTML-escaped.
 */
import { invalidRowName, type InvalidSquadRow, type SquadProgress } from './squad-progress.ts';

export function escapeHtml(s: unknown): string {
  return String(s ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const CSS = `
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:2rem auto;max-width:1100px;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #dde2ea;padding-bottom:.3rem}
.meta{color:#667085}table{border-collapse:collapse;width:100%;margin:.8rem 0}th,td{border:1px solid #dde2ea;padding:.4rem .55rem;text-align:left;vertical-align:top}
th{background:#f4f6f9}.bar{display:inline-block;width:120px;height:10px;background:#e6e9ef;border-radius:5px;overflow:hidden;vertical-align:middle;margin-right:.4rem}
.bar span{display:block;height:100%;background:#2e9d5b}.overdue{color:#c0262d;font-weight:600}.done{color:#2e7d4f;font-weight:600}
.todo{color:#9a6700}.blocked{color:#8a94a6}.fail{color:#c0262d}.pass{color:#2e7d4f}pre{white-space:pre-wrap;margin:.3rem 0 0;font-size:12px;color:#475467}
`;

function bar(done: number, total: number): string {
  const pct = total === 0 ? 100 : Math.round((done / total) * 100);
  return `<span class="bar" role="img" aria-label="${pct}%"><span style="width:${pct}%"></span></span>${done}/${total}`;
}

function link(evidence: string): string {
  return /^https?:\/\/\S+$/.test(evidence) ? `<a href="${escapeHtml(evidence)}">${escapeHtml(evidence)}</a>` : escapeHtml(evidence);
}

export function renderHtmlReport(squads: SquadProgress[], generatedAt: string, invalid: readonly InvalidSquadRow[] = []): string {
  const invalidRows = invalid.map(
    (r) => `<tr><td>${escapeHtml(invalidRowName(r))}</td><td><span class="fail">${escapeHtml(r.status)}</span></td><td colspan="3"><pre>${escapeHtml(r.problems.map((p) => p.message).join('\n'))}</pre></td></tr>`,
  );
  const rows = squads
    .map((s) => {
      const target = s.overdue ? `<span class="overdue">${escapeHtml(s.targetDate)} — overdue</span>` : escapeHtml(s.targetDate);
      return `<tr><td><a href="#squad-${escapeHtml(s.squad)}">${escapeHtml(s.squad)}</a></td><td>${bar(s.done, s.total)}</td><td>${escapeHtml(s.nextStep ?? 'all done')}</td><td>${escapeHtml(s.owners)}</td><td>${target}</td></tr>`;
    })
    .concat(invalidRows)
    .join('\n');
  const sections = squads
    .map((s) => {
      const steps = s.steps
        .map((st) => {
          const state =
            st.status === 'done'
              ? `<span class="done">done${st.via === 'check' ? ' (check)' : ''}</span>`
              : st.blockedBy.length
                ? `<span class="blocked">blocked by ${escapeHtml(st.blockedBy.join(', '))}</span>`
                : `<span class="todo">${st.reason ? 'reopened' : 'to do'}</span>`;
          const check = st.lastCheck
            ? `<span class="${st.lastCheck.ok ? 'pass' : 'fail'}">${st.lastCheck.ok ? 'pass' : 'fail'}</span> ${escapeHtml(st.lastCheck.at)}<br>${escapeHtml(st.lastCheck.summary)}${st.lastCheck.output.length ? `<pre>${escapeHtml(st.lastCheck.output.join('\n'))}</pre>` : ''}`
            : st.manual
              ? 'manual'
              : '—';
          const ev = st.evidence ? link(st.evidence) : st.reason ? `reopened: ${escapeHtml(st.reason)}` : '';
          return `<tr><td><strong>${escapeHtml(st.id)}</strong><br>${escapeHtml(st.title)}</td><td>${state}</td><td>${escapeHtml(st.by ?? '')}<br>${escapeHtml(st.at ?? '')}</td><td>${ev}</td><td>${check}</td></tr>`;
        })
        .join('\n');
      return `<section id="squad-${escapeHtml(s.squad)}"><h2>${escapeHtml(s.squad)}${s.title ? ` — ${escapeHtml(s.title)}` : ''}</h2>
<p class="meta">Owners: ${escapeHtml(s.owners)} · playbook <code>${escapeHtml(s.playbook)}</code> · target ${s.overdue ? `<span class="overdue">${escapeHtml(s.targetDate)} (overdue)</span>` : escapeHtml(s.targetDate)} · ${bar(s.done, s.total)}</p>
<table><thead><tr><th>step</th><th>state</th><th>by / when</th><th>evidence / reason</th><th>last check</th></tr></thead><tbody>
${steps}
</tbody></table></section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Bifrost migration report</title><style>${CSS}</style></head>
<body><h1>Bifrost migration report</h1><p class="meta">Generated ${escapeHtml(generatedAt)}</p>
<table><thead><tr><th>squad</th><th>progress</th><th>next step</th><th>owners</th><th>target date</th></tr></thead><tbody>
${rows}
</tbody></table>
${sections}
</body></html>
`;
}
