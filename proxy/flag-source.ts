/**
 * Where routing decisions come from: the LaunchDarkly server SDK (v9), fed
 * either by the local flags file (default) or by live LaunchDarkly (`LD_SDK_KEY`).
 * Either way the SDK's own evaluator does the bucketing, so a percentage in the
 * flags file behaves exactly as the same flag in LaunchDarkly.
 *
 * ## Local mode, and why it does not use FileDataSource's auto-update
 * The SDK's `FileDataSource` with `autoUpdate` uses `fs.watch()` on the file
 * path, which follows the inode: after one atomic write (temp file + rename —
 * what `bifrost rollout set` and `PUT /api/rollout` do) the watcher sits on the
 * old, unlinked inode and never sees another change. So this module reads the
 * file itself and feeds it into the SDK through the public `TestData`
 * integration (`usePreconfiguredFlag`), which upserts full flag JSON into the
 * client's feature store exactly like a data source does:
 * - it watches the *directory* (rename-proof) for events on the file's name and
 *   also stats the file on a short interval (a safety net where `fs.watch` is
 *   unreliable: network and container volumes), reloading on a change of
 *   inode, size or mtime;
 * - it validates before applying, so a garbage write never reaches the SDK: the
 *   last good flags stay in force, the error is logged and counted;
 * - one LDClient lives for the whole process (no client rebuilds, no gap in
 *   which evaluations would fail).
 * The file keeps FileDataSource's format (`flags`, `flagValues`, `segments`),
 * so a stock SDK can be pointed at it too. Events are not sent (`sendEvents:
 * false`); the client is never `offline` (offline clients ignore data sources).
 *
 * ## Live mode
 * `init(LD_SDK_KEY)` with the SDK's default streaming data source.
 *
 * ## Status (is the flag really in force?)
 * `status()` says whether the SDK ever loaded flags: `initializing` (not yet:
 * still trying, e.g. LaunchDarkly unreachable — the SDK retries on its own),
 * `ready`, or `failed` (the SDK gave up for good: an unrecoverable answer such
 * as 401 for an invalid `LD_SDK_KEY`; it makes no further request, only a
 * restart with a working key recovers; a failure after flags were loaded, e.g.
 * a revoked key, leaves `ready` — the SDK keeps the last flags — with the
 * reason in `error`, since no change arrives any more). The SDK reports a failure by rejecting
 * `waitForInitialization()` and emitting `failed`; success by `ready` (and
 * `initialized()`). While not ready every decision is "sync", so a shim with a
 * bad key would otherwise look healthy while the rollout is frozen at 0%: the
 * state, with the reason, is logged once as an error, shown by
 * `GET /api/rollout` and `/readyz`, and counted (see proxy/shim.ts).
 *
 * ## Evaluation
 * `decide(userId, teamId)` evaluates `bifrost-sync-migration` for the
 * multi-context `{kind: 'multi', user: {key}, team: {key}}`. Not ready, any SDK
 * error, or a value other than "sync"/"bifrost" → `"sync"`, with the reason.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { init, type LDClient, type LDLogger, type LDEvaluationDetail } from '@launchdarkly/node-server-sdk';
import { TestData } from '@launchdarkly/node-server-sdk/integrations';
import type { Logger } from 'pino';
import { FLAG_KEY, ensureFlagsFile, parseFlagsFile, rolloutOfFlag, type FlagJson, type FlagsFileJson, type Route, type RolloutState } from './flags-file.ts';

/** Why a decision is what it is. `flag` = a normal evaluation; anything else fell back to sync. */
export type DecisionReason = 'flag' | 'not_ready' | 'error' | 'invalid_value';

export interface RouteDecision {
  route: Route;
  reason: DecisionReason;
  /** The SDK's error kind or the unexpected value, when reason is not `flag`. */
  detail?: string;
}

/** Whether the SDK has loaded flags: see "Status" above. */
export type FlagSourceState = 'initializing' | 'ready' | 'failed';

export interface FlagSourceStatus {
  state: FlagSourceState;
  /** Why it is not ready (the SDK's error, or its last complaint while still trying). */
  error?: string;
  /** ms epoch of the last state change. */
  since: number;
}

