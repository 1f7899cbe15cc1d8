/**
 * The live migration dashboard in a real headless browser: `playwright-core`
 * driving Debian's Chromium (`/usr/bin/chromium`, installed by this file's
 * setup when missing and running as root) against `bifrost up` on random
 * ports, with real unchanged legacy clients (sails.io.js 1.2.1) connected
 * through the shim, a real `bifrost rollout ramp` process and the squads'
 * migration state written by `bifrost migrate check`.
 *
 * The page is driven through its accessible names (labels and roles), so a
 * control that loses its name fails here. Every process started is killed in
 * afterAll, also when a test fails.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_TOKEN_SECRET, signAccessToken } from '../../gateway/token.ts';
import { connectSailsIoClient, type LegacyClient } from '../support/legacy-clients.ts';
import { cleanEnv, killAll, spawnBifrost, startStack, waitFor, type Running, type Stack, type StackInfo } from '../support/cli-stack.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const ADMIN_TOKEN = 'bifrost-dev-admin-token';
const SCREENSHOT = join(ROOT, 'docs/dashboard.png');
const USERS = ['ana', 'bo', 'chen', 'dee', 'eli', 'fox'];

interface Rollout {
  percent: number | null;
  bucketBy: string | null;
  connections: { sync: number; bifrost: number; nodes: { id: string; connections: number }[] };
  drain: { queued: number };
}

/** Makes sure Debian's Chromium is there: installs it as root with apt-get, else fails with one line. */
function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
  if (isRoot && hasApt) {
    console.log('[dashboard test] installing the Debian package chromium');
    spawnSync('apt-get', ['update'], { stdio: 'ignore' });
    spawnSync('apt-get', ['install', '-y', 'chromium'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium) or run the tests as root`);
}

let dir = '';
let profile = '';
let info: StackInfo;
let stack: Stack | undefined;
let ramp: Running | undefined;
let context: BrowserContext | undefined;
let page: Page;
const clients: LegacyClient[] = [];
/** The rollout percentage the split test moved to (the ramp starts above it). */
let splitPercent = 50;

/** The guards a ramp judges by default, in the order the page lists them (cli/rollout/ramp-guards.ts). */
const GUARDS = ['upgrade-failures', 'bifrost-fallbacks', 'request-errors', 'p99-latency'];
const guardNames = () => page.locator('#ramp-guards-body tr td:first-child').allTextContents();

async function rollout(): Promise<Rollout> {
  const res = await fetch(`${info.adminUrl}/api/rollout`);
  return (await res.json()) as Rollout;
}

/** What the page shows right now, read from its live elements. */
async function shown(p: Page = page) {
  const read = async (id: string) => ((await p.locator(`#${id}`).textContent()) ?? '').trim();
  return { percent: await read('rollout-percent'), bucketBy: await read('rollout-bucket'), sync: await read('conn-sync'), bifrost: await read('conn-bifrost') };
}

function asShown(r: Rollout) {
  return { percent: String(r.percent), bucketBy: String(r.bucketBy), sync: String(r.connections.sync), bifrost: String(r.connections.bifrost) };
}

/**
 * Waits until every client is connected again (no rebalance in flight), the
 * admin API reports `expected` when given, and the page shows exactly what the
 * admin API says.
 */
async function pageMatchesApi(expected?: { sync: number; bifrost: number }): Promise<Rollout> {
  let last: { api?: Rollout; page?: Awaited<ReturnType<typeof shown>> } = {};
  try {
    return await waitFor(
      'the page to show what GET /api/rollout says',
      async () => {
        const api = await rollout();
        last = { api, page: await shown() };
        const settled = api.drain.queued === 0 && api.connections.sync + api.connections.bifrost === USERS.length;
        if (!settled || (expected && (api.connections.sync !== expected.sync || api.connections.bifrost !== expected.bifrost))) return undefined;
        return JSON.stringify(last.page) === JSON.stringify(asShown(api)) ? api : undefined;
      },
      30_000,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: API ${JSON.stringify(last.api && { percent: last.api.percent, connections: last.api.connections, drain: last.api.drain })}, page ${JSON.stringify(last.page)}${expected ? `, expected ${JSON.stringify(expected)}` : ''}`);
  }
}

/** Sets the rollout with the page's control: value, "Set rollout…", then the confirmation dialog. Returns the dialog's text. */
async function setRolloutWithControl(percent: number, confirm = true): Promise<string> {
  await page.getByLabel('New rollout percent', { exact: true }).fill(String(percent));
  await page.getByRole('button', { name: 'Set rollout…' }).click();
  const dialog = page.getByRole('dialog', { name: `Set rollout to ${percent}% (by user)?` });
  await expect.poll(() => dialog.isVisible(), { timeout: 10_000 }).toBe(true);
  const text = ((await dialog.locator('#confirm-text').textContent()) ?? '').trim();
  await dialog.getByRole('button', { name: confirm ? `Set ${percent}%` : 'Cancel' }).click();
  return text;
}

async function enterToken(token: string): Promise<void> {
  const dialog = page.getByRole('dialog', { name: 'Admin token' });
  await expect.poll(() => dialog.isVisible(), { timeout: 10_000 }).toBe(true);
  await dialog.getByLabel('Admin token').fill(token);
  await dialog.getByRole('button', { name: 'Save' }).click();
}

async function message(): Promise<string> {
  return ((await page.locator('#messages').textContent()) ?? '').trim();
}

describe('live migration dashboard (headless Chromium)', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    ensureChromium();
    profile = await mkdtemp(join(tmpdir(), 'bifrost-dashboard-chromium-'));
    stack = await startStack('dashboard', { BIFROST_MIGRATIONS_DIR: join(ROOT, 'migrations'), BIFROST_PLAYBOOKS_DIR: join(ROOT, 'playbooks') });
    dir = stack.dir;
    info = stack.info;
    // One squad step done through the real CLI (the inventory check needs no stack).
    const check = spawnBifrost(['migrate', 'check', 'collections', 'inventory', '--json', '--migrations-dir', join(ROOT, 'migrations'), '--playbooks-dir', join(ROOT, 'playbooks')], { cwd: dir, env: stack.env });
    expect((await check.exited).code, `bifrost migrate check failed: ${check.stderr()}`).toBe(0);

    for (const [i, userId] of USERS.entries()) {
      const token = await signAccessToken(DEV_TOKEN_SECRET, { userId, teamId: `team-${i % 3}` });
      const res = await fetch(`${info.shimUrl}/godserver/init`, { headers: { 'x-access-token': token } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { syncserver_url: string };
      clients.push(await connectSailsIoClient({ url: body.syncserver_url, token, reconnectionDelayMs: 100, reconnectionDelayMaxMs: 400 }));
    }

    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1440, height: 1000 },
      colorScheme: 'light',
    });
    page = context.pages()[0] ?? (await context.newPage());
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      // Refused calls (401 in the wrong-token test) are logged by the browser as failed loads: expected.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    (page as Page & { jsErrors?: string[] }).jsErrors = errors;
  }, 240_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await killAll(); // the ramp and any other CLI child
    await stack?.stop(); // and its directory
    if (profile) await rm(profile, { recursive: true, force: true });
  }, 60_000);

  it('serves the page and its assets from the admin port with a strict content security policy', async () => {
    const res = await fetch(`${info.adminUrl}/dashboard`);
    expect(res.status).toBe(200);
    const html = await res.text();
    if (!html.includes('id="conn-sync"')) {
      throw new Error('GET /dashboard is answered by another route than the live dashboard plugin (remove the old /dashboard route in proxy/admin.ts)');
    }
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(html).not.toMatch(/https?:\/\//); // no CDN, no external font
    for (const [asset, type] of [['dashboard.js', 'javascript'], ['dashboard.css', 'css']] as const) {
      const a = await fetch(`${info.adminUrl}/dashboard/${asset}`);
      expect(a.status).toBe(200);
      expect(a.headers.get('content-type')).toContain(type);
      expect(await a.text()).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    }
  });

  it('shows the rollout and live connections the admin API reports, updated live', async () => {
    await page.goto(`${info.adminUrl}/dashboard`);
    await expect.poll(async () => (await page.locator('#live-text').textContent()) ?? '', { timeout: 10_000 }).toContain('live');
    const api = await pageMatchesApi({ sync: USERS.length, bifrost: 0 });
    expect(api.percent).toBe(0);
    // The page keeps updating by itself (server-sent events, at least every 2 s).
    const snapshot = (await (await fetch(`${info.adminUrl}/api/dashboard`)).json()) as { sampleIntervalMs: number; history: unknown[]; squads: unknown };
    expect(snapshot.sampleIntervalMs).toBeLessThanOrEqual(2000);
    expect(snapshot.history.length).toBeGreaterThan(0);
    expect(snapshot.squads).not.toBeNull();
    const first = await page.locator('#live-text').textContent();
    await expect.poll(() => page.locator('#live-text').textContent(), { timeout: 5000, interval: 250 }).not.toBe(first);
    // The node table shows the gateway with its load factor and the binding dimension.
    const node = page.locator(`tr[data-node="${info.nodes[0]!.nodeId}"]`);
    await expect.poll(() => node.count(), { timeout: 10_000 }).toBe(1);
    const row = (await node.textContent()) ?? '';
    expect(row).toMatch(/\d\.\d{3}/);
    expect(row).toMatch(/cpu|heap|rss|connections|eventLoopDelay|outboundBuffered/);
  });

  it('refuses a wrong admin token: the rollout stays where it was', async () => {
    await page.getByLabel('New rollout percent', { exact: true }).fill('100');
    await page.getByRole('button', { name: 'Set rollout…' }).click();
    await enterToken('not-the-admin-token');
    const dialog = page.getByRole('dialog', { name: 'Set rollout to 100% (by user)?' });
    await expect.poll(() => dialog.isVisible(), { timeout: 10_000 }).toBe(true);
    await dialog.getByRole('button', { name: 'Set 100%' }).click();
    await expect.poll(message, { timeout: 10_000 }).toContain('refused (401)');
    expect((await rollout()).percent).toBe(0);
    expect(await page.evaluate(() => sessionStorage.getItem('bifrost-admin-token'))).toBeNull();
  });

  it('moves the rollout to 100% after a confirmation that counts the connections that would move', async () => {
    await page.getByRole('button', { name: 'Enter admin token' }).click();
    await enterToken(ADMIN_TOKEN);
    // The page stores it when the dialog has closed (its close event), after the click.
    await expect.poll(() => page.evaluate(() => sessionStorage.getItem('bifrost-admin-token')), { timeout: 5000 }).toBe(ADMIN_TOKEN);
    const confirmation = await setRolloutWithControl(100);
    expect(confirmation).toContain(`${USERS.length} live connections of ${USERS.length} would move (${USERS.length} Sync → Bifrost, 0 Bifrost → Sync)`);
    await expect.poll(message, { timeout: 10_000 }).toContain('Rollout set to 100%');
    const api = await pageMatchesApi({ sync: 0, bifrost: USERS.length });
    expect(api.percent).toBe(100);
    expect(api.connections.nodes.reduce((a, n) => a + n.connections, 0)).toBe(USERS.length);
  });

  it('predicts exactly which live connections move when the rollout goes down, and shows the new split', async () => {
    // A percentage that splits these six users (the flag's salt is random per flags file).
    let chosen: { percent: number; toSync: number; moving: number; kind: string; toBifrost: number } | undefined;
    for (const percent of [50, 34, 67, 20, 80, 10, 90]) {
      const p = (await (await fetch(`${info.adminUrl}/api/rollout/preview?percent=${percent}`)).json()) as { kind: string; toSync: number; toBifrost: number; moving: number };
      if (p.toSync > 0 && p.toSync < USERS.length) {
        chosen = { percent, ...p };
        break;
      }
    }
    expect(chosen, 'no percentage splits the six test users').toBeDefined();
    const { percent, toSync } = chosen!;
    splitPercent = percent;
    expect(chosen!.kind).toBe('exact');
    expect(chosen!.toBifrost).toBe(0);
    const confirmation = await setRolloutWithControl(percent);
    expect(confirmation).toContain(`${toSync} live connection${toSync === 1 ? '' : 's'} of ${USERS.length} would move (0 Sync → Bifrost, ${toSync} Bifrost → Sync)`);
    // After the rebalance the split is exactly the one predicted, on the page and in the API.
    const api = await pageMatchesApi({ sync: toSync, bifrost: USERS.length - toSync });
    expect(api.percent).toBe(percent);
    await expect.poll(() => page.locator('#conn-bifrost-pct').textContent(), { timeout: 10_000 }).toBe(`(${Math.round(((USERS.length - toSync) / USERS.length) * 1000) / 10}%)`);
  });

  it('shows squad progress from the migration state', async () => {
    const row = page.locator('tr[data-squad="collections"]');
    await expect.poll(() => row.locator('.squad-count').textContent(), { timeout: 10_000 }).toBe('1/8');
    expect(await row.textContent()).toContain("Register the squad's service in Bifrost's routing table");
    expect(await page.locator('tr[data-squad]').count()).toBeGreaterThanOrEqual(3);
  });

  it('shows a running ramp with its step, time left and guards, and pauses and resumes it', async () => {
    const adminPort = new URL(info.adminUrl).port;
    const first = splitPercent + 5;
    ramp = spawnBifrost(['rollout', 'ramp', '--steps', `${first},${first + 5}`, '--interval', '10m'], { cwd: dir, env: cleanEnv({ BIFROST_FLAGS_FILE: join(dir, 'flags.json'), BIFROST_ADMIN_PORT: adminPort }) });
    const rampState = page.locator('#ramp-state');
    await expect.poll(async () => (await rampState.textContent()) ?? '', { timeout: 30_000 }).toMatch(new RegExp(`running\\s*step 1/2 \\(${first}%\\)`));
    await pageMatchesApi();
    expect((await rollout()).percent).toBe(first);
    expect(await page.locator('#ramp-summary').textContent()).toMatch(/left in the step/);
    await expect.poll(guardNames, { timeout: 10_000 }).toEqual(GUARDS);
    // The numbers are the running ramp's own (persisted with the ramp), not the page's estimate.
    await expect.poll(async () => (await page.locator('#ramp-guards-caption').textContent()) ?? '', { timeout: 10_000 }).toMatch(/^Guards, as the ramp measured them at /);
    const persisted = JSON.parse(await readFile(join(dir, '.bifrost/ramp.json'), 'utf8')) as { stepIndex: number; readings?: { stepIndex: number; guards: unknown[] } };
    expect(persisted.readings?.stepIndex).toBe(persisted.stepIndex);
    expect((persisted.readings?.guards as { guard: string }[] | undefined)?.map((g) => g.guard)).toEqual(GUARDS);

    await page.getByRole('button', { name: 'Pause ramp' }).click();
    await expect.poll(message, { timeout: 10_000 }).toContain('Ramp paused at step 1/2');
    await expect.poll(async () => (await rampState.textContent()) ?? '', { timeout: 10_000 }).toContain('paused by dashboard');
    const stored = JSON.parse(await readFile(join(dir, '.bifrost/ramp.json'), 'utf8')) as { paused: boolean; phase: string };
    expect(stored).toMatchObject({ paused: true, phase: 'running' });
    expect(await page.getByRole('button', { name: 'Pause ramp' }).isDisabled()).toBe(true);

    await page.getByRole('button', { name: 'Resume ramp' }).click();
    await expect.poll(message, { timeout: 10_000 }).toContain('Ramp resumed at step 1/2');
    await expect.poll(async () => (await rampState.textContent()) ?? '', { timeout: 10_000 }).toMatch(/^running/);
    await page.waitForTimeout(2500); // one more sample, so the chart shows the move
    // The README's screenshot is refreshed only on request, so `npm test` leaves the tree clean.
    const shot = await page.screenshot({ fullPage: true });
    expect(shot.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(shot.length).toBeGreaterThan(10_000);
    if (process.env.BIFROST_UPDATE_SCREENSHOT === '1') {
      await mkdir(join(ROOT, 'docs'), { recursive: true });
      await writeFile(SCREENSHOT, shot);
    }
  });

  it('rolls back to 0%: the ramp is ended and every connection goes back to Sync', async () => {
    await page.getByRole('button', { name: 'Roll back to 0%…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Roll back everyone to Sync?' });
    await expect.poll(() => dialog.isVisible(), { timeout: 10_000 }).toBe(true);
    await dialog.getByRole('button', { name: 'Roll back to 0%' }).click();
    await expect.poll(message, { timeout: 10_000 }).toContain('Rolled back to 0%, the ramp was ended');
    const api = await pageMatchesApi({ sync: USERS.length, bifrost: 0 });
    expect(api.percent).toBe(0);
    await expect.poll(async () => (await page.locator('#ramp-state').textContent()) ?? '', { timeout: 10_000 }).toContain('rolled-back');
    // The ramp process notices on its next tick and stops without touching the flag again.
    expect(await Promise.race([ramp!.exited.then((e) => e.code), new Promise((r) => setTimeout(() => r('still running'), 15_000))])).toBe(1);
    await new Promise((r) => setTimeout(r, 1800));
    expect((await rollout()).percent).toBe(0);
    const errors = (page as Page & { jsErrors?: string[] }).jsErrors ?? [];
    expect(errors).toEqual([]);
  });

  it('fits a narrow laptop screen in one column and follows the dark system theme', async () => {
    const wide = await page.locator('section.connections').boundingBox();
    const wideRollout = await page.locator('section.rollout').boundingBox();
    expect(wide!.x).toBeGreaterThan(wideRollout!.x + 100); // side by side on a wide monitor
    await page.setViewportSize({ width: 800, height: 900 });
    await expect.poll(async () => (await page.locator('section.connections').boundingBox())!.x, { timeout: 5000 }).toBe((await page.locator('section.rollout').boundingBox())!.x);
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(scrollWidth).toBeLessThanOrEqual(800); // nothing sticks out sideways
    const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    expect(dark).not.toBe(light);
    const [r, g, b] = dark.match(/\d+/g)!.map(Number);
    expect(r! + g! + b!).toBeLessThan(150);
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1440, height: 1000 });
  });

  it('measures the guards itself, and says so, when the ramp process is gone', async () => {
    const adminPort = new URL(info.adminUrl).port;
    ramp = spawnBifrost(['rollout', 'ramp', '--steps', '5,10', '--interval', '10m'], { cwd: dir, env: cleanEnv({ BIFROST_FLAGS_FILE: join(dir, 'flags.json'), BIFROST_ADMIN_PORT: adminPort }) });
    const caption = async () => (await page.locator('#ramp-guards-caption').textContent()) ?? '';
    await expect.poll(caption, { timeout: 30_000 }).toMatch(/^Guards, as the ramp measured them at /);
    // Killed: its lease dies with its pid, and the page stops showing readings nobody refreshes.
    ramp.child.kill('SIGKILL');
    await ramp.exited;
    await expect.poll(caption, { timeout: 20_000 }).toMatch(/^Guards, measured by this page since it saw the step begin/);
    await expect.poll(guardNames, { timeout: 10_000 }).toEqual(GUARDS);
    expect(await page.locator('#ramp-summary').textContent()).toContain('no live ramp process');
  });
});
