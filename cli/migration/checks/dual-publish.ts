/**
 * `dual-publish`: a change made on Sync reaches Bifrost's subscribers. The
 * check creates a probe record through Sync, reads it through Bifrost with a
 * `request` frame (the service's `x-bifrost-subscribe` grants the topic),
 * subscribes to the topic, updates the record through Sync directly, and
 * waits for the event on the native socket (`eventTimeoutMs`).
 */
import { NativeSession } from '../native-session.ts';
import { brief, resolveRequest } from '../http-call.ts';
import { paramsSchema, type StepCheck } from '../step-check.ts';
import { callSync, describeFrame, requestThroughBifrost, withProbeRecord } from './probe-record.ts';

export const dualPublishCheck: StepCheck = {
  type: 'dual-publish',
  manual: false,
  describes: 'an update made through Sync arrives as an event on a Bifrost socket subscribed to the topic',
  paramsSchema: paramsSchema({
    eventTimeoutMs: { type: 'integer', minimum: 100, maximum: 120_000, expected: 'how long to wait for the event, in ms' },
  }),
  defaults: { timeoutMs: 5000, eventTimeoutMs: 5000 },
  async run(ctx) {
    const timeoutMs = ctx.params.timeoutMs as number;
    const eventTimeoutMs = ctx.params.eventTimeoutMs as number;
    const output: string[] = [];
    return withProbeRecord(ctx, timeoutMs, async ({ probe, vars, token }) => {
      if (vars.id) output.push(`probe record ${vars.id}`);
      const topic = resolveRequest({ method: 'GET', path: probe.topic }, vars).path;
      ctx.progress(`opening ${ctx.stack.gatewayUrl}/ws`);
      const session = await NativeSession.open(ctx.stack.gatewayUrl, token, timeoutMs);
      try {
        const read = resolveRequest(probe.read, vars);
        ctx.progress(`reading ${read.path} through Bifrost`);
        const { frame, service } = await requestThroughBifrost(session, ctx, read, timeoutMs);
        output.push(`read ${read.method} ${read.path} via service ${service}: ${describeFrame(frame)}`);
        if (frame.op !== 'response' || (frame.status ?? 500) >= 300) {
          return { ok: false, summary: `reading the probe record through Bifrost failed: ${describeFrame(frame)}`, output };
        }
        const sub = await session.send({ op: 'subscribe', topic }, timeoutMs);
        output.push(`subscribe ${topic}: ${describeFrame(sub)}`);
        if (sub.op !== 'ok') return { ok: false, summary: `subscribing to ${topic} was refused: ${describeFrame(sub)}`, output };
        const already = session.events.length;
        const update = resolveRequest(probe.update, vars);
        ctx.progress(`updating through Sync: ${update.method} ${update.path}`);
        const started = Date.now();
        const res = await callSync(ctx.stack, update, token, timeoutMs);
        output.push(`update ${update.method} ${update.path} on Sync: ${res.status}`);
        if (res.status >= 300) return { ok: false, summary: `the probe update through Sync answered ${res.status} ${brief(res.body)}`, output };
        ctx.progress(`waiting up to ${eventTimeoutMs} ms for "${probe.event}" on ${topic}`);
        const event = await session.waitForEvent((e) => session.events.indexOf(e) >= already && e.topic === topic && e.event === probe.event, eventTimeoutMs);
        if (!event) {
          const seen = session.events.slice(already).map((e) => `${e.event}@${e.topic}`);
          output.push(`events seen: ${seen.length ? seen.join(', ') : 'none'}`);
          return {
            ok: false,
            summary: `no "${probe.event}" event on ${topic} within ${eventTimeoutMs} ms after the update through Sync: is the dual-publish bridge on?`,
            output,
          };
        }
        const ms = Date.now() - started;
        output.push(`event "${event.event}" on ${event.topic} at offset ${event.offset ?? '?'} after ${ms} ms: ${brief(event.data, 120)}`);
        return { ok: true, summary: `Sync's update reached Bifrost as "${event.event}" on ${topic} in ${ms} ms`, output, data: { latencyMs: ms } };
      } finally {
        await session.close();
      }
    });
  },
};
