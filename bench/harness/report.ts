/** Result files and console tables. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Table from 'cli-table3';

/** Writes `<dir>/<timestamp>.json` and `<dir>/latest.json`; returns the first path. */
export function writeResults(dir: string, result: unknown, startedAt: Date): string {
  mkdirSync(dir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const file = path.join(dir, `${stamp}.json`);
  const text = JSON.stringify(result, null, 2) + '\n';
  writeFileSync(file, text);
  writeFileSync(path.join(dir, 'latest.json'), text);
  return file;
}

export function printTable(title: string, head: string[], rows: (string | number)[][]): void {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const r of rows) t.push(r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  process.stdout.write(`\n${title}\n${t.toString()}\n`);
}

/** A number for a table: thousands separated, at most 2 decimals (3 below 1). */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 1) return (Math.round(n * 100) / 100).toString();
  return (Math.round(n * 1000) / 1000).toString();
}

/** "a / b" of two measurements (each a rep), e.g. "5.31 / 5.47". */
export function pair(values: number[]): string {
  return values.map((v) => fmt(v)).join(' / ');
}

export function mean(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}

/** A ratio with its target, e.g. "0.48× (target ≤ 0.55×) met". */
export function ratioText(ratio: number, target: number, direction: 'max' | 'min'): string {
  if (!Number.isFinite(ratio)) return 'n/a';
  const met = direction === 'max' ? ratio <= target : ratio >= target;
  return `${ratio.toFixed(2)}× (target ${direction === 'max' ? '≤' : '≥'} ${target}×) ${met ? 'MET' : 'NOT MET'}`;
}
