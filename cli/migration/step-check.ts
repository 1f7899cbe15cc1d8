/**
 * StepCheck: the automated verification behind a playbook step. One file per
 * check type under `checks/`, all implementing this interface; the registry is
 * `checks/index.ts`. A check talks to the live stack only through the public
 * contract (private API, native protocol, Sync over HTTP, shim admin API).
 */
import { expandAdminUrls, type ExpandedAdminUrl, type ResolveHost } from '../rollout/shim-admin-client.ts';
import type { SquadManifest } from './manifest.ts';
import type { PlaybookStep } from './playbook.ts';
import type { CheckRecord } from './state-store.ts';

export const CHECK_TYPES = [
  'inventory',
  'register-service',
  'dual-publish',
  'subscribe-headers',
  'route-parity',
  'canary',
  'cutover',
  'decommission',
] as const;
export type CheckType = (typeof CHECK_TYPES)[number];

/** Where the live stack answers, and the credentials checks use. */
export interface StackEndpoints {
  privateUrl: string;
  gatewayUrl: string;
  syncUrl: string;
  /** The shim admin API (the first replica's, when there are several). */
  adminUrl: string;
  /** Every shim replica's admin API (`--admin-url` repeated; `dns+http://` names allowed); unset = just `adminUrl`. */
  adminUrls?: string[];
  /** How `dns+http://` admin URLs are looked up (default: the DNS servers). */
  resolveHost?: ResolveHost;
  serviceToken: string;
  tokenSecret: string;
}

export interface CheckContext {
  squad: SquadManifest;
  step: PlaybookStep;
  /** The playbook's parameters merged with the manifest's `stepOptions` for this step. */
  params: Record<string, unknown>;
  stack: StackEndpoints;
  /** The previous recorded result of this check, if any (for checks that accumulate, like canary). */
  previous?: CheckRecord;
  /** Progress lines while the check runs (the spinner shows the latest). */
  progress(line: string): void;
}

export interface CheckOutcome {
  ok: boolean;
  /** One line: what was verified, or what failed. */
  summary: string;
  /** Detail lines (each route compared, each frame seen...). */
  output: string[];
  /** Values a later run of the same check may use (e.g. since when the canary is healthy). */
  data?: Record<string, unknown>;
}

export interface StepCheck {
  type: CheckType;
  /** Manual checks are never run: a person records them with `migrate complete`. */
  manual: boolean;
  /** One line about what the check verifies (shown in `show` and the docs). */
  describes: string;
  /** JSON schema of the parameters a playbook step (or a manifest's stepOptions) may set. */
  paramsSchema: object;
  /** Defaults of those parameters. */
  defaults: Record<string, unknown>;
  run(ctx: CheckContext): Promise<CheckOutcome>;
}

/** Parameters every check accepts. */
export const commonParams = {
  timeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, expected: 'a timeout in milliseconds (100..600000)' },
} as const;

/** Builds a strict params schema from a properties map. */
export function paramsSchema(properties: Record<string, object>): object {
  return { type: 'object', additionalProperties: false, properties: { ...commonParams, ...properties } };
}

/** Every shim replica's admin API URL now (`dns+http://` names looked up; a name that gave none carries `error`). */
export function shimAdminUrls(stack: StackEndpoints): Promise<ExpandedAdminUrl[]> {
  return expandAdminUrls(stack.adminUrls?.length ? stack.adminUrls : [stack.adminUrl], stack.resolveHost);
}
