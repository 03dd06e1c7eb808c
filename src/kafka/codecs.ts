// Kafka's compressed record batches (snappy, lz4, zstd; gzip is built into kafkajs) without native
// modules. Kafka's formats differ from Pulsar's: snappy uses the xerial stream framing (raw blocks are
// accepted too), LZ4 uses the LZ4 *frame* format, zstd a standard frame.
import { CompressionCodecs, CompressionTypes } from "kafkajs";
import { lz4CompressBlock, lz4DecompressBlockWithPrefix } from "../pulsar/lz4";

interface SnappyModule {
  compress(input: Uint8Array): Uint8Array;
  uncompress(input: Uint8Array): Uint8Array;
}
interface ZstdWasm {
  init(): Promise<void>;
  compress(input: Uint8Array, level?: number): Uint8Array;
}
interface Fzstd {
  decompress(input: Uint8Array): Uint8Array;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const snappy = (): SnappyModule => require("snappyjs") as SnappyModule;

const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_BLOCK = 32 * 1024;

export function snappyEncode(data: Buffer): Buffer {
  const header = Buffer.alloc(16);
  XERIAL_MAGIC.copy(header, 0);
  header.writeInt32BE(1, 8);
  header.writeInt32BE(1, 12);
  const parts: Buffer[] = [header];
  for (let i = 0; i < data.length; i += XERIAL_BLOCK) {
    const block = Buffer.from(snappy().compress(data.subarray(i, i + XERIAL_BLOCK)));
    const len = Buffer.alloc(4);
    len.writeInt32BE(block.length, 0);
    parts.push(len, block);
  }
  return Buffer.concat(parts);
}

export function snappyDecode(data: Buffer): Buffer {
  if (data.length < 16 || !data.subarray(0, 8).equals(XERIAL_MAGIC))
    return Buffer.from(snappy().uncompress(data));
  const parts: Buffer[] = [];
  let pos = 16;
  while (pos < data.length) {
    if (pos + 4 > data.length) throw new Error("truncated snappy block length");
    const len = data.readInt32BE(pos);
    pos += 4;
    if (len < 0 || pos + len > data.length) throw new Error("truncated snappy block");
    parts.push(Buffer.from(snappy().uncompress(data.subarray(pos, pos + len))));
    pos += len;
  }
  return Buffer.concat(parts);
}

// xxHash32, for the LZ4 frame header checksum (Kafka's Java reader checks it).
const P1 = 2654435761;
const P2 = 2246822519;
const P3 = 3266489917;
const P4 = 668265263;
const P5 = 374761393;
const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));

