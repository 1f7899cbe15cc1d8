/**
 * One gateway process per embedded broker. The embedded (in-process) broker
 * cannot be shared: a second gateway started without REDIS_URL next to the
 * first would split users between two brokers that never see each other's
 * events. So a gateway on the embedded broker claims
 * `<state dir>/embedded-broker.json` (the state dir is the flags file's
 * directory, `.bifrost/` by default: the local stack the shim reads its flags
 * from), and a second one is refused with the first one's pid and URLs.
 *
 * The claim is the file itself, created exclusively (`wx`) and removed when
 * the process stops. It records the host name with the pid, and the process's
 * boot and start time where /proc tells them. A file whose process no longer
 * runs on this host (a killed process, a reboot, or its pid reused by another
 * process) is stale and taken over at once. A claim made on another host (a
 * state directory shared between machines or containers) cannot be checked
 * from here, so it is refused with that host named, never taken over. The
 * take-over runs under a short proper-lockfile lock, so two processes
 * starting at the same moment cannot both take over the same stale file.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { asProcessIdentity, processAlive, processIdentity, type ProcessIdentity } from './pid.ts';

export const EMBEDDED_BROKER_FILE = 'embedded-broker.json';

export interface EmbeddedBrokerHolder {
  pid: number;
  /** Host the pid belongs to (claims written before it was recorded have none: taken as this host). */
  host?: string;
  /** Boot and start time of the process (Linux), so a reused pid is not taken for the holder. */
  process?: ProcessIdentity;
  startedAt: string;
  /** What holds it: `bifrost gateway` or `bifrost up`. */
  command: string;
  publicUrl?: string;
  privateUrl?: string;
}

export class EmbeddedBrokerInUseError extends Error {
  constructor(
    message: string,
    readonly holder: EmbeddedBrokerHolder,
  ) {
    super(message);
    this.name = 'EmbeddedBrokerInUseError';
  }
}

/** Claims held by this process (a second stack in the same process is refused too). */
const heldHere = new Set<string>();

export interface EmbeddedBrokerClaim {
  file: string;
  /** Adds the URLs once the gateway listens (shown to a refused second process). */
  describe(urls: { publicUrl: string; privateUrl: string }): void;
  /** Removes the claim if it is still this process's. Idempotent. */
  release(): void;
}

function readHolder(file: string): EmbeddedBrokerHolder | undefined {
  try {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as Partial<EmbeddedBrokerHolder>;
    if (!(typeof doc.pid === 'number' && Number.isInteger(doc.pid) && doc.pid > 0)) return undefined;
    // An identity that is not two strings is ignored (the pid alone decides then).
    return { ...doc, process: asProcessIdentity(doc.process) } as EmbeddedBrokerHolder;
  } catch {
    return undefined;
  }
}

/** Whether a claim was made by this host (a claim without a host predates the field: it was). */
function onThisHost(h: EmbeddedBrokerHolder, host: string): boolean {
  return h.host === undefined || h.host === host;
}

function refusal(file: string, h: EmbeddedBrokerHolder, host: string): EmbeddedBrokerInUseError {
  const where = h.publicUrl ? ` at ${h.publicUrl}` : '';
  const remote = !onThisHost(h, host);
  return new EmbeddedBrokerInUseError(
    `another gateway already runs on the embedded broker of ${path.dirname(file)}: ${h.command} (pid ${h.pid}${remote ? ` on host ${h.host}` : ''}${where}, since ${h.startedAt}). ` +
      'The embedded broker lives inside one process and cannot be shared; give every gateway the same REDIS_URL to run several, ' +
      `or set BIFROST_FLAGS_FILE to another directory for a separate local stack (claim: ${file}` +
      (remote ? `; this host (${host}) cannot tell whether that process still runs: if it does not, remove the claim file` : '') +
      ')',
    h,
  );
}

/** Claims the embedded broker of `stateDir` for this process; throws EmbeddedBrokerInUseError if a live process holds it. */
export function claimEmbeddedBroker(dir: string, command: string, host: string = hostname()): EmbeddedBrokerClaim {
  const stateDir = path.resolve(dir);
  mkdirSync(stateDir, { recursive: true });
  const file = path.join(stateDir, EMBEDDED_BROKER_FILE);
  if (heldHere.has(file)) {
    const current = readHolder(file);
    if (current) throw refusal(file, current, host);
  }
  let holder: EmbeddedBrokerHolder = { pid: process.pid, host, process: processIdentity(), startedAt: new Date().toISOString(), command };
  /** Whether the file holds this process's claim (same pid on the same host). */
  const mine = (h: EmbeddedBrokerHolder | undefined): boolean => h !== undefined && h.pid === process.pid && onThisHost(h, host);
  const write = (flag: 'wx' | 'w'): void => writeFileSync(file, JSON.stringify(holder) + '\n', { flag });
  try {
    write('wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    let release: (() => void) | undefined;
    try {
      release = lockfile.lockSync(file, { realpath: false, stale: 5000 });
    } catch (lockErr) {
      if ((lockErr as NodeJS.ErrnoException).code === 'ELOCKED') {
        throw new Error(`another gateway is claiming the embedded broker of ${stateDir} right now (${file}.lock); try again in a few seconds`);
      }
      throw lockErr;
    }
    try {
      const current = readHolder(file);
      // Another host's claim cannot be checked from here; this host's is live while its process
      // runs (this process's own only while this process still holds it).
      const live = current && (!onThisHost(current, host) || (mine(current) ? heldHere.has(file) : processAlive(current.pid, current.process)));
      if (current && live) throw refusal(file, current, host);
      write('w'); // stale (its process is gone) or unreadable: take it over
    } finally {
      release();
    }
  }
  heldHere.add(file);
  let released = false;
  const claim: EmbeddedBrokerClaim = {
    file,
    describe(urls) {
      if (released) return;
      holder = { ...holder, ...urls };
      if (mine(readHolder(file))) write('w');
    },
    release() {
      if (released) return;
      released = true;
      heldHere.delete(file);
      process.removeListener('exit', onExit);
      try {
        if (mine(readHolder(file))) unlinkSync(file);
      } catch {
        /* already gone */
      }
    },
  };
  const onExit = (): void => claim.release();
  process.once('exit', onExit);
  return claim;
}
