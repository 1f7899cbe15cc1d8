/** The JSON report: the same model the other renderers use, for dashboards and scripts. */
import type { SquadProgress } from './squad-progress.ts';

export interface JsonReport {
  generatedAt: string;
  squads: SquadProgress[];
}

export function renderJsonReport(squads: SquadProgress[], generatedAt: string): string {
  const report: JsonReport = { generatedAt, squads };
  return JSON.stringify(report, null, 2) + '\n';
}
