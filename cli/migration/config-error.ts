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

/** Problems in reading order: by file, then line, then column (stable otherwise). */
export function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return [...problems].sort((a, b) => (a.file === b.file ? a.line - b.line || a.column - b.column : a.file < b.file ? -1 : 1));
}

/** One or more configuration problems, reported together (in reading order). */
export class ConfigError extends CliError {
  readonly problems: ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    problems = sortProblems(problems);
    const lines = problems.map(formatProblem);
    super(
      problems.length === 1 ? `invalid configuration: ${lines[0]}` : `invalid configuration (${problems.length} problems):\n  ${lines.join('\n  ')}`,
      EXIT_USAGE,
    );
    this.problems = problems;
    this.name = 'ConfigError';
  }
}
