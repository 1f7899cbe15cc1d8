/**
 * Configuration problems (manifests, playbooks, state): each one names the
 * file, the line and column, the field, and what was expected, so a squad
 * engineer can fix it without reading our code. The CLI exits 2 on them.
 */
import { CliError, EXIT_USAGE } from '../output.ts';

export interface ConfigProblem {
  file: string;
  /** 1-based; 0 when the problem is about the file as a whole. */
  line: number;
  column: number;
  /** Dotted path of the field, e.g. `services[0].upstream`; empty for the whole document. */
  field: string;
  /** What was expected there, in words. */
  expected: string;
}

/** `file:line:col field: expected …` — the one-line form every problem is printed in. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
  return p.field ? `${where} ${p.field}: ${p.expected}` : `${where}: ${p.expected}`;
}

/** One or more configuration problems, reported together. */
export class ConfigError extends CliError {
  constructor(readonly problems: ConfigProblem[]) {
    const lines = problems.map(formatProblem);
    super(
      problems.length === 1 ? `invalid configuration: ${lines[0]}` : `invalid configuration (${problems.length} problems):\n  ${lines.join('\n  ')}`,
      EXIT_USAGE,
    );
    this.name = 'ConfigError';
  }
}
