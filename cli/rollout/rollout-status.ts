/**
 * `bifrost rollout status`: gathers the flag as written (flags file or
 * LaunchDarkly), the shim's view (percent in force, live connections per
 * backend and per Bifrost node, routing decisions and upgrade outcomes per
 * backend — totals since the shim started (upgrades from its /metrics) and
 * over the last minutes (`recent` of `GET /api/rollout`) — and the ramp's
 * persisted state, then renders it as tables or JSON. The flag's individual
 * targets and rules in force are shown too, with a warning when they serve
 * another variation than the percentage implies (flag-overrides.ts).
 *
 * With several shim replicas (`--admin-url` repeated) the shim's figures are
 * the fleet's: connections, decisions and upgrades summed over the replicas
 * that answered, Bifrost nodes merged by id. `replicas` lists each one (its
 * percentage in force, its connections, or why it could not be read), and a
 * replica that cannot be read makes the status fail like a single shim does.
 */
import { parsePrometheusText } from '../migration/prometheus-text.ts';
import { newTable, type Colors } from '../migration/terminal.ts';
import { describeOverrides, overridesWarning } from './flag-overrides.ts';
import type { FlagRollout, FlagTarget } from './flag-target.ts';
import { FAILED_UPGRADE_OUTCOMES, type BackendUpgrades } from './metrics-window.ts';
import { describePlan, formatDuration } from './ramp-plan.ts';
import { LEASE_STALE_MS, leaseAlive, timeLeftMs, type RampDoc } from './ramp-state.ts';
import { describeOwner, describeStep } from './ramp-runner.ts';
import { currentReplicas, type ShimAdminClient, type ShimAdmins, type ShimRolloutSnapshot } from './shim-admin-client.ts';

type Upgrades = { sync: BackendUpgrades; bifrost: BackendUpgrades };
/** One shim replica's view, or why it could not be read. */
export type ShimView = { url: string; reachable: true; snapshot: ShimRolloutSnapshot; upgrades: Upgrades | null } | { url: string; reachable: false; error: string };

export interface RolloutStatus {
  /** `overrideWarning`: targets or rules in force that contradict the percentage (null when none). */
  flag: ({ target: 'file' | 'launchdarkly'; description: string; overrideWarning: string | null } & FlagRollout) | { target: 'file' | 'launchdarkly'; description: string; error: string };
  /** The shim (with several replicas: their sum, reachable when any answered). */
  shim: ShimView;
  /** Each replica, when there are several. */
  replicas?: ShimView[];
  ramp: (RampDoc & { ownerAlive: boolean; timeLeftMs: number }) | null;
  rampError?: string;
}

function upgradesFrom(text: string): { sync: BackendUpgrades; bifrost: BackendUpgrades } {
  const out = { sync: { total: 0, failed: 0, byOutcome: {} as Record<string, number> }, bifrost: { total: 0, failed: 0, byOutcome: {} as Record<string, number> } };
  for (const s of parsePrometheusText(text)) {
    if (s.name !== 'bifrost_shim_upgrades_total') continue;
    const b = s.labels.backend === 'bifrost' ? out.bifrost : s.labels.backend === 'sync' ? out.sync : undefined;
    if (!b) continue;
    const o = s.labels.outcome ?? 'unknown';
    b.byOutcome[o] = (b.byOutcome[o] ?? 0) + s.value;
    if (o === 'aborted') continue;
    b.total += s.value;
    if (FAILED_UPGRADE_OUTCOMES.has(o)) b.failed += s.value;
  }
  return out;
}

function readReplica(admin: ShimAdminClient): Promise<ShimView> {
  return Promise.all([admin.rollout(), admin.metricsText().catch(() => null)]).then(
    ([snapshot, text]) => ({ url: admin.url, reachable: true as const, snapshot, upgrades: text === null ? null : upgradesFrom(text) }),
    (err: Error) => ({ url: admin.url, reachable: false as const, error: err.message }),
  );
}

