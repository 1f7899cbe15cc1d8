/**
 * The multi-dimensional load factor of a node: each dimension is a ratio to
 * its target (1.0 = at target) and the load factor is the largest. Above 1.0
 * the node refuses new connections and reports not ready.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { LoadTargets } from './config.ts';

export type LoadDimension = keyof LoadTargets;

/** Weight of the newest sample in the CPU and loop-delay averages (about a 3 s memory at 1 s samples). */
const SMOOTHING = 0.3;
/**
 * The loop-delay monitor's sampling interval, ms. Each sample is a timer wake-up,
 * which costs real CPU on a VM: 10 ms (Node's default) kept an idle node at about
 * 10 ms of CPU per second. A sample records the whole interval, so the interval
 * is subtracted to get the delay.
 */
export const LOOP_SAMPLE_MS = 50;

export interface LoadReport {
  loadFactor: number;
  /** The dimension with the largest ratio. */
  binding: LoadDimension;
  dimensions: Record<LoadDimension, number>;
  /** The raw values behind the ratios. */
  values: Record<LoadDimension, number>;
}

export class LoadFactor {
  private readonly loop: IntervalHistogram;
  private lastCpu = process.cpuUsage();
  private lastAt = performance.now();
  /** Smoothed (EWMA) CPU share and loop delay, so one busy second does not flip admission. */
  private cpuShare = 0;
  private loopDelayMs = 0;
  private report: LoadReport;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly targets: LoadTargets,
    private readonly inflate: Partial<Record<LoadDimension, number>>,
    private readonly sample: { connections: () => number; outboundBuffered: () => number },
    /** How often the dimensions are sampled, ms. Default 1000. */
    private readonly intervalMs = 1000,
  ) {
    this.loop = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
    this.loop.enable();
    this.report = this.compute();
  }

  start(): void {
    this.timer = setInterval(() => this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.loop.disable();
  }

  /** Samples CPU since the last refresh and recomputes. */
  refresh(): LoadReport {
    const now = performance.now();
    const cpu = process.cpuUsage(this.lastCpu);
    const wallUs = (now - this.lastAt) * 1000;
    if (wallUs > 0) this.cpuShare = SMOOTHING * ((cpu.user + cpu.system) / wallUs) + (1 - SMOOTHING) * this.cpuShare;
    const loop = this.loop.count > 0 ? Math.max(0, this.loop.percentile(99) / 1e6 - LOOP_SAMPLE_MS) : 0;
    this.loopDelayMs = SMOOTHING * loop + (1 - SMOOTHING) * this.loopDelayMs;
    this.lastCpu = process.cpuUsage();
    this.lastAt = now;
    this.report = this.compute();
    this.loop.reset();
    return this.report;
  }

  current(): LoadReport {
    return this.report;
  }

  private compute(): LoadReport {
    const mem = process.memoryUsage();
    const values: Record<LoadDimension, number> = {
      cpu: this.cpuShare,
      heap: mem.heapUsed,
      rss: mem.rss,
      connections: this.sample.connections(),
      eventLoopDelay: this.loopDelayMs,
      outboundBuffered: this.sample.outboundBuffered(),
    };
    const dimensions = {} as Record<LoadDimension, number>;
    let binding: LoadDimension = 'cpu';
    let max = -1;
    for (const k of Object.keys(values) as LoadDimension[]) {
      const ratio = values[k] / this.targets[k] + (this.inflate[k] ?? 0);
      dimensions[k] = Math.round(ratio * 1000) / 1000;
      if (ratio > max) {
        max = ratio;
        binding = k;
      }
    }
    return { loadFactor: Math.round(max * 1000) / 1000, binding, dimensions, values };
  }
}
