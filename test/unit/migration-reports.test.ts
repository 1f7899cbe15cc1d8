/** The report renderers (table, Markdown, JSON, HTML) and the progress model they share. */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog, type MigrationCatalog } from '../../cli/migration/catalog.ts';
import { escapeHtml, renderHtmlReport } from '../../cli/migration/report-html.ts';
import { renderJsonReport } from '../../cli/migration/report-json.ts';
import { mdCell, renderMarkdownReport } from '../../cli/migration/report-markdown.ts';
import { overviewTable, renderTableReport } from '../../cli/migration/report-table.ts';
import { invalidSquadRow, squadProgress, type SquadProgress } from '../../cli/migration/squad-progress.ts';
import type { SquadState } from '../../cli/migration/state-store.ts';
import { colorEnabled, progressBar, StepSpinner, type Terminal } from '../../cli/migration/terminal.ts';
import pc from 'picocolors';

const repo = path.resolve(import.meta.dirname, '../..');
let catalog: MigrationCatalog;

beforeAll(async () => {
  catalog = await loadCatalog({ migrationsDir: path.join(repo, 'migrations'), playbooksDir: path.join(repo, 'playbooks') });
});

function collectionsState(): SquadState {
  return {
    squad: 'collections',
    version: 3,
    steps: {
      inventory: { status: 'done', by: 'check', via: 'check', at: '2026-11-01T10:00:00.000Z', lastCheck: { ok: true, at: '2026-11-01T10:00:00.000Z', summary: 'complete', output: ['✓ owners'], durationMs: 2 } },
      'register-service': { status: 'done', by: 'ada', via: 'manual', at: '2026-11-02T10:00:00.000Z', evidence: 'https://example.com/pr/1?a=1&b=<2>' },
      'dual-publish': { status: 'pending', by: 'grace', at: '2026-11-03T10:00:00.000Z', reason: 'bridge | off <script>alert(1)</script>', lastCheck: { ok: false, at: '2026-11-03T10:00:00.000Z', summary: 'no event within 5000 ms', output: ['events seen: none'], durationMs: 5003 } },
    },
  };
}

function progressFixture(today = '2026-11-28'): SquadProgress[] {
  return catalog.squads.map((sq) =>
    squadProgress(sq, sq.manifest.squad === 'collections' ? collectionsState() : { squad: sq.manifest.squad, steps: {}, version: 0 }, sq.manifest.squad === 'notifications' ? '2027-03-01' : today),
  );
}

const plain: Terminal = { colors: pc.createColors(false), tty: false, write: () => {} };
const colored: Terminal = { colors: pc.createColors(true), tty: true, write: () => {} };

describe('squad progress', () => {
  it('counts done steps, finds the next unblocked step and what blocks the others', () => {
    const p = progressFixture().find((s) => s.squad === 'collections')!;
    expect(p).toMatchObject({ done: 2, total: 8, nextStep: 'dual-publish', overdue: false, complete: false });
    expect(p.steps.find((s) => s.id === 'route-parity')!.blockedBy).toEqual([]);
    expect(p.steps.find((s) => s.id === 'canary')!.blockedBy).toEqual(['dual-publish', 'subscribe-headers', 'route-parity']);
    expect(p.steps.find((s) => s.id === 'dual-publish')!.reason).toContain('bridge');
  });

  it('is overdue only after the target date and while steps remain', () => {
    const n = progressFixture().find((s) => s.squad === 'notifications')!;
    expect(n.overdue).toBe(true);
    const c = progressFixture('2027-04-01').find((s) => s.squad === 'collections')!;
    expect(c.overdue).toBe(true);
    const all = catalog.squads.find((s) => s.manifest.squad === 'collections')!;
    const doneState: SquadState = { squad: 'collections', version: 1, steps: Object.fromEntries(all.playbook.steps.map((s) => [s.id, { status: 'done' as const }])) };
    expect(squadProgress(all, doneState, '2030-01-01')).toMatchObject({ overdue: false, complete: true, nextStep: null, done: 8 });
  });
});