export interface FlagSourceEvents {
  /** The state changed (`initializing` → `ready` | `failed`), or `start` gave up waiting (state still `initializing`, with `error`). */
  onStatus?: (status: FlagSourceStatus, why: 'ready' | 'failed' | 'start_timeout') => void;
  /** A flags file change was applied (local mode). */
  onReload?: (rollout: RolloutState | undefined) => void;
  /** A flags file change was refused (garbage); the last good flags stay. */
  onReloadError?: (err: Error) => void;
}

export interface FlagSource {
  readonly mode: 'file' | 'launchdarkly';
  /** Resolves once the SDK is initialised or `timeoutMs` has passed (then decisions are "sync" until it is). */
  start(timeoutMs?: number): Promise<void>;
  /** Evaluates the migration flag for a user of a team. Never throws. */
  decide(userId: string, teamId: string): Promise<RouteDecision>;
  /** Calls `listener` whenever the migration flag changes. Returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
  /** The rollout as the flags file last applied it (local mode), else undefined. */
  rollout(): RolloutState | undefined;
  /** Whether flags were ever loaded, and why not. */
  status(): FlagSourceStatus;
  /** Counters for /api/rollout and tests. */
  stats(): { reloads: number; reloadErrors: number; lastReloadError?: string };
  close(): Promise<void>;
}

/**
 * Adapts pino to the SDK's logger interface (the SDK's info chatter goes to debug).
 * `onProblem` receives every warning and error line (the SDK says why it cannot connect only there).
 */
export function ldLoggerFrom(log: Logger, onProblem?: (message: string) => void): LDLogger {
  const child = log.child({ component: 'launchdarkly' });
  const problem = (level: 'error' | 'warn', args: unknown[]): void => {
    const message = args.map(String).join(' ');
    child[level](message);
    // Not reasons: the SDK's own complaints about being asked before it is ready, and its timeout line.
    if (!/^Variation called before|waitForInitialization/.test(message)) onProblem?.(message);
  };
  return {
    error: (...args: unknown[]) => problem('error', args),
    warn: (...args: unknown[]) => problem('warn', args),
    info: (...args: unknown[]) => child.debug(args.map(String).join(' ')),
    debug: (...args: unknown[]) => child.debug(args.map(String).join(' ')),
  };
}

/** The evaluation context: both kinds, so a rollout can bucket by user or by team. */
export function migrationContext(userId: string, teamId: string) {
  // A user without a team is bucketed as a team of one (an absent team context
  // would put them in bucket 0, i.e. first onto Bifrost under team bucketing).
  return { kind: 'multi' as const, user: { key: userId }, team: { key: teamId || `no-team:${userId}` } };
}

abstract class SdkFlagSource implements FlagSource {
  abstract readonly mode: 'file' | 'launchdarkly';
  protected client: LDClient | undefined;
  private readonly listeners = new Set<() => void>();
  private loadState: FlagSourceStatus = { state: 'initializing', since: Date.now() };
  /** The SDK's last warning or error line (why it cannot connect, while it retries). */
  protected lastSdkProblem: string | undefined;

  /** The SDK's logger: into ours, remembering its last complaint (shown while flags have not loaded). */
  protected sdkLogger() {
    return ldLoggerFrom(this.log, (m) => (this.lastSdkProblem = m));
  }

  constructor(
    protected readonly log: Logger,
    private readonly statusEvents: FlagSourceEvents | undefined,
  ) {}

  abstract start(timeoutMs?: number): Promise<void>;

