// MessageMetadata (one per entry) and SingleMessageMetadata (one per message inside a batch).
import { ProtoMessage, ProtoWriter } from "./protobuf";

export interface EntryMetadata {
  producerName: string;
  sequenceId: number;
  publishTime: number;
  properties?: Record<string, string>;
  partitionKey?: string;
  partitionKeyB64?: boolean;
  orderingKey?: Buffer;
  compression?: number;
  uncompressedSize?: number;
  /** Present only for batches. */
  numMessagesInBatch?: number;
  eventTime?: number;
  deliverAtTime?: number;
  highestSequenceId?: number;
  nullValue?: boolean;
  /** The version of the producer's schema (PRODUCER_SUCCESS), so consumers decode with it. */
  schemaVersion?: Buffer;
}

function writeProperties(w: ProtoWriter, field: number, props: Record<string, string> | undefined): void {
  if (!props) return;
  for (const key in props) {
    const value = props[key];
    if (value !== undefined) w.keyValue(field, key, value);
  }
}

function readProperties(m: ProtoMessage, field: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of m.messages(field)) out[kv.str(1) ?? ""] = kv.str(2) ?? "";
  return out;
}

export function encodeEntryMetadata(md: EntryMetadata): Buffer {
  const w = new ProtoWriter(128);
  w.string(1, md.producerName).varint(2, md.sequenceId).varint(3, md.publishTime);
  writeProperties(w, 4, md.properties);
  if (md.partitionKey !== undefined) w.string(6, md.partitionKey);
  if (md.compression) {
    w.varint(8, md.compression);
    w.varint(9, md.uncompressedSize ?? 0);
  }
  if (md.numMessagesInBatch !== undefined) w.varint(11, md.numMessagesInBatch);
  if (md.eventTime) w.varint(12, md.eventTime);
  if (md.schemaVersion) w.bytes(16, md.schemaVersion);
  if (md.partitionKeyB64) w.varint(17, true);
  if (md.orderingKey) w.bytes(18, md.orderingKey);
  if (md.deliverAtTime) w.varint(19, md.deliverAtTime);
  if (md.highestSequenceId !== undefined && md.highestSequenceId > md.sequenceId)
    w.varint(24, md.highestSequenceId);
  if (md.nullValue) w.varint(25, true);
  return w.finish();
}

export function decodeEntryMetadata(data: Buffer): EntryMetadata {
  const m = new ProtoMessage(data);
  return {
    producerName: m.str(1) ?? "",
    sequenceId: m.num(2),
    publishTime: m.num(3),
    properties: readProperties(m, 4),
    partitionKey: m.str(6),
    compression: m.num(8),
    uncompressedSize: m.num(9),
    numMessagesInBatch: m.has(11) ? m.num(11) : undefined,
    eventTime: m.has(12) ? m.num(12) : undefined,
    partitionKeyB64: m.bool(17),
    orderingKey: m.bytes(18),
    deliverAtTime: m.has(19) ? m.num(19) : undefined,
    highestSequenceId: m.has(24) ? m.num(24) : undefined,
    nullValue: m.bool(25),
    schemaVersion: m.bytes(16),
  };
}

export interface SingleMetadata {
  properties?: Record<string, string>;
  partitionKey?: string;
  partitionKeyB64?: boolean;
  payloadSize: number;
  eventTime?: number;
  orderingKey?: Buffer;
  sequenceId?: number;
  nullValue?: boolean;
}

export function encodeSingleMetadata(md: SingleMetadata): Buffer {
  return writeSingleMetadata(new ProtoWriter(64), md).finish();
}

function writeSingleMetadata(w: ProtoWriter, md: SingleMetadata): ProtoWriter {
  writeProperties(w, 1, md.properties);
  if (md.partitionKey !== undefined) w.string(2, md.partitionKey);
  w.varint(3, md.payloadSize);
  if (md.eventTime) w.varint(5, md.eventTime);
  if (md.partitionKeyB64) w.varint(6, true);
  if (md.orderingKey) w.bytes(7, md.orderingKey);
  if (md.sequenceId !== undefined) w.varint(8, md.sequenceId);
  if (md.nullValue) w.varint(9, true);
  return w;
}

export function decodeSingleMetadata(data: Buffer): SingleMetadata {
  const m = new ProtoMessage(data);
  return {
    properties: readProperties(m, 1),
    partitionKey: m.str(2),
    payloadSize: m.num(3),
    eventTime: m.has(5) ? m.num(5) : undefined,
    partitionKeyB64: m.bool(6),
    orderingKey: m.bytes(7),
    sequenceId: m.has(8) ? m.num(8) : undefined,
    nullValue: m.bool(9),
  };
}

/**
 * Appends one message of a batch payload, [size u32 BE][SingleMessageMetadata][payload], to `w`.
 * `md.payloadSize` is taken from `payload`.
 */
export function appendBatchEntry(w: ProtoWriter, md: SingleMetadata, payload: Buffer): void {
  const at = w.length;
  w.uint32BE(0);
  md.payloadSize = payload.length;
  writeSingleMetadata(w, md);
  w.patchUInt32BE(at, w.length - at - 4);
  w.raw(payload);
}

/** A whole batch payload: for each message [size u32 BE][SingleMessageMetadata][payload]. */
export function encodeBatchPayload(items: { metadata: SingleMetadata; payload: Buffer }[]): Buffer {
  const w = new ProtoWriter(1024);
  for (const { metadata, payload } of items) appendBatchEntry(w, { ...metadata }, payload);
  return w.finish();
}

export function decodeBatchPayload(
  data: Buffer,
  count: number,
): { metadata: SingleMetadata; payload: Buffer }[] {
  const out: { metadata: SingleMetadata; payload: Buffer }[] = [];
  let pos = 0;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > data.length) throw new Error("truncated batch payload");
    const size = data.readUInt32BE(pos);
    pos += 4;
    if (pos + size > data.length) throw new Error("truncated batch metadata");
    const metadata = decodeSingleMetadata(data.subarray(pos, pos + size));
    pos += size;
    if (pos + metadata.payloadSize > data.length) throw new Error("truncated batch message");
    out.push({ metadata, payload: data.subarray(pos, pos + metadata.payloadSize) });
    pos += metadata.payloadSize;
  }
  return out;
}
