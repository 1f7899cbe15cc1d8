/** The bench client generator's reader of server WebSocket frames, and the timestamp scan it feeds. */
import { describe, expect, it } from 'vitest';
import { ServerFrameReader } from '../../bench/harness/frame-reader.ts';
import { scanTimestamp } from '../../bench/harness/frames.ts';

/** An unmasked server frame, as the `ws` server writes it. */
function frame(opcode: number, payload: string): Buffer {
  const body = Buffer.from(payload);
  const n = body.length;
  const b0 = 0x80 | opcode; // FIN + opcode
  let head: Buffer;
  if (n < 126) head = Buffer.from([b0, n]);
  else if (n < 65536) head = Buffer.from([b0, 126, n >> 8, n & 0xff]);
  else {
    head = Buffer.from([b0, 127, 0, 0, 0, 0, 0, 0, 0, 0]);
    head.writeUInt32BE(n, 6);
  }
  return Buffer.concat([head, body]);
}

function collect(): { reader: ServerFrameReader; got: [number, string][] } {
  const got: [number, string][] = [];
  return { reader: new ServerFrameReader((op, buf, s, e) => got.push([op, buf.toString('utf8', s, e)])), got };
}

describe('ServerFrameReader', () => {
  it('reads several frames from one chunk, with 7-bit, 16-bit and 64-bit lengths', () => {
    const { reader, got } = collect();
    const mid = 'm'.repeat(300);
    const big = 'b'.repeat(70_000);
    reader.push(Buffer.concat([frame(1, 'hello'), frame(9, 'ping!'), frame(1, mid), frame(2, big), frame(8, '')]));
    expect(got).toEqual([
      [1, 'hello'],
      [9, 'ping!'],
      [1, mid],
      [2, big],
      [8, ''],
    ]);
  });

  it('keeps a frame split over reads, at every byte, until the rest arrives', () => {
    const bytes = Buffer.concat([frame(1, '{"ts":1700000000000.125,"x":1}'), frame(1, 'y'.repeat(200)), frame(1, 'z')]);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { reader, got } = collect();
      reader.push(bytes.subarray(0, cut));
      reader.push(bytes.subarray(cut));
      expect(got.map(([, s]) => s)).toEqual(['{"ts":1700000000000.125,"x":1}', 'y'.repeat(200), 'z']);
    }
    // One byte at a time.
    const { reader, got } = collect();
    for (const b of bytes) reader.push(Buffer.from([b]));
    expect(got).toHaveLength(3);
  });

  it('reads from a shared read buffer: only the first `length` bytes, and a split frame survives the buffer being overwritten', () => {
    const bytes = Buffer.concat([frame(1, 'first'), frame(1, 'x'.repeat(200)), frame(1, 'last')]);
    const shared = Buffer.alloc(1024, 0xee); // stale bytes beyond what each read filled
    for (let cut = 1; cut < bytes.length; cut++) {
      const { reader, got } = collect();
      bytes.copy(shared, 0, 0, cut);
      reader.push(shared, cut, true);
      // The next read (of this or any other socket) reuses the buffer.
      shared.fill(0xee);
      bytes.copy(shared, 0, cut);
      reader.push(shared, bytes.length - cut, true);
      shared.fill(0xee);
      expect(got.map(([, s]) => s)).toEqual(['first', 'x'.repeat(200), 'last']);
    }
  });

  it('refuses a masked frame: only a client masks', () => {
    const { reader } = collect();
    expect(() => reader.push(Buffer.from([0x81, 0x85, 1, 2, 3, 4, 0, 0, 0, 0, 0]))).toThrow(/masked/);
  });
});

describe('scanTimestamp', () => {
  it('reads the ts of a frame within its bounds only', () => {
    const buf = Buffer.from('xx{"ts":1700000000000.125,"seq":3}yy{"ts":42}');
    expect(scanTimestamp(buf)).toBeCloseTo(1700000000000.125, 3);
    const second = buf.indexOf('{"ts":42');
    expect(scanTimestamp(buf, second, buf.length)).toBe(42);
    // A frame without a ts does not borrow the next frame's.
    expect(scanTimestamp(buf, 0, 2)).toBe(-1);
    expect(scanTimestamp(buf, 27, second)).toBe(-1);
    // Digits are not read past the end of the frame.
    expect(scanTimestamp(buf, 2, 12)).toBe(1700);
  });
});