function addUpgrades(into: BackendUpgrades, u: BackendUpgrades): void {
  into.total += u.total;
  into.failed += u.failed;
  for (const [k, v] of Object.entries(u.byOutcome)) into.byOutcome[k] = (into.byOutcome[k] ?? 0) + v;
}

/**
 * The fleet as one shim: counts summed, nodes merged by id (connections
 * summed; draining or unreachable when any replica says so), the rest (flag
 * source, mode, drain policy, percentage) from the first replica that answered.
 */
export function mergeReplicas(views: ShimView[]): ShimView {
  const up = views.filter((v): v is Extract<ShimView, { reachable: true }> => v.reachable);
  const url = views.map((v) => v.url).join(', ');
  if (!up.length) return { url, reachable: false, error: views.map((v) => (v.reachable ? '' : v.error)).join('; ') };
  const first = up[0]!.snapshot;
  const snap: ShimRolloutSnapshot = structuredClone(first);
  const nodes = new Map(snap.connections.nodes.map((n) => [n.id, n]));
  for (const v of up.slice(1)) {
    const o = v.snapshot;
    snap.decisions.sync += o.decisions.sync;
    snap.decisions.bifrost += o.decisions.bifrost;
    for (const [k, n] of Object.entries(o.decisions.byReason)) snap.decisions.byReason[k] = (snap.decisions.byReason[k] ?? 0) + n;
    for (const k of ['sync', 'bifrost', 'websocket', 'polling'] as const) snap.connections[k] += o.connections[k];
    for (const n of o.connections.nodes) {
      const m = nodes.get(n.id);
      if (!m) nodes.set(n.id, { ...n });
      else {
        m.connections += n.connections;
        m.draining ||= n.draining;
        if (n.reachable === false) m.reachable = false;
        m.loadFactor ??= n.loadFactor;
      }
    }
    snap.drain.queued += o.drain.queued;
    snap.drain.closed += o.drain.closed;
    snap.drain.rate += o.drain.rate;
    snap.flagReloads.ok += o.flagReloads.ok;
    snap.flagReloads.errors += o.flagReloads.errors;
    snap.flagReloads.lastError ??= o.flagReloads.lastError;
    if (snap.recent && o.recent) {
      snap.recent.decisions.sync += o.recent.decisions.sync;
      snap.recent.decisions.bifrost += o.recent.decisions.bifrost;
      for (const b of ['sync', 'bifrost'] as const) {
        snap.recent.upgrades[b].ok += o.recent.upgrades[b].ok;
        snap.recent.upgrades[b].failed += o.recent.upgrades[b].failed;
      }
    }
    if (o.flagSource && !o.flagSource.ready && snap.flagSource?.ready !== false) snap.flagSource = o.flagSource;
  }
  snap.connections.nodes = [...nodes.values()];
  let upgrades: Upgrades | null = null;
  if (up.every((v) => v.upgrades)) {
    upgrades = { sync: { total: 0, failed: 0, byOutcome: {} }, bifrost: { total: 0, failed: 0, byOutcome: {} } };
    for (const v of up) {
      addUpgrades(upgrades.sync, v.upgrades!.sync);
      addUpgrades(upgrades.bifrost, v.upgrades!.bifrost);
    }
  }
  return { url, reachable: true, snapshot: snap, upgrades };
}

export async function gatherStatus(deps: { flag: FlagTarget; admin: ShimAdmins; readRamp: () => Promise<RampDoc | null>; host: string; staleMs?: number }): Promise<RolloutStatus> {
  const replicas = await currentReplicas(deps.admin);
  const [flag, views, ramp] = await Promise.all([
    deps.flag.read().then(
      (r) => ({ target: deps.flag.kind, description: deps.flag.description, ...r, overrides: r.overrides ?? [], overrideWarning: overridesWarning(r.overrides ?? [], r.percent) }),
      (err: Error) => ({ target: deps.flag.kind, description: deps.flag.description, error: err.message }),
    ),
    Promise.all(replicas.map(readReplica)),
    deps.readRamp().then(
      (d) => ({ doc: d, error: undefined }),
      (err: Error) => ({ doc: null, error: err.message }),
    ),
  ]);
  const doc = ramp.doc;
  return {
    flag,
    shim: views.length === 1 ? views[0]! : mergeReplicas(views),
    ...(views.length > 1 ? { replicas: views } : {}),
    ramp: doc ? { ...doc, ownerAlive: leaseAlive(doc.owner, { now: Date.now(), host: deps.host, staleMs: deps.staleMs ?? LEASE_STALE_MS }), timeLeftMs: doc.phase === 'running' ? timeLeftMs(doc) : 0 } : null,
    ...(ramp.error ? { rampError: ramp.error } : {}),
  };
}

