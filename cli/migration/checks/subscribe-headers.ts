/**
 * `subscribe-headers`: a single-record read through Bifrost subscribes the
 * reading socket to the record's topic. The check reads the probe record with
 * a `request` frame (no explicit subscribe), publishes a marker event on the
 * topic through the private API, and expects it on the socket.
 */
import { NativeSession } from '../native-session.ts';
import { brief, httpCall, joinUrl, resolveRequest } from '../http-call.ts';
import { paramsSchema, type StepCheck } from '../step-check.ts';
import { callSync, describeFrame, requestThroughBifrost, withProbeRecord } from './probe-record.ts';

export const MARKER_EVENT = 'bifrost-probe';

export const subscribeHeadersCheck: StepCheck = {
  type: 'subscribe-headers',
  manual: false,
  describes: "a single-record read through Bifrost subscribes the socket to the record's topic",
  paramsSchema: paramsSchema({
    eventTimeoutMs: { type: 'integer', minimum: 100, maximum: 120_000, expected: 'how long to wait for the marker event, in ms' },
  }),
  defaults: { timeoutMs: 5000, eventTimeoutMs: 3000 },
  async run(ctx) {
    const timeoutMs = ctx.params.timeoutMs as number;
    const eventTimeoutMs = ctx.params.eventTimeoutMs as number;
    const output: string[] = [];
    return withProbeRecord(ctx, timeoutMs, async ({ probe, vars, token }) => {
      const topic = resolveRequest({ method: 'GET', path: probe.topic }, vars).path;
      const read = resolveRequest(probe.read, vars);
      // What the upstream itself says (informational: Bifrost applies it).
      const direct = await callSync(ctx.stack, read, token, timeoutMs);
      const granted = direct.headers['x-bifrost-subscribe'];
      output.push(`Sync answers ${read.method} ${read.path} with ${direct.status}, x-bifrost-subscribe: ${granted ?? '(none)'}`);
      const session = await NativeSession.open(ctx.stack.gatewayUrl, token, timeoutMs);
      try {
        ctx.progress(`reading ${read.path} through Bifrost`);
        const { frame, service } = await requestThroughBifrost(session, ctx, read, timeoutMs);
        output.push(`read via service ${service}: ${describeFrame(frame)}`);
        if (frame.op !== 'response' || (frame.status ?? 500) >= 300) {
          return { ok: false, summary: `reading the probe record through Bifrost failed: ${describeFrame(frame)}`, output };
        }
        ctx.progress(`publishing a marker on ${topic}`);
        const pub = await httpCall(joinUrl(ctx.stack.privateUrl, '/v1/publish'), {
          method: 'POST',
          headers: { authorization: `Bearer ${ctx.stack.serviceToken}` },
          body: { topic, event: MARKER_EVENT, data: { nonce: vars.nonce } },
          timeoutMs,
        });
        if (pub.status >= 300) return { ok: false, summary: `publishing the marker through the private API answered ${pub.status} ${brief(pub.body)}`, output };
        const ev = await session.waitForEvent((e) => e.topic === topic && e.event === MARKER_EVENT && (e.data as { nonce?: string } | null)?.nonce === vars.nonce, eventTimeoutMs);
        if (!ev) {
          return {
            ok: false,
            summary: `the read did not subscribe the socket to ${topic}: the marker published there did not arrive within ${eventTimeoutMs} ms${granted ? '' : ' (Sync sent no x-bifrost-subscribe header: is the subscribe-header policy on?)'}`,
            output,
          };
        }
        output.push(`marker arrived on ${topic} at offset ${ev.offset ?? '?'}`);
        return { ok: true, summary: `reading ${read.path} through Bifrost subscribed the socket to ${topic}`, output };
      } finally {
        await session.close();
      }
    });
  },
};
