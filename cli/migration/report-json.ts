/** The JSON report: the same model the other renderers use, for dashboards and scripts. */
import type { InvalidSquadRow, SquadProgress } from './squad-progress.ts';

export interface JsonReport {
  generatedAt: string;
  squads: SquadProgress[];
  /** Manifests that cannot be used, with their problems (empty when every manifest is valid). */
  invalid: InvalidSquadRow[];
}

export function renderJsonReport(squads: SquadProgress[], generatedAt: string, invalid: InvalidSquadRow[] = []): string {
  const report: JsonReport = { generatedAt, squads, invalid };
  return JSON.stringify(report, null, 2) + '\n';
}