/** One line about the ramp. */
export function describeRamp(r: NonNullable<RolloutStatus['ramp']>, c: Colors): string {
  if (r.phase === 'completed') return `${c.green('completed')} ${describePlan(r.plan)} at ${r.finishedAt ?? ''}`;
  if (r.phase === 'rolled-back') return `${c.red('rolled back')}: ${r.outcome ?? ''} (${r.finishedAt ?? ''})`;
  if (r.phase === 'rolling-back') {
    const who = r.ownerAlive ? `being written by ${describeOwner(r)}` : c.yellow('not confirmed written: finish it with `bifrost rollout ramp --resume` (or `bifrost rollout rollback` for 0%)');
    return `${c.red('rolling back')} to ${r.rollback?.to ?? '?'}% after a breach at ${r.rollback?.from ?? r.percent}% — ${who}`;
  }
  const who = r.ownerAlive ? `run by ${describeOwner(r)}` : c.yellow('no live process: continue with `bifrost rollout ramp --resume`');
  const paused = r.paused ? c.yellow(` paused${r.pausedBy ? ` by ${r.pausedBy}` : ''},`) : '';
  return `${c.cyan('running')}${paused} ${describePlan(r.plan)}: ${describeStep(r)}, ${formatDuration(Math.max(0, r.plan.intervalMs - r.stepElapsedMs))} left in step, ${formatDuration(r.timeLeftMs)} left in total — ${who}`;
}

/** `5 min`, `90 s`. */
function windowText(seconds: number): string {
  return seconds >= 60 && seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
}

