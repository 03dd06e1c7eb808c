// A minimal protocol-buffers (proto2) wire codec: just what Pulsar's commands need.
// Writing appends to one growable buffer; nested messages are written into a scratch writer first.
// Reading decodes a message into field number -> raw values (varints as numbers, bytes as Buffer views).

export class ProtoWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initialSize = 256) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private rawVarint(value: number): void {
    this.ensure(10);
    if (value >= 0 && value < 0x80000000) {
      let v = value;
      while (v > 0x7f) {
        this.buf[this.pos++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      this.buf[this.pos++] = v;
      return;
    }
    // 64-bit values (including negative int64 as two's complement): split into low and high words.
    let big = BigInt.asUintN(64, BigInt(Math.trunc(value)));
    while (big > 0x7fn) {
      this.buf[this.pos++] = Number(big & 0x7fn) | 0x80;
      big >>= 7n;
    }
    this.buf[this.pos++] = Number(big);
  }

  private tag(field: number, wireType: number): void {
    this.rawVarint((field << 3) | wireType);
  }

  /** uint32 / uint64 / int32 / int64 / enum / bool (as 0/1). */
  varint(field: number, value: number | boolean): this {
    this.tag(field, 0);
    this.rawVarint(typeof value === "boolean" ? (value ? 1 : 0) : value);
    return this;
  }

  bytes(field: number, value: Buffer): this {
    this.tag(field, 2);
    this.rawVarint(value.length);
    this.ensure(value.length);
    value.copy(this.buf, this.pos);
    this.pos += value.length;
    return this;
  }

  string(field: number, value: string): this {
    const len = Buffer.byteLength(value, "utf8");
    this.tag(field, 2);
    this.rawVarint(len);
    this.ensure(len);
    this.buf.write(value, this.pos, len, "utf8");
    this.pos += len;
    return this;
  }

  double(field: number, value: number): this {
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
    return this;
  }

  /** Appends raw bytes. */
  raw(value: Uint8Array): this {
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
    return this;
  }

  /** Appends a big-endian uint32 (not protobuf: the length prefixes of Pulsar's batch format). */
  uint32BE(value: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(value, this.pos);
    this.pos += 4;
    return this;
  }

  /** Overwrites a big-endian uint32 written earlier at byte `at`. */
  patchUInt32BE(at: number, value: number): void {
    this.buf.writeUInt32BE(value, at);
  }

  /**
   * A nested KeyValue { 1: key, 2: value } (both strings), written in place: its length is computed first,
   * so no scratch writer is needed (message properties are on the hot path).
   */
  keyValue(field: number, key: string, value: string): this {
    const kLen = Buffer.byteLength(key, "utf8");
    const vLen = Buffer.byteLength(value, "utf8");
    this.tag(field, 2);
    this.rawVarint(2 + varintSize(kLen) + kLen + varintSize(vLen) + vLen);
    this.tag(1, 2);
    this.rawVarint(kLen);
    this.ensure(kLen);
    this.buf.write(key, this.pos, kLen, "utf8");
    this.pos += kLen;
    this.tag(2, 2);
    this.rawVarint(vLen);
    this.ensure(vLen);
    this.buf.write(value, this.pos, vLen, "utf8");
    this.pos += vLen;
    return this;
  }

  /** Empties the writer to use it again (the views `finish` returned before must be consumed by then). */
  reset(): this {
    this.pos = 0;
    return this;
  }

  /** A nested message written by `fill` into a scratch writer. */
  message(field: number, fill: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter(64);
    fill(inner);
    return this.bytes(field, inner.finish());
  }

  get length(): number {
    return this.pos;
  }

  /** The encoded bytes (a view; the writer must not be used afterwards). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/** Bytes of a non-negative 32-bit value as a varint. */
function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

export type FieldValue = number | Buffer;

/** A decoded message: field number -> values in wire order (repeated fields have several). */
export class ProtoMessage {
  private readonly fields = new Map<number, FieldValue[]>();

  constructor(data: Buffer) {
    let pos = 0;
    const end = data.length;
    const varint = (): number => {
      let lo = 0;
      let shift = 0;
      let b: number;
      // up to 4 bytes fit exactly in 28 bits without sign trouble
      do {
        if (pos >= end) throw new Error("truncated protobuf varint");
        b = data[pos++] ?? 0;
        if (shift < 28) lo |= (b & 0x7f) << shift;
        else return slowVarint(lo >>> 0, b, shift);
        shift += 7;
      } while (b & 0x80);
      return lo >>> 0;
    };
    // The remaining bytes of a varint longer than 4 bytes, as a (possibly negative int64) number.
    const slowVarint = (low28: number, firstHigh: number, shift: number): number => {
      let value = BigInt(low28);
      let b = firstHigh;
      let s = BigInt(shift);
      for (;;) {
        value |= BigInt(b & 0x7f) << s;
        s += 7n;
        if (!(b & 0x80)) break;
        if (pos >= end) throw new Error("truncated protobuf varint");
        b = data[pos++] ?? 0;
      }
      return Number(BigInt.asIntN(64, value));
    };
    while (pos < end) {
      const key = varint();
      const field = key >>> 3;
      const wireType = key & 7;
      let value: FieldValue;
      switch (wireType) {
        case 0:
          value = varint();
          break;
        case 1:
          if (pos + 8 > end) throw new Error("truncated protobuf fixed64");
          value = data.readDoubleLE(pos);
          pos += 8;
          break;
        case 2: {
          const len = varint();
          if (pos + len > end) throw new Error("truncated protobuf bytes");
          value = data.subarray(pos, pos + len);
          pos += len;
          break;
        }
        case 5:
          if (pos + 4 > end) throw new Error("truncated protobuf fixed32");
          value = data.readUInt32LE(pos);
          pos += 4;
          break;
        default:
          throw new Error(`unsupported protobuf wire type ${wireType}`);
      }
      const list = this.fields.get(field);
      if (list) list.push(value);
      else this.fields.set(field, [value]);
    }
  }

  has(field: number): boolean {
    return this.fields.has(field);
  }

  num(field: number, fallback = 0): number {
    const v = this.fields.get(field)?.[0];
    return typeof v === "number" ? v : fallback;
  }

  bool(field: number, fallback = false): boolean {
    const v = this.fields.get(field)?.[0];
    return typeof v === "number" ? v !== 0 : fallback;
  }

  bytes(field: number): Buffer | undefined {
    const v = this.fields.get(field)?.[0];
    return Buffer.isBuffer(v) ? v : undefined;
  }

  str(field: number): string | undefined {
    return this.bytes(field)?.toString("utf8");
  }

  /** Every value of a repeated string field, in wire order. */
  strs(field: number): string[] {
    return (this.fields.get(field) ?? [])
      .filter((v): v is Buffer => Buffer.isBuffer(v))
      .map((b) => b.toString("utf8"));
  }

  message(field: number): ProtoMessage | undefined {
    const b = this.bytes(field);
    return b ? new ProtoMessage(b) : undefined;
  }

  messages(field: number): ProtoMessage[] {
    return (this.fields.get(field) ?? [])
      .filter((v): v is Buffer => Buffer.isBuffer(v))
      .map((b) => new ProtoMessage(b));
  }
}
