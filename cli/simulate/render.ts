/** Rendering of `bifrost simulate` progress: a live table on a terminal, one line a second otherwise. */
import Table from 'cli-table3';
import pc from 'picocolors';
import type { SimulationStats } from './simulation.ts';

export function statsTable(s: SimulationStats): string {
  const t = new Table({ head: ['step', 'rollout', 'clients (Sync / Bifrost)', 'connected', 'reconnects', 'updates', 'failed requests', 'delivered', 'missed', 'during reconnect'], style: { head: [] } });
  t.push([
    `${s.step}/${s.steps} (${Math.ceil(s.stepEndsInMs / 1000)}s left)`,
    `${s.percent}%`,
    `${s.onBackend.sync} / ${s.onBackend.bifrost}`,
    `${s.connected}/${s.clients}`,
    s.reconnects,
    s.updates,
    s.failedRequests ? pc.red(String(s.failedRequests)) : '0',
    `${s.delivered}/${s.expected}`,
    s.missed ? pc.red(String(s.missed)) : pc.green('0'),
    s.duringReconnect,
  ]);
  return t.toString();
}

export function statsLine(s: SimulationStats): string {
  return `step ${s.step}/${s.steps} rollout ${s.percent}% sync=${s.onBackend.sync} bifrost=${s.onBackend.bifrost} connected=${s.connected}/${s.clients} reconnects=${s.reconnects} updates=${s.updates} failed=${s.failedRequests} delivered=${s.delivered}/${s.expected} missed=${s.missed} duringReconnect=${s.duringReconnect}`;
}
