// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), which Pulsar uses for payload frames.
// Node's zlib.crc32 is the IEEE polynomial and must not be used. Slicing-by-8 tables: ~8 bytes per step.

const POLY = 0x82f63b78;
const TABLES: Uint32Array[] = [];
{
  const t0 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[i] = c >>> 0;
  }
  TABLES.push(t0);
  for (let t = 1; t < 8; t++) {
    const prev = TABLES[t - 1];
    const next = new Uint32Array(256);
    for (let i = 0; i < 256; i++) next[i] = (prev[i] >>> 8) ^ t0[prev[i] & 0xff];
    TABLES.push(next);
  }
}
const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
];

/** CRC-32C of `data`, continuing from `initial` (the result of a previous call) to checksum in pieces. */
export function crc32c(data: Uint8Array, initial = 0): number {
  let crc = ~initial >>> 0;
  let i = 0;
  const n = data.length;
  const end8 = n - (n % 8);
  while (i < end8) {
    const lo = (crc ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>> 0;
    crc =
      T7[lo & 0xff] ^
      T6[(lo >>> 8) & 0xff] ^
      T5[(lo >>> 16) & 0xff] ^
      T4[lo >>> 24] ^
      T3[data[i + 4]] ^
      T2[data[i + 5]] ^
      T1[data[i + 6]] ^
      T0[data[i + 7]];
    i += 8;
  }
  while (i < n) crc = T0[(crc ^ data[i++]) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
}
