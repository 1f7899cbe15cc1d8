/**
 * The file store's write path: a temporary file, fsync, rename over the state
 * file, then fsync of the directory (so the rename, and on the first write the
 * file's creation, reaches the disk before the command reports success).
 *
 * These tests run that path on a real file system and check what it leaves
 * behind. They do not, and cannot, prove the write survives a power loss: that
 * takes a crash below the page cache (a VM reset, dm-flakey), which no test
 * here simulates.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStateStore, syncDirectory } from '../../cli/migration/state-store-file.ts';
import type { StepChange } from '../../cli/migration/state-store.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bifrost-state-file-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const complete = (step: string, by: string): StepChange => ({ step, action: 'complete', by, evidence: 'reviewed', next: { status: 'done', by, at: '2026-11-28T10:00:00.000Z', via: 'manual', evidence: 'reviewed' } });

describe('file store writes', () => {
  it('the first write creates the missing directories and a state file that parses, with the step in it', async () => {
    const file = path.join(dir, 'nested', '.bifrost', 'state.json');
    const store = new FileStateStore(file);
    expect(await store.update('gadgets', () => ({ changes: [complete('inventory', 'ada')], result: 'ok' }))).toBe('ok');
    const data = JSON.parse(await readFile(file, 'utf8'));
    expect(data).toMatchObject({ format: 'bifrost-migration-state', version: 1, squads: { gadgets: { version: 1, steps: { inventory: { status: 'done', by: 'ada' } } } } });
    expect(data.audit).toEqual([expect.objectContaining({ squad: 'gadgets', step: 'inventory', action: 'complete', by: 'ada', previous: null })]);
    // No temporary file or lock left next to it.
    expect(await readdir(path.dirname(file))).toEqual(['state.json']);
    expect((await new FileStateStore(file).read('gadgets')).steps.inventory).toMatchObject({ status: 'done' });
  });

  it('a later write replaces the whole file and keeps what was there', async () => {
    const file = path.join(dir, 'state.json');
    const store = new FileStateStore(file);
    await store.update('gadgets', () => ({ changes: [complete('inventory', 'ada')], result: undefined }));
    await store.update('gizmos', () => ({ changes: [complete('inventory', 'grace')], result: undefined }));
    const data = JSON.parse(await readFile(file, 'utf8'));
    expect(Object.keys(data.squads)).toEqual(['gadgets', 'gizmos']);
    expect(data.audit).toHaveLength(2);
    expect((await readdir(dir)).sort()).toEqual(['state.json']);
  });
});

describe('syncDirectory', () => {
  it('fsyncs a real directory', async () => {
    await writeFile(path.join(dir, 'x'), 'x');
    await expect(syncDirectory(dir)).resolves.toBeUndefined();
  });

  it('raises errors other than "directory fsync not supported"', async () => {
    await expect(syncDirectory(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
