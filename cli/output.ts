/**
 * Shared CLI conventions: exit codes (0 ok, 1 a check or guard failed,
 * 2 bad usage or config), `--json` output, and one-line error messages.
 */
export const EXIT_OK = 0;
export const EXIT_CHECK_FAILED = 1;
export const EXIT_USAGE = 2;

/** An error the CLI reports in one line, with its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_USAGE,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Prints a value as JSON (for `--json`) on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Commander's parser for a repeatable option (`--x a --x b` → `['a', 'b']`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
