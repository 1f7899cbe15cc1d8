/**
 * Is a recorded process still running? A pid alone can mislead: pids are
 * reused, after a reboot and over time. Where Linux's /proc is readable, a
 * process is also identified by the boot it runs in and its start time.
 */
import { readFileSync } from 'node:fs';

/** Whether a process id exists on this machine (EPERM: it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What tells one process from a later one with the same pid. */
export interface ProcessIdentity {
  /** `/proc/sys/kernel/random/boot_id`: changes at every boot. */
  bootId: string;
  /** Start time after boot, in clock ticks (`/proc/<pid>/stat` field 22). */
  startTicks: string;
}

/** A recorded identity read back from a file: anything but two strings (a hand-edited or older file) is none. */
export function asProcessIdentity(v: unknown): ProcessIdentity | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { bootId, startTicks } = v as Partial<ProcessIdentity>;
  return typeof bootId === 'string' && typeof startTicks === 'string' ? { bootId, startTicks } : undefined;
}

/** The identity of a running process; undefined where /proc cannot tell (not Linux, or the pid is gone). */
export function processIdentity(pid: number = process.pid): ProcessIdentity | undefined {
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses) start at field 3.
    const startTicks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return bootId && startTicks ? { bootId, startTicks } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the process recorded as `pid` (with `identity`, when it was recorded)
 * still runs: the pid is alive and, where both identities can be read, it is
 * the same boot and start time. When its identity cannot be read now, a live
 * pid counts as alive.
 */
export function processAlive(pid: number, identity?: ProcessIdentity): boolean {
  if (!pidAlive(pid)) return false;
  if (!identity) return true;
  const now = processIdentity(pid);
  if (!now) return true;
  return now.bootId === identity.bootId && now.startTicks === identity.startTicks;
}
