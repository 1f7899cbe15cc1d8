/**
 * The timestamp every bench message carries: `"ts":<ms since the epoch, 3
 * decimals>`, the publisher's *intended* send time. Clients scan it out of the
 * raw frame bytes (no JSON parsing on the hot path), whatever the envelope:
 * a native event frame, a socket.io `42[...]` packet or a bare payload.
 */
const TS = Buffer.from('"ts":');

/** Wall clock with sub-millisecond resolution, comparable across processes on one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The `ts` value in a frame (the bytes from `start` to `end` of `buf`), or -1 when there is none. */
export function scanTimestamp(buf: Buffer, start = 0, end = buf.length): number {
  const i = buf.indexOf(TS, start);
  if (i < 0 || i + 5 >= end) return -1;
  let p = i + 5;
  let intPart = 0;
  let c = buf[p]!;
  while (p < end && c >= 48 && c <= 57) {
    intPart = intPart * 10 + (c - 48);
    c = buf[++p]!;
  }
  if (p >= end || c !== 46) return intPart;
  let frac = 0;
  let scale = 1;
  c = buf[++p]!;
  while (p < end && c >= 48 && c <= 57 && scale < 1e6) {
    frac = frac * 10 + (c - 48);
    scale *= 10;
    c = buf[++p]!;
  }
  return intPart + frac / scale;
}

/** A JSON payload of about `bytes` bytes carrying `ts` and `seq`. */
export function payload(ts: number, seq: number, pad: string): string {
  return `{"ts":${ts.toFixed(3)},"seq":${seq},"pad":"${pad}"}`;
}

/** The padding that makes `payload()` about `bytes` long. */
export function padFor(bytes: number): string {
  const base = payload(1_700_000_000_000.123, 1_000_000, '').length;
  return 'x'.repeat(Math.max(0, bytes - base));
}
