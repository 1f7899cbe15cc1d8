/**
 * The small slice of Sails.js 1.x this reference app touches, typed by hand
 * (Sails ships no TypeScript types). Sails itself is CommonJS, so it is loaded
 * with `createRequire` (see `loadSailsModule`).
 */
import { createRequire } from 'node:module';

/** `req` as Sails hands it to policies and actions (HTTP or socket virtual request). */
export interface SailsRequest {
  method: string;
  url: string;
  path: string;
  isSocket?: boolean;
  headers: Record<string, string | string[] | undefined>;
  params: Record<string, unknown>;
  options?: { action?: string; [key: string]: unknown };
  /** Set by the auth policy once the access token is verified. */
  accessClaims?: { userId: string; teamId: string; exp: number };
  get(name: string): string | undefined;
}

/** `res` as Sails hands it to policies and actions. */
export interface SailsResponse {
  status(code: number): SailsResponse;
  json(body: unknown): void;
  send(body?: unknown): void;
  set(name: string, value: string): SailsResponse;
  ok(data?: unknown): void;
  notFound(data?: unknown): void;
  serverError(data?: unknown): void;
}

export type SailsNext = (err?: unknown) => void;
export type SailsPolicy = (req: SailsRequest, res: SailsResponse, next: SailsNext) => void;
export type SailsAction = (req: SailsRequest, res: SailsResponse) => void;

/** What a hook definition function returns (https://sailsjs.com/documentation/concepts/extending-sails/hooks/hook-specification). */
export interface SailsHookDefinition {
  defaults?: Record<string, unknown>;
  initialize?(done: (err?: Error) => void): void;
  routes?: {
    before?: Record<string, (req: SailsRequest, res: SailsResponse, next: SailsNext) => void>;
    after?: Record<string, (req: SailsRequest, res: SailsResponse, next: SailsNext) => void>;
  };
}

/** A model once the ORM and pubsub hooks have augmented it. */
export interface SailsPubsubModel {
  identity: string;
  primaryKey: string;
  _publishRPS(records: unknown, data: Record<string, unknown>, req?: unknown): void;
  _publishCreateSingle(values: Record<string, unknown>, req?: unknown, options?: unknown): void;
  [key: string]: unknown;
}

/** A Sails application instance (`new Sails()`). */
export interface SailsApp {
  lift(config: Record<string, unknown>, cb: (err?: Error | null) => void): void;
  load(config: Record<string, unknown>, cb: (err?: Error | null) => void): void;
  initialize(cb: (err?: Error | null) => void): void;
  emit(event: string, ...args: unknown[]): boolean;
  lower(options: { delay?: number; hardShutdown?: boolean }, cb: (err?: Error | null) => void): void;
  on(event: string, fn: (...args: unknown[]) => void): void;
  after(events: string | string[], fn: () => void): void;
  log: Record<'error' | 'warn' | 'info' | 'debug' | 'verbose' | 'silly', (...args: unknown[]) => void>;
  models: Record<string, SailsPubsubModel>;
  config: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- Sails' config is an open bag
  hooks: { http?: { server?: import('node:http').Server }; [name: string]: unknown };
  io?: { engine: { opts: Record<string, unknown>; clientsCount: number } };
  _processListeners?: Record<string, (...args: unknown[]) => void>;
}

export type SailsHookFactory = (sails: SailsApp) => SailsHookDefinition;

/** Node's CommonJS `require`, anchored at this folder (for Sails, its hooks and adapters). */
export const requireCjs = createRequire(import.meta.url);

/** The Sails constructor: each `new SailsConstructor()` is an independent app. */
export function loadSailsModule(): { new (): SailsApp } {
  return (requireCjs('sails') as { constructor: { new (): SailsApp } }).constructor;
}