  /** What the shim is told about its flags, in one place: the state, one log line, the event. */
  protected setStatus(state: FlagSourceState, error?: string): void {
    if (this.loadState.state === state) return;
    // `failed` is final for this client (the SDK stops trying); a late `ready` cannot follow it.
    if (this.loadState.state === 'failed') return;
    if (state === 'failed' && this.loadState.state === 'ready') {
      // Flags were loaded, then the SDK gave up (e.g. the key was revoked: 401 on reconnect). The SDK
      // keeps evaluating the last flags it had, so decisions still follow the flag — but no change
      // reaches this shim any more. Still ready, with the reason; said once, loudly, and counted.
      if (this.loadState.error) return;
      this.loadState = { ...this.loadState, error: `flag updates stopped: ${error}` };
      this.log.error(
        { flags: this.mode, reason: error },
        `flag updates stopped (${this.mode === 'launchdarkly' ? 'LaunchDarkly' : 'flags file'}): ${error}; the last flags stay in force and no change reaches this shim until it is restarted with a working configuration`,
      );
      this.statusEvents?.onStatus?.(this.status(), 'failed');
      return;
    }
    this.loadState = { state, error, since: Date.now() };
    if (state === 'ready') {
      this.log.info({ flags: this.mode }, 'flags loaded: users are routed by the flag');
    } else if (state === 'failed') {
      this.log.error(
        { flags: this.mode, reason: error },
        `flags failed to load (${this.mode === 'launchdarkly' ? 'LaunchDarkly' : 'flags file'}): ${error}; the SDK has given up, every user goes to Sync until the shim is restarted with a working configuration (LD_SDK_KEY)`,
      );
    }
    this.statusEvents?.onStatus?.(this.status(), state === 'ready' ? 'ready' : 'failed');
  }

  /** `start` waited `timeoutMs` in vain: still `initializing` (the SDK keeps trying), now with the reason. */
  protected startTimedOut(timeoutMs: number, err: unknown): void {
    if (this.loadState.state !== 'initializing') return;
    const sdkSays = this.lastSdkProblem ? `; LaunchDarkly SDK: ${this.lastSdkProblem}` : '';
    const error = `not loaded within ${timeoutMs} ms (${(err as Error)?.message ?? String(err)})${sdkSays}`;
    this.loadState = { ...this.loadState, error };
    this.log.error({ flags: this.mode, reason: error }, `flags not loaded yet: ${error}; every user goes to Sync until they load (the SDK keeps retrying)`);
    this.statusEvents?.onStatus?.(this.status(), 'start_timeout');
  }

  /** Waits for the SDK's first load; a rejection is a failure (e.g. 401), a timeout leaves it initializing. */
  protected async waitForFlags(client: LDClient, timeoutMs: number): Promise<void> {
    try {
      await client.waitForInitialization({ timeout: timeoutMs / 1000 });
      this.setStatus('ready');
    } catch (err) {
      if (client.initialized()) this.setStatus('ready');
      else if ((err as Error)?.name === 'LaunchDarklyTimeoutError') this.startTimedOut(timeoutMs, err);
      else this.setStatus('failed', (err as Error)?.message ?? String(err));
    }
  }

  status(): FlagSourceStatus {
    return { ...this.loadState };
  }

  protected attach(client: LDClient): void {
    this.client = client;
    client.on('ready', () => this.setStatus('ready'));
    client.on('failed', (err: unknown) => this.setStatus('failed', (err as Error)?.message ?? String(err)));
    client.on(`update:${FLAG_KEY}`, () => {
      for (const l of this.listeners) {
        try {
          l();
        } catch (err) {
          this.log.error({ err }, 'flag change listener failed');
        }
      }
    });
    client.on('error', (err: unknown) => {
      this.lastSdkProblem = (err as Error)?.message ?? String(err);
      this.log.warn({ err: this.lastSdkProblem }, 'LaunchDarkly client error');
    });
  }

