/**
 * The probe record shared by the live checks: created through Sync (so it is
 * a real record of the feature), used, then deleted. Also the access token of
 * the manifest's probe user and reads through Bifrost's native protocol.
 */
import { randomBytes } from 'node:crypto';
import { signAccessToken } from '../../../gateway/token.ts';
import { brief, httpCall, joinUrl, resolveRequest, type HttpResult, type TemplateVars } from '../http-call.ts';
import type { ProbeSpec, RequestSpec, SquadManifest } from '../manifest.ts';
import type { NativeSession, ResponseFrame } from '../native-session.ts';
import type { CheckContext, StackEndpoints } from '../step-check.ts';

/** A short-lived access token for the squad's probe user. */
export function probeToken(stack: StackEndpoints, squad: SquadManifest): Promise<string> {
  return signAccessToken(stack.tokenSecret, { userId: squad.probeUser.id, teamId: squad.probeUser.team }, '10m');
}

export function newVars(): TemplateVars {
  return { nonce: randomBytes(4).toString('hex'), now: new Date().toISOString() };
}

/** Calls Sync directly over HTTP, as a client still on Sync would. */
export function callSync(stack: StackEndpoints, req: RequestSpec, token: string, timeoutMs: number): Promise<HttpResult> {
  return httpCall(joinUrl(stack.syncUrl, req.path), {
    method: req.method,
    ...(req.query ? { query: req.query } : {}),
    body: req.body,
    headers: { 'x-access-token': token },
    timeoutMs,
  });
}

function idOf(body: unknown): string | undefined {
  const b = body as { id?: unknown; data?: { id?: unknown } } | null;
  const id = b?.id ?? b?.data?.id;
  return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined;
}

export interface ProbeRecord {
  probe: ProbeSpec;
  vars: TemplateVars;
  token: string;
}

/**
 * Creates the probe record (or uses the manifest's fixed id), runs `fn`, then
 * deletes the record it created whatever happens (never a fixed `id`: the
 * check did not create it). Throws with a clear message when creation fails.
 */
export async function withProbeRecord<T>(ctx: CheckContext, timeoutMs: number, fn: (rec: ProbeRecord) => Promise<T>): Promise<T> {
  const probe = ctx.squad.probe;
  if (!probe) throw new Error(`manifest ${ctx.squad.file} has no probe: add one (see docs/migrating-a-squad.md)`);
  const token = await probeToken(ctx.stack, ctx.squad);
  const vars = newVars();
  const created = probe.create ? await createProbeRecord(ctx, probe, vars, token, timeoutMs) : undefined;
  if (created) vars.id = created;
  else if (probe.id) vars.id = probe.id;
  try {
    return await fn({ probe, vars, token });
  } finally {
    // Only a record this run created is deleted: a fixed `id` is someone's real record.
    if (created) await deleteProbeRecord(ctx, probe, { ...vars, id: created }, token, timeoutMs);
  }
}

/** Creates a probe record through Sync (`probe.create`); returns its id, throws with a clear message when it fails. */
export async function createProbeRecord(ctx: CheckContext, probe: ProbeSpec, vars: TemplateVars, token: string, timeoutMs: number): Promise<string> {
  if (!probe.create) throw new Error(`manifest ${ctx.squad.file} has no probe.create: the check needs to create its own probe record`);
  const req = resolveRequest(probe.create, vars);
  ctx.progress(`creating a probe record: ${req.method} ${req.path} on Sync`);
  const res = await callSync(ctx.stack, req, token, timeoutMs);
  const id = idOf(res.body);
  if (res.status >= 300 || !id) throw new Error(`creating the probe record through Sync (${req.method} ${req.path}) answered ${res.status} ${brief(res.body)}: expected 2xx with an id`);
  return id;
}

/** Deletes a probe record this run created (`probe.cleanup` with `{id}` = it), ignoring failures (it may be gone already). */
export async function deleteProbeRecord(ctx: CheckContext, probe: ProbeSpec, vars: TemplateVars, token: string, timeoutMs: number): Promise<void> {
  if (!probe.cleanup || !vars.id) return;
  await callSync(ctx.stack, resolveRequest(probe.cleanup, vars), token, timeoutMs).catch(() => undefined);
}

/**
 * Sends a `request` frame for `req` to the squad's service (the probe's, or
 * the first); if Bifrost does not know that service yet, to `sync`.
 */
export async function requestThroughBifrost(
  session: NativeSession,
  ctx: CheckContext,
  req: RequestSpec,
  timeoutMs: number,
): Promise<{ frame: ResponseFrame; service: string }> {
  const own = ctx.squad.probe?.service ?? ctx.squad.services[0]!.name;
  const frameFor = (service: string) => ({ op: 'request', service, method: req.method, path: req.path, query: req.query ?? {}, body: req.body ?? null });
  let frame = await session.send(frameFor(own), timeoutMs);
  if (frame.op === 'error' && frame.code === 'invalidServiceError') {
    frame = await session.send(frameFor('sync'), timeoutMs);
    return { frame, service: 'sync' };
  }
  return { frame, service: own };
}

/** A one-line description of a response frame. */
export function describeFrame(f: ResponseFrame): string {
  if (f.op === 'error') return `error ${f.code ?? ''}: ${f.message ?? ''}`.trim();
  if (f.op === 'response') return `response ${f.status} ${brief(f.body, 80)}`;
  return `${f.op} ${brief(f, 80)}`;
}
