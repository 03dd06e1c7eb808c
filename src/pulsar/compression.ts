// Compression codecs for Pulsar entries, all without native builds: LZ4 (raw block, our own), ZLIB
// (Node's zlib; Java writes no final block, hence the sync-flush decode), ZSTD (WebAssembly), SNAPPY (raw).
import zlib from "node:zlib";
import { ConfigError } from "./errors";
import { lz4CompressBlock, lz4DecompressBlock } from "./lz4";
import type { CompressionType } from "./types";

export interface Codec {
  readonly type: CompressionType;
  /** Pulsar's CompressionType enum value. */
  readonly wireValue: number;
  compress(data: Buffer): Buffer;
  decompress(data: Buffer, uncompressedSize: number): Buffer;
}

const WIRE: Record<CompressionType, number> = { none: 0, lz4: 1, zlib: 2, zstd: 3, snappy: 4 };

export function codecTypeFromWire(n: number): CompressionType {
  const found = (Object.keys(WIRE) as CompressionType[]).find((k) => WIRE[k] === n);
  if (!found) throw new ConfigError(`unknown compression type ${n}`);
  return found;
}

function checked(type: string, out: Uint8Array, expected: number): Buffer {
  if (out.length !== expected)
    throw new Error(`${type} decompression gave ${out.length} bytes, expected ${expected}`);
  return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.length);
}

interface SnappyModule {
  compress(input: Uint8Array): Uint8Array;
  uncompress(input: Uint8Array, maxLength?: number): Uint8Array;
}
interface ZstdModule {
  init(): Promise<void>;
  compress(input: Uint8Array, level?: number): Uint8Array;
  decompress(input: Uint8Array): Uint8Array;
}

let zstdReady: Promise<ZstdModule> | undefined;

const codecs: Record<CompressionType, () => Promise<Codec>> = {
  none: () =>
    Promise.resolve({
      type: "none",
      wireValue: 0,
      compress: (d) => d,
      decompress: (d, size) => checked("none", d, size),
    }),
  lz4: () =>
    Promise.resolve({
      type: "lz4",
      wireValue: 1,
      compress: (d) => lz4CompressBlock(d),
      decompress: (d, size) => lz4DecompressBlock(d, size),
    }),
  zlib: () =>
    Promise.resolve({
      type: "zlib",
      wireValue: 2,
      compress: (d) => zlib.deflateSync(d),
      decompress: (d, size) =>
        checked("zlib", zlib.inflateSync(d, { finishFlush: zlib.constants.Z_SYNC_FLUSH }), size),
    }),
  zstd: async () => {
    zstdReady ??= (async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const m = require("@bokuweb/zstd-wasm") as ZstdModule;
      await m.init();
      return m;
    })();
    const m = await zstdReady;
    return {
      type: "zstd",
      wireValue: 3,
      compress: (d) => Buffer.from(m.compress(d, 3)),
      decompress: (d, size) => checked("zstd", m.decompress(d), size),
    };
  },
  snappy: () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const m = require("snappyjs") as SnappyModule;
    return Promise.resolve({
      type: "snappy",
      wireValue: 4,
      compress: (d) => Buffer.from(m.compress(d)),
      decompress: (d, size) => checked("snappy", m.uncompress(d, size), size),
    });
  },
};

/** The codec for `type` (ZSTD loads its WebAssembly module on first use). */
export function loadCodec(type: CompressionType): Promise<Codec> {
  const make = codecs[type];
  if (!make)
    return Promise.reject(
      new ConfigError(`unknown compression "${String(type)}" (none, lz4, zlib, zstd or snappy)`),
    );
  return make();
}
