/**
 * A minimal reader of the WebSocket frames a server sends, for the client
 * generator's hot path. Once a client is ready, the generator reads its TCP
 * socket through this instead of through the `ws` receiver (a Writable stream
 * with per-frame events and buffer bookkeeping): one generator process has to
 * take in every delivered message of every system, and at tens of thousands
 * of messages a second the `ws` receive path made the generator, not the
 * servers, the first process to fall behind.
 *
 * Server frames are never masked (RFC 6455 §5.1), so a frame is a 2, 4 or 10
 * byte header and its payload. The handler gets the opcode and the payload's
 * place in a buffer (no copy, no per-frame Buffer). A frame split over reads
 * is kept until the rest arrives.
 */
export type FrameHandler = (opcode: number, buf: Buffer, start: number, end: number) => void;

export class ServerFrameReader {
  private rest: Buffer | undefined;

  constructor(private readonly onFrame: FrameHandler) {}

  /**
   * Feeds one chunk read from the socket: its first `length` bytes. `shared`:
   * the chunk is a read buffer the caller reuses, so a split frame's start is
   * copied rather than kept by reference. Throws on a masked or oversized
   * frame (not a server's frame).
   */
  push(chunk: Buffer, length = chunk.length, shared = false): void {
    const buf = this.rest ? Buffer.concat([this.rest, chunk.subarray(0, length)]) : chunk;
    const n = this.rest ? buf.length : length;
    this.rest = undefined;
    let p = 0;
    while (n - p >= 2) {
      const b1 = buf[p + 1]!;
      if (b1 & 0x80) throw new Error('masked frame from the server');
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (n - p < 4) break;
        len = buf.readUInt16BE(p + 2);
        head = 4;
      } else if (len === 127) {
        if (n - p < 10) break;
        if (buf.readUInt32BE(p + 2) !== 0) throw new Error('frame longer than 4 GiB');
        len = buf.readUInt32BE(p + 6);
        head = 10;
      }
      if (n - p < head + len) break;
      this.onFrame(buf[p]! & 0x0f, buf, p + head, p + head + len);
      p += head + len;
    }
    if (p < n) this.rest = shared && buf === chunk ? Buffer.from(buf.subarray(p, n)) : buf.subarray(p, n);
  }
}
