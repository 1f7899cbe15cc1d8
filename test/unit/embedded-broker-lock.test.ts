/** The claim file of the embedded broker: refused while its holder lives, taken over when it is gone or unreadable. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { claimEmbeddedBroker, EmbeddedBrokerInUseError, EMBEDDED_BROKER_FILE } from '../../cli/embedded-broker-lock.ts';
import { processIdentity } from '../../cli/pid.ts';

const made: string[] = [];
const newDir = () => {
  const root = mkdtempSync(path.join(tmpdir(), 'bifrost-claim-'));
  made.push(root);
  return path.join(root, '.bifrost');
};
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});
const holderAt = (dir: string) => JSON.parse(readFileSync(path.join(dir, EMBEDDED_BROKER_FILE), 'utf8'));
/** A pid no process has any more (one that has just exited). */
const deadPid = (): number => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
/** The error a claim is refused with. */
function refusedClaim(dir: string, command: string, host?: string): Error {
  try {
    claimEmbeddedBroker(dir, command, host);
  } catch (e) {
    expect(e).toBeInstanceOf(EmbeddedBrokerInUseError);
    return e as Error;
  }
  throw new Error('the claim was not refused');
}
const writeHolder = (dir: string, doc: unknown) => writeFileSync(path.join(dir, EMBEDDED_BROKER_FILE), typeof doc === 'string' ? doc : JSON.stringify(doc));

describe('claimEmbeddedBroker', () => {
  it('creates the state dir and the claim, describes it, and removes it on release', () => {
    const dir = newDir();
    const claim = claimEmbeddedBroker(dir, 'bifrost gateway');
    expect(holderAt(dir)).toMatchObject({ pid: process.pid, host: hostname(), command: 'bifrost gateway' });
    claim.describe({ publicUrl: 'http://127.0.0.1:8080', privateUrl: 'http://127.0.0.1:8081' });
    expect(holderAt(dir)).toMatchObject({ pid: process.pid, publicUrl: 'http://127.0.0.1:8080' });
    claim.release();
    claim.release();
    expect(existsSync(path.join(dir, EMBEDDED_BROKER_FILE))).toBe(false);
  });

  it('refuses while a live process holds it, naming that process', () => {
    const dir = newDir();
    claimEmbeddedBroker(dir, 'probe').release();
    writeHolder(dir, { pid: process.ppid, startedAt: '2026-11-28T00:00:00.000Z', command: 'bifrost up', publicUrl: 'http://127.0.0.1:9999' });
    expect(refusedClaim(dir, 'bifrost gateway').message).toContain(`bifrost up (pid ${process.ppid} at http://127.0.0.1:9999, since 2026-11-28T00:00:00.000Z)`);
    expect(holderAt(dir).pid).toBe(process.ppid);
  });

  it('refuses a second claim from the same process', () => {
    const dir = newDir();
    const first = claimEmbeddedBroker(dir, 'bifrost up');
    expect(() => claimEmbeddedBroker(dir, 'bifrost up')).toThrow(EmbeddedBrokerInUseError);
    first.release();
    claimEmbeddedBroker(dir, 'bifrost up').release();
  });

  it('takes over a claim whose process is gone (a claim without a host, written before hosts were recorded, counts as this host), or that cannot be read', () => {
    const dir = newDir();
    claimEmbeddedBroker(dir, 'probe').release();
    writeHolder(dir, { pid: deadPid(), startedAt: 'x', command: 'bifrost gateway' });
    const a = claimEmbeddedBroker(dir, 'bifrost gateway');
    expect(holderAt(dir)).toMatchObject({ pid: process.pid, host: hostname() });
    a.release();
    writeHolder(dir, '{not json');
    const b = claimEmbeddedBroker(dir, 'bifrost gateway');
    expect(holderAt(dir).pid).toBe(process.pid);
    b.release();
  });

  it('takes over a claim whose pid now belongs to another process (the recorded start time differs), and refuses while the recorded process runs', () => {
    const dir = newDir();
    claimEmbeddedBroker(dir, 'probe').release();
    const parent = processIdentity(process.ppid);
    expect(parent).toBeDefined(); // Linux: /proc tells the boot and start time
    writeHolder(dir, { pid: process.ppid, host: hostname(), process: { ...parent, startTicks: '1' }, startedAt: 'x', command: 'bifrost gateway' });
    const c = claimEmbeddedBroker(dir, 'bifrost gateway');
    expect(holderAt(dir)).toMatchObject({ pid: process.pid, process: processIdentity() });
    c.release();
    writeHolder(dir, { pid: process.ppid, host: hostname(), process: parent, startedAt: 'x', command: 'bifrost up' });
    expect(refusedClaim(dir, 'bifrost gateway').message).toContain(`bifrost up (pid ${process.ppid}, since x)`);
    // A malformed identity is ignored: the live pid alone decides.
    writeHolder(dir, { pid: process.ppid, host: hostname(), process: 'garbage', startedAt: 'x', command: 'bifrost up' });
    expect(refusedClaim(dir, 'bifrost gateway').message).toContain(`pid ${process.ppid}`);
  });

  it("never takes over another host's claim (its pid cannot be checked from here), and says which host holds it", () => {
    const dir = newDir();
    claimEmbeddedBroker(dir, 'probe', 'host-b').release();
    // A pid that is dead here: on this host the claim would be stale.
    const dead = deadPid();
    writeHolder(dir, { pid: dead, host: 'host-a', startedAt: '2026-11-28T00:00:00.000Z', command: 'bifrost gateway' });
    const err = refusedClaim(dir, 'bifrost gateway', 'host-b');
    expect(err.message).toContain(`bifrost gateway (pid ${dead} on host host-a, since 2026-11-28T00:00:00.000Z)`);
    expect(err.message).toContain('this host (host-b) cannot tell whether that process still runs: if it does not, remove the claim file');
    expect(holderAt(dir).host).toBe('host-a');
    // The same claim seen from host-a is stale and taken over.
    const mine = claimEmbeddedBroker(dir, 'bifrost gateway', 'host-a');
    expect(holderAt(dir)).toMatchObject({ pid: process.pid, host: 'host-a' });
    mine.release();
    expect(existsSync(path.join(dir, EMBEDDED_BROKER_FILE))).toBe(false);
  });

  it("does not remove or rewrite another host's claim with this process's pid", () => {
    const dir = newDir();
    const claim = claimEmbeddedBroker(dir, 'bifrost gateway', 'host-a');
    writeHolder(dir, { pid: process.pid, host: 'host-b', startedAt: 'x', command: 'bifrost up' });
    claim.describe({ publicUrl: 'http://127.0.0.1:8080', privateUrl: 'http://127.0.0.1:8081' });
    claim.release();
    expect(holderAt(dir)).toEqual({ pid: process.pid, host: 'host-b', startedAt: 'x', command: 'bifrost up' });
  });

  it('does not remove a claim that is no longer its own', () => {
    const dir = newDir();
    const claim = claimEmbeddedBroker(dir, 'bifrost gateway');
    writeHolder(dir, { pid: process.ppid, startedAt: 'x', command: 'someone else' });
    claim.release();
    expect(holderAt(dir).command).toBe('someone else');
  });
});
