/**
 * Terminal output for the migrate commands: colors only on a TTY and never
 * with NO_COLOR (FORCE_COLOR forces them), progress bars, tables, and a
 * spinner per running check that degrades to plain lines when the output is
 * not a terminal.
 */
import pc from 'picocolors';
import Table from 'cli-table3';

export type Colors = ReturnType<typeof pc.createColors>;

export interface Terminal {
  colors: Colors;
  /** True when stdout is a terminal (spinners, unicode bars). */
  tty: boolean;
  write(text: string): void;
}

/** Whether to color `stream`, following the NO_COLOR / FORCE_COLOR conventions. */
export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if ('NO_COLOR' in env && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '') return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export function stdoutTerminal(): Terminal {
  return {
    colors: pc.createColors(colorEnabled(process.stdout)),
    tty: process.stdout.isTTY === true,
    write: (t) => void process.stdout.write(t),
  };
}

/** `███████░░░ 7/10` (ASCII `#######--- 7/10` when not on a terminal). */
export function progressBar(done: number, total: number, width: number, t: Pick<Terminal, 'colors' | 'tty'>): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  const [on, off] = t.tty ? ['█', '░'] : ['#', '-'];
  const bar = t.colors.green(on.repeat(filled)) + t.colors.dim(off.repeat(width - filled));
  return `${bar} ${done}/${total}`;
}

/** A cli-table3 table with borders and header styled for the terminal (no ANSI codes without color). */
export function newTable(head: string[], colors: Colors, enabled: boolean): InstanceType<typeof Table> {
  return new Table({
    head: head.map((h) => colors.bold(h)),
    style: { head: [], border: enabled ? ['grey'] : [], compact: false },
    wordWrap: true,
  });
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** One spinner line on a TTY; on anything else, a plain "… label" line and the result line. */
export class StepSpinner {
  private timer?: NodeJS.Timeout;
  private frame = 0;
  private detail = '';

  constructor(
    private readonly t: Terminal,
    private readonly label: string,
  ) {}

  start(): void {
    if (!this.t.tty) {
      this.t.write(`… ${this.label}\n`);
      return;
    }
    this.render();
    this.timer = setInterval(() => this.render(), 80);
    this.timer.unref();
  }

  /** Shows what the check is doing now (TTY only). */
  update(detail: string): void {
    this.detail = detail;
  }

  private render(): void {
    const f = FRAMES[this.frame++ % FRAMES.length]!;
    // Keep the line on one terminal row: cut the detail (never the label) to the width left.
    const cols = process.stdout.columns || 100;
    const room = cols - this.label.length - 6;
    const detail = room > 8 && this.detail ? ` — ${this.detail.length > room ? `${this.detail.slice(0, room - 1)}…` : this.detail}` : '';
    this.t.write(`\r\x1b[2K${this.t.colors.cyan(f)} ${this.label}${this.t.colors.dim(detail)}`);
  }

  /** Replaces the spinner with the final line. */
  stop(finalLine: string): void {
    if (this.timer) clearInterval(this.timer);
    this.t.write(this.t.tty ? `\r\x1b[2K${finalLine}\n` : `${finalLine}\n`);
  }
}
