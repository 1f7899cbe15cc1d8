/** Telling a recorded process from a later one with the same pid (cli/pid.ts). */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { pidAlive, processAlive, processIdentity } from '../../cli/pid.ts';

describe('process identity', () => {
  it('reads the boot id and start time of a live process, the same on every read', () => {
    const me = processIdentity();
    expect(me).toEqual({ bootId: expect.stringMatching(/^[0-9a-f-]{36}$/), startTicks: expect.stringMatching(/^\d+$/) });
    expect(processIdentity(process.pid)).toEqual(me);
    // Another process (the test runner that started this one, earlier) has another start time, same boot.
    expect(processIdentity(process.ppid)).toEqual({ bootId: me!.bootId, startTicks: expect.not.stringMatching(`^${me!.startTicks}$`) });
  });

  it('a process is alive while its pid runs with the recorded boot and start time', () => {
    const me = processIdentity()!;
    expect(processAlive(process.pid, me)).toBe(true);
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(process.pid, { ...me, startTicks: String(Number(me.startTicks) + 1) })).toBe(false);
    expect(processAlive(process.pid, { ...me, bootId: '00000000-0000-0000-0000-000000000000' })).toBe(false);
  });

  it('a pid that has exited is neither alive nor identifiable', () => {
    const gone = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    expect(pidAlive(gone)).toBe(false);
    expect(processIdentity(gone)).toBeUndefined();
    expect(processAlive(gone, processIdentity())).toBe(false);
  });
});