describe('table output', () => {
  it('shows every squad with bar, done/total, next step, owner and target; overdue in red only with colors', () => {
    const text = overviewTable(progressFixture(), plain);
    expect(text).toMatch(/collections\s+│ ###-{9} 2\/8\s+│ dual-publish/);
    expect(text).toMatch(/2027-02-26 overdue/);
    expect(text).not.toContain('\x1b[');
    const red = overviewTable(progressFixture(), colored);
    expect(red).toContain(pc.createColors(true).red('2027-02-26 overdue'));
  });

  it('the full table report has a checklist per squad with state, who, evidence and last check', () => {
    const text = renderTableReport(progressFixture(), plain);
    expect(text).toContain('done (check)');
    expect(text).toContain('blocked by dual-publish, subscribe-headers, route-parity');
    expect(text).toContain('reopened');
    expect(text).toContain('no event within 5000 ms');
  });

  it('progress bars are ASCII off a terminal and unicode on one', () => {
    expect(progressBar(3, 8, 8, plain)).toBe('###----- 3/8');
    expect(pc.createColors(false).bold(progressBar(0, 0, 4, { colors: pc.createColors(false), tty: true }))).toBe('████ 0/0');
  });

  it('colors follow NO_COLOR, FORCE_COLOR and the TTY', () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ isTTY: false }, {})).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled({ isTTY: false }, { FORCE_COLOR: '1' })).toBe(true);
    expect(colorEnabled({ isTTY: true }, { FORCE_COLOR: '0' })).toBe(false);
  });
});

describe('markdown report', () => {
  it('has an overview row per squad and a checklist with escaped cells', () => {
    const md = renderMarkdownReport(progressFixture(), '2026-11-28T00:00:00.000Z');
    expect(md).toContain('| collections | ▰▰▰▱▱▱▱▱▱▱ 2/8 | dual-publish |');
    expect(md).toContain('**2027-02-26 — overdue**');
    expect(md).toContain('| [x] | **inventory**');
    expect(md).toContain('| [ ] | **dual-publish**');
    expect(md).toContain('reopened: bridge \\| off');
    expect(md).toContain('❌ fail 2026-11-03T10:00:00.000Z: no event within 5000 ms');
    expect(mdCell('a|b\nc')).toBe('a\\|b<br>c');
  });
});

describe('json report', () => {
  it('is the progress model with a timestamp', () => {
    const parsed = JSON.parse(renderJsonReport(progressFixture(), '2026-11-28T00:00:00.000Z'));
    expect(parsed.generatedAt).toBe('2026-11-28T00:00:00.000Z');
    expect(parsed.squads.map((s: SquadProgress) => [s.squad, s.done, s.total, s.nextStep])).toEqual([
      ['collections', 2, 8, 'dual-publish'],
      ['notifications', 0, 8, 'inventory'],
      ['workspaces', 0, 8, 'inventory'],
    ]);
    expect(parsed.squads[0].steps[1]).toMatchObject({ id: 'register-service', status: 'done', by: 'ada', evidence: 'https://example.com/pr/1?a=1&b=<2>' });
  });
});

