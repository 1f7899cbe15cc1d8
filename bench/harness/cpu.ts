/**
 * Per-process CPU and memory from /proc, read by the bench (never by the
 * measured process itself, so reading costs it nothing).
 *
 * CPU is the sum of `/proc/<pid>/task/<tid>/schedstat` (nanoseconds on CPU)
 * over every thread, so V8's GC helpers and libuv's pool count too; where
 * schedstat is missing, `/proc/<pid>/stat` utime+stime (clock ticks) is used.
 * Threads that ended between two samples are lost to schedstat, which is why
 * both are read and the larger delta wins.
 */
import { readFileSync, readdirSync } from 'node:fs';

const TICK_NS = 1e9 / 100; // CLK_TCK is 100 on Linux

function statTicksNs(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) * TICK_NS;
}

function schedstatNs(pid: number): { total: number; main: number } {
  let total = 0;
  let main = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      total += ns;
      if (tid === String(pid)) main = ns;
    } catch {
      /* thread ended */
    }
  }
  return { total, main };
}

export interface CpuSample {
  pid: number;
  schedNs: number;
  /** The main (JavaScript) thread alone; the rest is GC helpers, libuv's pool, etc. */
  mainNs: number;
  statNs: number;
  at: number;
}

/** CPU consumed so far by a process (all threads). Throws when the process is gone. */
export function sampleCpu(pid: number): CpuSample {
  let sched = { total: 0, main: 0 };
  try {
    sched = schedstatNs(pid);
  } catch {
    /* no schedstat */
  }
  return { pid, schedNs: sched.total, mainNs: sched.main, statNs: statTicksNs(pid), at: performance.now() };
}

/** CPU microseconds between two samples of the same process. */
export function cpuDeltaUs(a: CpuSample, b: CpuSample): number {
  const sched = b.schedNs - a.schedNs;
  const stat = b.statNs - a.statNs;
  // schedstat is precise; stat catches threads that ended in between.
  return Math.max(sched, stat > sched + TICK_NS * 2 ? stat : 0) / 1000;
}

/** A set of processes measured together (a system's nodes, nginx master + workers). */
export class CpuMeter {
  private start = new Map<number, CpuSample>();
  constructor(private readonly pids: () => number[]) {}

  begin(): void {
    this.start.clear();
    for (const pid of this.pids()) {
      try {
        this.start.set(pid, sampleCpu(pid));
      } catch {
        /* gone */
      }
    }
  }

  /** CPU µs since begin(), per pid and summed (and the main threads' share); wall time in ms. */
  end(): { totalUs: number; mainUs: number; perPid: Record<number, number>; wallMs: number } {
    const perPid: Record<number, number> = {};
    let totalUs = 0;
    let mainUs = 0;
    let wallMs = 0;
    for (const [pid, a] of this.start) {
      try {
        const b = sampleCpu(pid);
        const us = cpuDeltaUs(a, b);
        perPid[pid] = us;
        totalUs += us;
        mainUs += (b.mainNs - a.mainNs) / 1000;
        wallMs = Math.max(wallMs, b.at - a.at);
      } catch {
        /* gone */
      }
    }
    return { totalUs, mainUs, perPid, wallMs };
  }
}

/** Every descendant of a pid (nginx workers of the master), found through /proc/<pid>/stat's ppid. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

/** Resident set size of a process, bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) * 1024 : 0;
}