  async decide(userId: string, teamId: string): Promise<RouteDecision> {
    const client = this.client;
    if (!client) return { route: 'sync', reason: 'not_ready', detail: 'CLIENT_NOT_READY' };
    let detail: LDEvaluationDetail;
    try {
      detail = await client.variationDetail(FLAG_KEY, migrationContext(userId, teamId), 'sync');
    } catch (err) {
      return { route: 'sync', reason: 'error', detail: (err as Error).message };
    }
    if (detail.reason?.kind === 'ERROR') {
      const kind = String(detail.reason.errorKind ?? 'EXCEPTION');
      return { route: 'sync', reason: kind === 'CLIENT_NOT_READY' ? 'not_ready' : 'error', detail: kind };
    }
    if (detail.value === 'sync' || detail.value === 'bifrost') return { route: detail.value, reason: 'flag' };
    return { route: 'sync', reason: 'invalid_value', detail: JSON.stringify(detail.value) };
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  rollout(): RolloutState | undefined {
    return undefined;
  }

  stats(): { reloads: number; reloadErrors: number; lastReloadError?: string } {
    return { reloads: 0, reloadErrors: 0 };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.client?.close();
    this.client = undefined;
  }
}

export interface FileFlagSourceOptions {
  file: string;
  log: Logger;
  /** Safety-net stat interval, ms (default 500). */
  pollIntervalMs?: number;
  /** Delay between a watch event and the read, so bursts coalesce (default 25 ms). */
  debounceMs?: number;
  events?: FlagSourceEvents;
}

/** Local mode: the flags file, re-read on every change (atomic renames included), fed through TestData. */
export class FileFlagSource extends SdkFlagSource {
  readonly mode = 'file' as const;
  private readonly td = new TestData();
  private readonly applied = new Map<string, string>();
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastStat = '';
  private lastText: string | undefined;
  private current: RolloutState | undefined;
  private reloading: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private counters = { reloads: 0, reloadErrors: 0, lastReloadError: undefined as string | undefined };

  constructor(private readonly opts: FileFlagSourceOptions) {
    super(opts.log, opts.events);
  }

