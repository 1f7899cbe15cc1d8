/**
 * How a ramp shows its progress. On a terminal: one line redrawn in place —
 * a bar of the whole ramp, the current step, time left in the step and in
 * total, and the latest guard readings. Anywhere else (pipes, CI logs, `--json`
 * on stderr): plain lines, one per event and a status line now and then.
 * Colors follow NO_COLOR / FORCE_COLOR (cli/migration/terminal.ts).
 */
import pc from 'picocolors';
import { colorEnabled, type Colors } from '../migration/terminal.ts';
import type { GuardReading } from './ramp-guards.ts';
import { formatDuration } from './ramp-plan.ts';

export interface RampView {
  stepIndex: number;
  steps: number[];
  stepElapsedMs: number;
  intervalMs: number;
  timeLeftMs: number;
  paused: boolean;
  readings: GuardReading[];
}

export interface RampReporter {
  /** A notable moment, one line (step applied, resumed, paused, breach…). */
  event(line: string): void;
  /** The current state; called often, rendered as the reporter sees fit. */
  tick(view: RampView): void;
  /** Leaves the terminal clean. */
  done(): void;
}

/** Overall progress 0..1: finished steps plus the share of the current step watched. */
export function rampFraction(v: Pick<RampView, 'stepIndex' | 'steps' | 'stepElapsedMs' | 'intervalMs'>): number {
  if (v.steps.length === 0) return 1;
  const inStep = Math.min(1, v.stepElapsedMs / v.intervalMs);
  return Math.min(1, (v.stepIndex + inStep) / v.steps.length);
}

/** `██████░░░░` (`######----` without a terminal). */
export function bar(fraction: number, width: number, unicode: boolean, colors: Colors): string {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  const [on, off] = unicode ? ['█', '░'] : ['#', '-'];
  return colors.green(on.repeat(filled)) + colors.dim(off.repeat(width - filled));
}

function shortReadings(readings: GuardReading[]): string {
  const parts: string[] = [];
  for (const r of readings) {
    if (r.value === null) continue;
    if (r.guard === 'p99-latency') parts.push(`p99 ${r.value.toFixed(0)}ms`);
    else if (r.guard === 'request-errors') parts.push(`errors ${(r.value * 100).toFixed(2)}%`);
    else parts.push(`upgrade failures ${(r.value * 100).toFixed(2)}%`);
  }
  return parts.join(' · ');
}

/** The one-line status of a ramp. */
export function renderRampLine(v: RampView, opts: { unicode: boolean; colors: Colors; width?: number }): string {
  const { colors } = opts;
  const total = v.steps.length;
  const cur = v.steps[Math.min(v.stepIndex, total - 1)];
  const next = v.steps[v.stepIndex + 1];
  const stepLeft = Math.max(0, v.intervalMs - v.stepElapsedMs);
  const head = `${bar(rampFraction(v), opts.width ?? 24, opts.unicode, colors)} step ${Math.min(v.stepIndex + 1, total)}/${total} ${colors.bold(`${cur}%`)}`;
  const when = v.paused
    ? colors.yellow(`paused (${formatDuration(stepLeft)} left in step)`)
    : next !== undefined
      ? `next ${next}% in ${formatDuration(stepLeft)}`
      : `done in ${formatDuration(stepLeft)}`;
  const readings = shortReadings(v.readings);
  return [head, when, `${formatDuration(v.timeLeftMs)} left`, readings].filter(Boolean).join(colors.dim(' · '));
}

/** A live bar on a terminal. */
export class TerminalRampReporter implements RampReporter {
  private last = '';
  private readonly colors: Colors;

  constructor(private readonly stream: NodeJS.WriteStream) {
    this.colors = pc.createColors(colorEnabled(stream));
  }

  event(line: string): void {
    this.stream.write(`\r\x1b[2K${line}\n${this.last}`);
  }

  tick(view: RampView): void {
    const cols = this.stream.columns ?? 120;
    this.last = renderRampLine(view, { unicode: true, colors: this.colors, width: cols < 100 ? 12 : 24 });
    this.stream.write(`\r\x1b[2K${this.last}`);
  }

  done(): void {
    if (this.last) this.stream.write('\r\x1b[2K');
    this.last = '';
  }
}

/** Plain lines: every event, and a status line at most every `everyMs`. */
export class PlainRampReporter implements RampReporter {
  private lastTickAt = 0;
  private lastKey = '';
  private readonly colors: Colors;

  constructor(
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly everyMs: number,
  ) {
    this.colors = pc.createColors(colorEnabled(stream));
  }

  event(line: string): void {
    this.stream.write(`${line}\n`);
  }

  tick(view: RampView): void {
    const now = Date.now();
    const key = `${view.stepIndex}:${view.paused}`;
    // While paused nothing moves: one line when it happens is enough.
    if (key === this.lastKey && (view.paused || now - this.lastTickAt < this.everyMs)) return;
    this.lastKey = key;
    this.lastTickAt = now;
    this.stream.write(`${renderRampLine(view, { unicode: false, colors: this.colors, width: 20 })}\n`);
  }

  done(): void {}
}
