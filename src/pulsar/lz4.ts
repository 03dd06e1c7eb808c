// Raw LZ4 blocks (no frame, no size prefix), as Pulsar's LZ4 compression puts them on the wire.
// The encoder follows the block format's end rules so that liblz4 and lz4-java accept every block:
// the last 5 bytes are always literals and no match starts within the last 12 bytes.

const MIN_MATCH = 4;
const LAST_LITERALS = 5;
const MF_LIMIT = 12;
const HASH_BITS = 14;
const MAX_OFFSET = 65535;

function hash4(v: number): number {
  return Math.imul(v, 2654435761) >>> (32 - HASH_BITS);
}

function read32(src: Uint8Array, i: number): number {
  return (src[i] | (src[i + 1] << 8) | (src[i + 2] << 16) | (src[i + 3] << 24)) >>> 0;
}

/** Worst-case size of a compressed block for `n` input bytes. */
export function lz4MaxSize(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

export function lz4CompressBlock(src: Uint8Array): Buffer {
  const n = src.length;
  const out = Buffer.allocUnsafe(lz4MaxSize(n));
  let op = 0;
  let anchor = 0;
  const writeLength = (len: number) => {
    while (len >= 255) {
      out[op++] = 255;
      len -= 255;
    }
    out[op++] = len;
  };
  const emit = (literalEnd: number, matchLength: number, offset: number) => {
    const literals = literalEnd - anchor;
    const token = op++;
    out[token] =
      (Math.min(literals, 15) << 4) | (matchLength > 0 ? Math.min(matchLength - MIN_MATCH, 15) : 0);
    if (literals >= 15) writeLength(literals - 15);
    out.set(src.subarray(anchor, literalEnd), op);
    op += literals;
    if (matchLength > 0) {
      out[op++] = offset & 0xff;
      out[op++] = offset >>> 8;
      if (matchLength - MIN_MATCH >= 15) writeLength(matchLength - MIN_MATCH - 15);
    }
  };
  if (n >= MF_LIMIT + 1) {
    const table = new Int32Array(1 << HASH_BITS).fill(-1);
    const matchLimit = n - LAST_LITERALS;
    const searchLimit = n - MF_LIMIT;
    let i = 0;
    while (i < searchLimit) {
      const seq = read32(src, i);
      const h = hash4(seq);
      const candidate = table[h];
      table[h] = i;
      if (candidate >= 0 && i - candidate <= MAX_OFFSET && read32(src, candidate) === seq) {
        let len = MIN_MATCH;
        while (i + len < matchLimit && src[candidate + len] === src[i + len]) len++;
        emit(i, len, i - candidate);
        i += len;
        anchor = i;
        continue;
      }
      i++;
    }
  }
  emit(n, 0, 0);
  return out.subarray(0, op);
}

/** Decodes a raw block into exactly `size` bytes; throws on malformed input. */
export function lz4DecompressBlock(src: Uint8Array, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  const end = decodeInto(src, out, 0);
  if (end !== size) throw new Error(`corrupt LZ4 block: decoded ${end} bytes, expected ${size}`);
  return out;
}

/**
 * Decodes a block of at most `maxSize` bytes whose matches may reach back into `prefix` (the output of
 * earlier blocks, as in linked LZ4 frame blocks). Returns only the block's own output.
 */
export function lz4DecompressBlockWithPrefix(src: Uint8Array, prefix: Uint8Array, maxSize: number): Buffer {
  const out = Buffer.allocUnsafe(prefix.length + maxSize);
  out.set(prefix, 0);
  const end = decodeInto(src, out, prefix.length);
  return Buffer.from(out.subarray(prefix.length, end));
}

function decodeInto(src: Uint8Array, out: Buffer, start: number): number {
  const size = out.length;
  let ip = 0;
  let op = start;
  const n = src.length;
  const bad = (why: string) => new Error(`corrupt LZ4 block: ${why}`);
  while (ip < n) {
    const token = src[ip++];
    let literals = token >>> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (ip >= n) throw bad("truncated literal length");
        b = src[ip++]!;
        literals += b;
      } while (b === 255);
    }
    if (ip + literals > n || op + literals > size) throw bad("literals out of bounds");
    out.set(src.subarray(ip, ip + literals), op);
    ip += literals;
    op += literals;
    if (ip >= n) break;
    if (ip + 2 > n) throw bad("truncated offset");
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw bad("offset out of range");
    let len = (token & 15) + MIN_MATCH;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (ip >= n) throw bad("truncated match length");
        b = src[ip++]!;
        len += b;
      } while (b === 255);
    }
    if (op + len > size) throw bad("match out of bounds");
    for (let k = 0; k < len; k++, op++) out[op] = out[op - offset]!;
  }
  return op;
}
