/**
 * Top frames of a V8 CPU profile (`node --cpu-prof`, e.g. from `npm run bench
 * -- --profile`) by self time, over the busiest window of the given length
 * (the measured step), idle excluded. At light steps start-up (module
 * loading, connecting the subscribers) can be busier than the step itself:
 * skip-seconds leaves the first seconds of the profile out of the search.
 * Usage: node --import tsx bench/profile-top.ts <file.cpuprofile> [count] [window-seconds] [skip-seconds]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface TopFrames {
  busyMs: number;
  windowMs: number;
  rows: { frame: string; selfMs: number; selfPct: number }[];
}

export function topFrames(file: string, count = 25, windowSeconds = 5, skipSeconds = 0): TopFrames {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const idle = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  let t = p.startTime;
  const times = p.timeDeltas.map((d) => (t += d));
  // The busiest window: the step being measured.
  const W = windowSeconds * 1e6;
  const skipUntil = p.startTime + skipSeconds * 1e6;
  let j = 0;
  while (j < times.length && times[j]! < skipUntil) j++;
  let best = 0;
  let bestStart = times[j] ?? 0;
  let busy = 0;
  for (let i = j; i < times.length; i++) {
    if (!idle.has(p.samples[i]!)) busy += p.timeDeltas[i]!;
    while (times[i]! - times[j]! > W) {
      if (!idle.has(p.samples[j]!)) busy -= p.timeDeltas[j]!;
      j++;
    }
    if (busy > best) {
      best = busy;
      bestStart = times[j]!;
    }
  }
  const agg = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < times.length; i++) {
    if (times[i]! < bestStart || times[i]! > bestStart + W || idle.has(p.samples[i]!)) continue;
    const n = byId.get(p.samples[i]!)!;
    const file = n.callFrame.url ? n.callFrame.url.split('/').slice(-2).join('/') : '';
    const key = `${n.callFrame.functionName || '(anonymous)'}${file ? ` ${file}:${n.callFrame.lineNumber + 1}` : ''}`;
    agg.set(key, (agg.get(key) ?? 0) + p.timeDeltas[i]!);
    total += p.timeDeltas[i]!;
  }
  const rows = [...agg.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([frame, us]) => ({ frame, selfMs: Math.round(us / 1000), selfPct: Math.round((us / total) * 1000) / 10 }));
  return { busyMs: Math.round(total / 1000), windowMs: windowSeconds * 1000, rows };
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const skip = Number(process.argv[5] ?? 0);
  const r = topFrames(process.argv[2]!, Number(process.argv[3] ?? 25), Number(process.argv[4] ?? 5), skip);
  process.stdout.write(`busiest ${r.windowMs / 1000} s window${skip ? ` after the first ${skip} s` : ''}: ${r.busyMs} ms on CPU (idle excluded)\n`);
  for (const row of r.rows) process.stdout.write(`${row.selfPct.toFixed(1).padStart(5)}%  ${String(row.selfMs).padStart(5)} ms  ${row.frame}\n`);
}
