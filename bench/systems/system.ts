/**
 * What a system under test provides to the fanout and idle scenarios. One file
 * per system (`bifrost.ts`, `socketio.ts`, `ws.ts`) implements it; adding a
 * system is adding a file and listing it in `bench/systems/index.ts`.
 */
import type { ConnectGroup } from '../harness/client-generator.ts';
import type { PublisherSetup } from '../harness/publisher.ts';

export interface StartContext {
  redisUrl: string;
  nodes: number;
  /** Extra node flags for the server processes (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /** Run id, for key prefixes. */
  runId: string;
}

export interface RunningSystem {
  /** Server processes whose CPU is the system's CPU. */
  pids(): number[];
  /** Topic names, as this system calls them. */
  topics(n: number): string[];
  /** Subscriber connections split evenly over the nodes. */
  subscriberGroups(count: number, topics: string[]): ConnectGroup[];
  /** Idle connections (no subscription) on the first node. */
  idleGroups(count: number): ConnectGroup[];
  /** How this system's users publish. */
  publisher(payloadBytes: number): PublisherSetup;
  /** Heap used per node, bytes (as the process reports it). */
  heapUsed(): Promise<number[]>;
  stop(): Promise<void>;
}

export interface BenchSystem {
  /** Short id used in results and `--systems`. */
  id: string;
  /** What it is, for the tables. */
  label: string;
  start(ctx: StartContext): Promise<RunningSystem>;
}