describe('html report', () => {
  it('is one self-contained page: inline CSS, no script, no external resource', () => {
    const html = renderHtmlReport(progressFixture(), '2026-11-28T00:00:00.000Z');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<style>');
    expect(html).not.toMatch(/<script|<link|src=|@import|url\(/i);
    expect(html).toContain('id="squad-collections"');
    expect(html).toContain('class="overdue">2027-02-26 — overdue');
  });

  it('escapes every value from manifests and state', () => {
    const html = renderHtmlReport(progressFixture(), '2026-11-28T00:00:00.000Z');
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('<a href="https://example.com/pr/1?a=1&amp;b=&lt;2&gt;">');
    expect(escapeHtml(`"'<>&`)).toBe('&quot;&#39;&lt;&gt;&amp;');
  });
});

describe('invalid manifests in the reports', () => {
  const broken = invalidSquadRow({
    file: 'migrations/gizmos.yaml',
    squad: 'gizmos',
    couldBe: [],
    problems: [{ file: 'migrations/gizmos.yaml', line: 5, column: 1, field: 'targetDate', expected: 'expected a date YYYY-MM-DD, got "<soon>"' }],
  });
  const unreadable = invalidSquadRow({ file: 'migrations/typo.yml', squad: null, couldBe: ['typo'], problems: [{ file: 'migrations/typo.yml', line: 0, column: 0, field: '', expected: 'a readable file (EACCES)' }] });
  const message = 'migrations/gizmos.yaml:5:1 targetDate: expected a date YYYY-MM-DD, got "<soon>"';

  it('each is a row with status "invalid manifest" and its exact problem lines, after the valid squads', () => {
    expect(broken).toMatchObject({ squad: 'gizmos', status: 'invalid manifest', problems: [{ line: 5, field: 'targetDate', message }] });
    const text = overviewTable(progressFixture(), plain, [broken, unreadable]);
    expect(text).toMatch(/│ gizmos\s+│ invalid manifest\s+│ migrations\/gizmos\.yaml:5:1 targetDate: expected a date YYYY-MM-DD, got "<soon>"\s+│/);
    expect(text).toMatch(/│ typo\s+│ invalid manifest\s+│ migrations\/typo\.yml: a readable file \(EACCES\)/);
    expect(text.indexOf('workspaces')).toBeLessThan(text.indexOf('gizmos'));
    expect(renderTableReport(progressFixture(), plain, [broken])).toContain(message);
    expect(renderMarkdownReport(progressFixture(), '2026-11-28T00:00:00.000Z', [broken])).toContain(`| gizmos | **invalid manifest** | ${message} | | |`);
    const json = JSON.parse(renderJsonReport(progressFixture(), '2026-11-28T00:00:00.000Z', [broken, unreadable]));
    expect(json.squads).toHaveLength(3);
    expect(json.invalid).toEqual([broken, unreadable]);
    expect(json.invalid[1]).toMatchObject({ squad: null, file: 'migrations/typo.yml' });
    expect(JSON.parse(renderJsonReport(progressFixture(), '2026-11-28T00:00:00.000Z')).invalid).toEqual([]);
    const html = renderHtmlReport(progressFixture(), '2026-11-28T00:00:00.000Z', [broken]);
    expect(html).toContain('<td>gizmos</td><td><span class="fail">invalid manifest</span></td><td colspan="3"><pre>migrations/gizmos.yaml:5:1 targetDate: expected a date YYYY-MM-DD, got &quot;&lt;soon&gt;&quot;</pre></td>');
  });
});

describe('check spinner', () => {
  it('off a terminal prints a start line and the result line, without control codes', () => {
    const out: string[] = [];
    const t: Terminal = { colors: pc.createColors(false), tty: false, write: (s) => void out.push(s) };
    const sp = new StepSpinner(t, 'dual-publish — Publish every change');
    sp.start();
    sp.update('waiting for the event');
    sp.stop('✓ dual-publish — ok');
    expect(out.join('')).toBe('… dual-publish — Publish every change\n✓ dual-publish — ok\n');
  });

  it('on a terminal redraws one line with the current detail and replaces it with the result', async () => {
    const out: string[] = [];
    const t: Terminal = { colors: pc.createColors(false), tty: true, write: (s) => void out.push(s) };
    const sp = new StepSpinner(t, 'canary');
    sp.start();
    sp.update('sampling metrics');
    await new Promise((r) => setTimeout(r, 200));
    sp.stop('✓ canary — healthy');
    const text = out.join('');
    expect(text).toMatch(/^\r\x1b\[2K⠋ canary\r\x1b\[2K⠙ canary — sampling metrics/);
    expect(text.endsWith('\r\x1b[2K✓ canary — healthy\n')).toBe(true);
    const frames = out.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(out.length).toBe(frames);
  });
});