  async start(timeoutMs = 5000): Promise<void> {
    const created = await ensureFlagsFile(this.opts.file);
    if (created) this.log.info({ file: this.opts.file }, 'created the flags file with the migration flag at 0%');
    await this.reload();
    const client = init('bifrost-local-flags-file', {
      updateProcessor: this.td.getFactory(),
      sendEvents: false,
      diagnosticOptOut: true,
      logger: this.sdkLogger(),
    });
    this.attach(client);
    await this.waitForFlags(client, timeoutMs);
    const dir = dirname(this.opts.file);
    const name = basename(this.opts.file);
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, filename) => {
        if (!filename || filename.toString() === name) this.schedule();
      });
      this.watcher.on('error', (err) => this.log.warn({ err }, 'flags directory watch failed; relying on polling'));
    } catch (err) {
      this.log.warn({ err, dir }, 'cannot watch the flags directory; relying on polling');
    }
    this.poller = setInterval(() => void this.checkStat(), this.opts.pollIntervalMs ?? 500);
    this.poller.unref();
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.reload().catch((err: unknown) => this.refuse(err instanceof Error ? err : new Error(String(err))));
    }, this.opts.debounceMs ?? 25);
    this.debounce.unref();
  }

  private async checkStat(): Promise<void> {
    try {
      const s = await stat(this.opts.file);
      const sig = `${s.ino}:${s.size}:${s.mtimeMs}`;
      if (sig !== this.lastStat) this.schedule();
    } catch {
      // A missing file keeps the last good flags; the next write is picked up.
    }
  }

  /** Reads, validates and applies the file. Serialised: a change during a reload triggers one more. */
  reload(): Promise<void> {
    if (this.reloading) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.again = false;
        await this.reloadOnce();
      } while (this.again && !this.closed);
    })().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async reloadOnce(): Promise<void> {
    let text: string;
    try {
      const s = await stat(this.opts.file);
      this.lastStat = `${s.ino}:${s.size}:${s.mtimeMs}`;
      text = await readFile(this.opts.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.refuse(err as Error);
      return;
    }
    if (text === this.lastText) return;
    if (text.trim() === '') {
      // An in-place write truncates first: wait for the content (the next change event or poll)
      // rather than refusing a file that is only half written. The last good flags stay.
      this.log.debug({ file: this.opts.file }, 'flags file is empty (being written?); keeping the last good flags');
      return;
    }
    let parsed: FlagsFileJson;
    try {
      parsed = parseFlagsFile(text);
    } catch (err) {
      this.lastText = text;
      this.refuse(err as Error);
      return;
    }
    this.lastText = text;
    try {
      await this.apply(parsed);
    } catch (err) {
      // Validation should have caught it; whatever the SDK still refuses is refused the same way.
      this.refuse(new Error(`the LaunchDarkly SDK refused the flags: ${(err as Error).message}`));
      return;
    }
    this.counters.reloads += 1;
    const flag = parsed.flags?.[FLAG_KEY];
    this.current = flag ? rolloutOfFlag(flag) : undefined;
    if (!flag) this.log.warn({ file: this.opts.file }, `the flags file has no "${FLAG_KEY}" flag: every decision is "sync"`);
    this.log.info({ file: this.opts.file, rollout: this.current }, 'flags file applied');
    this.opts.events?.onReload?.(this.current);
  }

  private refuse(err: Error): void {
    this.counters.reloadErrors += 1;
    this.counters.lastReloadError = err.message;
    this.log.error({ file: this.opts.file, err: err.message }, 'flags file refused; the last good flags stay in force');
    this.opts.events?.onReloadError?.(err);
  }

  /**
   * Feeds a validated file into the SDK. First a dry run through a scratch
   * TestData with no client attached (the SDK's own processing, no store
   * touched): if the SDK throws on anything, nothing of the file is applied and
   * the caller refuses it. `applied` records a flag only once the SDK took it.
   */
  private async apply(parsed: FlagsFileJson): Promise<void> {
    const next = new Map<string, FlagJson>();
    for (const [key, flag] of Object.entries(parsed.flags ?? {})) next.set(key, { ...flag, key });
    for (const [key, value] of Object.entries(parsed.flagValues ?? {})) {
      // FileDataSource's `flagValues` shorthand: a flag that always serves the value.
      next.set(key, { key, version: 1, on: true, fallthrough: { variation: 0 }, variations: [value] });
    }
    const flags: { key: string; json: string; config: Record<string, unknown> }[] = [];
    for (const [key, flag] of next) {
      const json = JSON.stringify(flag);
      if (this.applied.get(key) === json) continue;
      flags.push({ key, json, config: { ...flag, version: typeof flag.version === 'number' ? flag.version : 1 } });
    }
    const segments = Object.entries(parsed.segments ?? {}).map(([key, segment]) => ({ ...(segment as object), key }));
    const dryRun = new TestData();
    for (const f of flags) await dryRun.usePreconfiguredFlag(f.config);
    for (const segment of segments) await dryRun.usePreconfiguredSegment(segment);

    const ops: Promise<unknown>[] = [];
    for (const f of flags) {
      ops.push(this.td.usePreconfiguredFlag(f.config).then(() => this.applied.set(f.key, f.json)));
    }
    for (const key of [...this.applied.keys()]) {
      if (next.has(key)) continue;
      // Removed from the file: delete it in the SDK's store (evaluates as FLAG_NOT_FOUND → "sync").
      ops.push(this.td.usePreconfiguredFlag({ key, version: 1, deleted: true }).then(() => this.applied.delete(key)));
    }
    for (const segment of segments) ops.push(this.td.usePreconfiguredSegment(segment));
    await Promise.all(ops);
  }

  override rollout(): RolloutState | undefined {
    return this.current;
  }

  override stats(): { reloads: number; reloadErrors: number; lastReloadError?: string } {
    return { ...this.counters };
  }

  override async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    if (this.poller) clearInterval(this.poller);
    if (this.debounce) clearTimeout(this.debounce);
    await this.reloading?.catch(() => undefined);
    await super.close();
  }
}

export interface LiveFlagSourceOptions {
  sdkKey: string;
  log: Logger;
  /** Extra SDK options (endpoints, for a relay proxy or tests). */
  sdkOptions?: Record<string, unknown>;
  events?: FlagSourceEvents;
}

/** Live mode: LaunchDarkly itself, through the SDK's streaming connection. */
export class LiveFlagSource extends SdkFlagSource {
  readonly mode = 'launchdarkly' as const;

  constructor(private readonly opts: LiveFlagSourceOptions) {
    super(opts.log, opts.events);
  }

  async start(timeoutMs = 5000): Promise<void> {
    const client = init(this.opts.sdkKey, { logger: this.sdkLogger(), ...(this.opts.sdkOptions ?? {}) });
    this.attach(client);
    await this.waitForFlags(client, timeoutMs);
  }
}
