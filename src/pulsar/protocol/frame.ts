// Framing: [totalSize u32][commandSize u32][command] and, for SEND / MESSAGE,
// [0x0e01][crc32c u32][metadataSize u32][metadata][payload], the CRC covering metadataSize..payload end.
import { crc32c } from "../crc32c";

const MAGIC_CRC = 0x0e01;
const MAGIC_BROKER_ENTRY_METADATA = 0x0e02;
export const MAX_FRAME_SIZE = 5 * 1024 * 1024 + 64 * 1024;

export function simpleFrame(command: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(8 + command.length);
  frame.writeUInt32BE(4 + command.length, 0);
  frame.writeUInt32BE(command.length, 4);
  command.copy(frame, 8);
  return frame;
}

export function payloadFrame(command: Buffer, metadata: Buffer, payload: Buffer): Buffer {
  const headerLength = 4 + 4 + command.length + 2 + 4;
  const frame = Buffer.allocUnsafe(headerLength + 4 + metadata.length + payload.length);
  let pos = 0;
  frame.writeUInt32BE(frame.length - 4, pos);
  pos += 4;
  frame.writeUInt32BE(command.length, pos);
  pos += 4;
  command.copy(frame, pos);
  pos += command.length;
  frame.writeUInt16BE(MAGIC_CRC, pos);
  pos += 2;
  const crcAt = pos;
  pos += 4;
  frame.writeUInt32BE(metadata.length, pos);
  pos += 4;
  metadata.copy(frame, pos);
  pos += metadata.length;
  payload.copy(frame, pos);
  frame.writeUInt32BE(crc32c(frame.subarray(crcAt + 4)), crcAt);
  return frame;
}

export interface InboundFrame {
  command: Buffer;
  /** For MESSAGE frames. */
  metadata?: Buffer;
  payload?: Buffer;
  checksumOk?: boolean;
}

/** Splits a byte stream into frames; tolerates frames split over chunks and several frames per chunk. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer, onFrame: (frame: InboundFrame) => void): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < 4) return;
      const head = this.peek(4);
      const total = head.readUInt32BE(0);
      if (total > MAX_FRAME_SIZE) throw new Error(`frame of ${total} bytes exceeds the maximum frame size`);
      if (this.buffered < 4 + total) return;
      const frame = this.take(4 + total);
      onFrame(parseFrame(frame));
    }
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) return first;
    const merged = Buffer.concat(this.chunks);
    this.chunks = [merged];
    return merged;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const merged = Buffer.concat(this.chunks);
      out = merged.subarray(0, n);
      this.chunks = merged.length > n ? [merged.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}

function parseFrame(frame: Buffer): InboundFrame {
  const commandSize = frame.readUInt32BE(4);
  const command = frame.subarray(8, 8 + commandSize);
  let pos = 8 + commandSize;
  if (pos >= frame.length) return { command };
  let magic = frame.readUInt16BE(pos);
  if (magic === MAGIC_BROKER_ENTRY_METADATA) {
    const size = frame.readUInt32BE(pos + 2);
    pos += 6 + size;
    magic = frame.readUInt16BE(pos);
  }
  if (magic !== MAGIC_CRC) throw new Error("payload frame without checksum magic");
  const checksum = frame.readUInt32BE(pos + 2);
  const checked = frame.subarray(pos + 6);
  const metadataSize = frame.readUInt32BE(pos + 6);
  const metadata = frame.subarray(pos + 10, pos + 10 + metadataSize);
  const payload = frame.subarray(pos + 10 + metadataSize);
  return { command, metadata, payload, checksumOk: crc32c(checked) === checksum };
}