export function renderStatus(s: RolloutStatus, c: Colors, colorOn: boolean): string {
  const lines: string[] = [];
  const label = (k: string) => c.bold(k.padEnd(9));
  if ('error' in s.flag) {
    lines.push(`${label('Flag')} ${c.red(`cannot read ${s.flag.description}: ${s.flag.error}`)}`);
  } else {
    const f = s.flag;
    let inForce = '';
    if (s.replicas) {
      const behind = s.replicas.flatMap((v) => (v.reachable && v.snapshot.percent !== null && v.snapshot.percent !== f.percent ? [`${v.url} still applies ${v.snapshot.percent}%`] : []));
      if (behind.length) inForce = c.yellow(` — ${behind.join(', ')} (reload pending or another flags file)`);
    } else if (s.shim.reachable && s.shim.snapshot.percent !== null && s.shim.snapshot.percent !== f.percent) {
      inForce = c.yellow(` — the shim still applies ${s.shim.snapshot.percent}% (reload pending or another flags file)`);
    }
    const off = f.on === false ? c.yellow(' — targeting off: everyone gets the off variation') : '';
    lines.push(`${label('Rollout')} ${c.bold(`${f.percent}%`)} on Bifrost, bucket by ${f.bucketBy} (${f.description}${f.version !== undefined ? `, version ${f.version}` : ''})${off}${inForce}`);
    if (f.overrideWarning) lines.push(`${label('Overrides')} ${c.yellow(`warning: ${f.overrideWarning}`)}`);
    else if (f.overrides?.length) lines.push(`${label('Overrides')} ${c.dim(`${describeOverrides(f.overrides)} (in line with ${f.percent}%)`)}`);
  }
  if (s.ramp) lines.push(`${label('Ramp')} ${describeRamp(s.ramp, c)}`);
  else lines.push(`${label('Ramp')} none yet${s.rampError ? c.red(` (${s.rampError})`) : ''}`);
  if (!s.shim.reachable) {
    lines.push(`${label('Shim')} ${c.red(s.shim.error)}`);
    return lines.join('\n') + '\n';
  }
  const snap = s.shim.snapshot;
  const how = `flags from ${snap.source}, ${snap.mode} mode, drain policy ${snap.drain.policy} at ${snap.drain.rate}/s${snap.drain.queued ? `, ${snap.drain.queued} queued` : ''}`;
  if (s.replicas) {
    const answering = s.replicas.filter((v) => v.reachable).length;
    lines.push(`${label('Shim')} ${s.replicas.length} replicas, ${answering === s.replicas.length ? 'all answering' : c.red(`${s.replicas.length - answering} not answering`)}; figures below are their sums (${how})`);
    const r = newTable(['shim replica', 'applies', 'live sync', 'live bifrost', 'state'], c, colorOn);
    for (const v of s.replicas) {
      if (!v.reachable) r.push([v.url, '?', '?', '?', c.red(v.error)]);
      else {
        const loaded = !v.snapshot.flagSource || v.snapshot.flagSource.ready;
        r.push([v.url, v.snapshot.percent === null ? '?' : `${v.snapshot.percent}%`, String(v.snapshot.connections.sync), String(v.snapshot.connections.bifrost), loaded ? c.green('up') : c.red('flags not loaded')]);
      }
    }
    lines.push(r.toString());
  } else lines.push(`${label('Shim')} ${s.shim.url} (${how})`);
  if (snap.flagSource && !snap.flagSource.ready) {
    lines.push(`${label('')} ${c.red(`flags NOT LOADED (${snap.flagSource.state}${snap.flagSource.error ? `: ${snap.flagSource.error}` : ''}): every user is routed to Sync whatever the percentage says`)}`);
  }
  const t = newTable(['backend', 'live connections', 'decisions', 'upgrades ok', 'upgrade failures'], c, colorOn);
  for (const b of ['sync', 'bifrost'] as const) {
    const u = s.shim.upgrades?.[b];
    const failed = u ? (u.failed > 0 ? c.red(String(u.failed)) : '0') : '?';
    t.push([b, String(snap.connections[b]), String(snap.decisions[b]), u ? String(u.byOutcome.ok ?? 0) : '?', failed]);
  }
  lines.push(t.toString());
  const recent = snap.recent;
  if (recent) {
    const r = newTable([`last ${windowText(recent.windowSeconds)}`, 'decisions', 'upgrades ok', 'upgrade failures', 'failure rate'], c, colorOn);
    for (const b of ['sync', 'bifrost'] as const) {
      const u = recent.upgrades[b];
      const total = u.ok + u.failed;
      const rate = total ? `${((u.failed / total) * 100).toFixed(1)}%` : '–';
      r.push([b, String(recent.decisions[b]), String(u.ok), u.failed > 0 ? c.red(String(u.failed)) : '0', u.failed > 0 ? c.red(rate) : rate]);
    }
    lines.push(r.toString());
  }
  if (snap.connections.nodes.length) {
    const n = newTable(['Bifrost node', 'url', 'live connections', 'load factor', 'state'], c, colorOn);
    for (const node of snap.connections.nodes) {
      const state = node.reachable === false ? c.red('unreachable') : node.draining ? c.yellow('draining') : node.reachable ? c.green('up') : 'unknown';
      n.push([node.id, node.url, String(node.connections), node.loadFactor === null ? '–' : node.loadFactor.toFixed(2), state]);
    }
    lines.push(n.toString());
  }
  const other = Object.entries(snap.decisions.byReason).filter(([k]) => k !== 'flag');
  if (other.length) lines.push(c.dim(`decisions not from the flag: ${other.map(([k, v]) => `${k} ${v}`).join(', ')}`));
  if (s.replicas) lines.push(c.dim(`counts are summed over the replicas that answered: totals since each one started${recent ? `, and the last ${windowText(recent.windowSeconds)}` : ''}`));
  else lines.push(c.dim(recent ? `first table: totals since the shim started; second: the last ${windowText(recent.windowSeconds)}` : 'counts are totals since the shim started'));
  return lines.join('\n') + '\n';
}
