// The order in which a record's headers were written. kafkajs hands a record's headers over as an object:
// a repeated name is grouped at its first appearance (A, B, A becomes { A: [a1, a2], B: b }) and names
// that are array indices ("0", "7") are listed first, in numeric order. Its key and value are views into
// the bytes it decoded the record from, and in Kafka's record format the headers follow the value:
//   key length (varint), key, value length (varint, -1 for none), value, header count (varint),
//   then per header: name length (varint), name (UTF-8), value length (varint, -1 for none), value.
// Read from there, the names come in the order the producer wrote them.

/** A header as read from the record's bytes. */
export interface WireHeader {
  key: string;
  value: Buffer | null;
}

/**
 * The record's headers in the order they were written, read after its value (or after its key when it
 * has no value); undefined when neither is there to start from or the bytes do not read as headers.
 * The caller checks the result against what kafkajs decoded.
 */
export function wireHeaders(record: { key: Buffer | null; value: Buffer | null }): WireHeader[] | undefined {
  let bytes: Uint8Array;
  let at: number;
  if (record.value) {
    bytes = new Uint8Array(record.value.buffer, 0, record.value.buffer.byteLength);
    at = record.value.byteOffset + record.value.length;
  } else if (record.key) {
    bytes = new Uint8Array(record.key.buffer, 0, record.key.buffer.byteLength);
    at = record.key.byteOffset + record.key.length;
    // the value's length: -1, which is 1 as a zigzag varint
    if (bytes[at] !== 1) return undefined;
    at++;
  } else return undefined;
  const varint = (): number | undefined => {
    let u = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (at >= bytes.length) return undefined;
      const b = bytes[at++];
      u += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
    }
    return undefined;
  };
  const count = varint();
  if (count === undefined || count < 0 || count > bytes.length - at) return undefined;
  const out: WireHeader[] = [];
  for (let i = 0; i < count; i++) {
    const keyLength = varint();
    if (keyLength === undefined || keyLength < 0 || at + keyLength > bytes.length) return undefined;
    const key = Buffer.from(bytes.buffer, at, keyLength).toString("utf8");
    at += keyLength;
    const valueLength = varint();
    if (valueLength === undefined || valueLength < -1 || at + valueLength > bytes.length) return undefined;
    const value = valueLength === -1 ? null : Buffer.from(bytes.buffer, at, valueLength);
    if (value) at += valueLength;
    out.push({ key, value });
  }
  return out;
}
