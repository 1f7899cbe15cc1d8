/**
 * The dashboard's squad board (proxy/dashboard/squad-board.ts) on real files:
 * one squad's broken manifest hides that squad only and says why; the other
 * squads stay on the board, as in `bifrost migrate list`.
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SquadBoardReader } from '../../proxy/dashboard/squad-board.ts';
import { FileStateStore } from '../../cli/migration/state-store-file.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bifrost-squad-board-'));
  await mkdir(path.join(dir, 'migrations'));
  await cp(path.join(ROOT, 'playbooks'), path.join(dir, 'playbooks'), { recursive: true });
  await cp(path.join(ROOT, 'migrations/collections.yaml'), path.join(dir, 'migrations/collections.yaml'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function reader(): SquadBoardReader {
  return new SquadBoardReader({
    migrationsDir: path.join(dir, 'migrations'),
    playbooksDir: path.join(dir, 'playbooks'),
    store: new FileStateStore(path.join(dir, 'state.json')),
    catalogTtlMs: 0,
  });
}

describe('dashboard squad board', () => {
  it('shows the valid squads and names the broken manifest, instead of showing none', async () => {
    expect(await reader().read()).toMatchObject({ squads: [{ squad: 'collections' }], error: null });
    await writeFile(path.join(dir, 'migrations/gadgets.yaml'), 'squad: gadgets\nplaybook: sync-to-bifrost\ntitle: [unclosed\n');
    const board = await reader().read();
    expect(board.squads.map((s) => s.squad)).toEqual(['collections']);
    expect(board.error).toMatch(/^1 squad manifest\(s\) invalid, not shown \(see `bifrost migrate list`\): .*gadgets\.yaml:\d+:\d+/);
  });
});