export function xxh32(data: Uint8Array, seed = 0): number {
  const n = data.length;
  let i = 0;
  let h: number;
  const u32 = (k: number) => (data[k] | (data[k + 1] << 8) | (data[k + 2] << 16) | (data[k + 3] << 24)) >>> 0;
  if (n >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    while (i <= n - 16) {
      v1 = Math.imul(rotl((v1 + Math.imul(u32(i), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(u32(i + 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(u32(i + 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(u32(i + 12), P2)) | 0, 13), P1);
      i += 16;
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + n) | 0;
  while (i <= n - 4) {
    h = Math.imul(rotl((h + Math.imul(u32(i), P3)) | 0, 17), P4);
    i += 4;
  }
  while (i < n) {
    h = Math.imul(rotl((h + Math.imul(data[i], P5)) | 0, 11), P1);
    i++;
  }
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

const LZ4_MAGIC = 0x184d2204;
const LZ4_BLOCK = 64 * 1024;

export function lz4FrameEncode(data: Buffer): Buffer {
  // FLG: version 01, independent blocks; BD: 64 KB blocks; HC: second byte of xxh32(descriptor)
  const descriptor = Buffer.from([0x60, 0x40]);
  const header = Buffer.alloc(7);
  header.writeUInt32LE(LZ4_MAGIC, 0);
  descriptor.copy(header, 4);
  header[6] = (xxh32(descriptor) >>> 8) & 0xff;
  const parts: Buffer[] = [header];
  for (let i = 0; i < data.length; i += LZ4_BLOCK) {
    const raw = data.subarray(i, i + LZ4_BLOCK);
    const packed = lz4CompressBlock(raw);
    const size = Buffer.alloc(4);
    if (packed.length < raw.length) {
      size.writeUInt32LE(packed.length, 0);
      parts.push(size, packed);
    } else {
      size.writeUInt32LE((raw.length | 0x80000000) >>> 0, 0);
      parts.push(size, raw);
    }
  }
  parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

export function lz4FrameDecode(data: Buffer): Buffer {
  if (data.length < 7 || data.readUInt32LE(0) !== LZ4_MAGIC) throw new Error("not an LZ4 frame");
  const flg = data[4];
  const bd = data[5];
  const blockChecksum = (flg & 0x10) !== 0;
  const contentSize = (flg & 0x08) !== 0;
  const dictId = (flg & 0x01) !== 0;
  const independent = (flg & 0x20) !== 0;
  const maxBlock = 1 << (8 + 2 * ((bd >> 4) & 7));
  let pos = 6 + (contentSize ? 8 : 0) + (dictId ? 4 : 0) + 1;
  const parts: Buffer[] = [];
  for (;;) {
    if (pos + 4 > data.length) throw new Error("truncated LZ4 frame");
    const word = data.readUInt32LE(pos);
    pos += 4;
    if (word === 0) break;
    const uncompressed = (word & 0x80000000) !== 0;
    const size = word & 0x7fffffff;
    if (pos + size > data.length) throw new Error("truncated LZ4 block");
    const block = data.subarray(pos, pos + size);
    pos += size + (blockChecksum ? 4 : 0);
    // Blocks may be linked (matches reaching into earlier output, up to 64 KB back).
    if (uncompressed) parts.push(Buffer.from(block));
    else {
      const history = independent ? Buffer.alloc(0) : lastWindow(parts);
      parts.push(lz4DecompressBlockWithPrefix(block, history, maxBlock));
    }
  }
  return Buffer.concat(parts);
}

function lastWindow(parts: Buffer[]): Buffer {
  const all = Buffer.concat(parts);
  return all.subarray(Math.max(0, all.length - 65536));
}

let zstdEncoder: Promise<ZstdWasm> | undefined;

async function zstdEncode(data: Buffer): Promise<Buffer> {
  zstdEncoder ??= (async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const m = require("@bokuweb/zstd-wasm") as ZstdWasm;
    await m.init();
    return m;
  })();
  return Buffer.from((await zstdEncoder).compress(data, 3));
}

function zstdDecode(data: Buffer): Buffer {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return Buffer.from((require("fzstd") as Fzstd).decompress(data));
}

let registered = false;

/** Makes kafkajs read and write snappy, lz4 and zstd batches. Idempotent. */
export function registerKafkaCodecs(): void {
  if (registered) return;
  registered = true;
  const codecs = CompressionCodecs as unknown as Record<number, () => unknown>;
  codecs[CompressionTypes.Snappy] = () => ({
    compress: (encoder: { buffer: Buffer }) => Promise.resolve(snappyEncode(encoder.buffer)),
    decompress: (buffer: Buffer) => Promise.resolve(snappyDecode(buffer)),
  });
  codecs[CompressionTypes.LZ4] = () => ({
    compress: (encoder: { buffer: Buffer }) => Promise.resolve(lz4FrameEncode(encoder.buffer)),
    decompress: (buffer: Buffer) => Promise.resolve(lz4FrameDecode(buffer)),
  });
  codecs[CompressionTypes.ZSTD] = () => ({
    compress: (encoder: { buffer: Buffer }) => zstdEncode(encoder.buffer),
    decompress: (buffer: Buffer) => Promise.resolve(zstdDecode(buffer)),
  });
}
