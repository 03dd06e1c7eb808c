// A msg -> the Kafka record kafka-out writes (the reverse of record-to-msg, and of pulsar-out's mapping of
// headers to properties, so that Kafka -> Pulsar -> Kafka keeps keys, bytes, headers and timestamps):
// - value: msg.payload as pulsar-out takes it (Buffer, text, JSON of anything else); null: a tombstone;
// - key: a string, a Buffer, or a number's digits; none when null or undefined;
// - headers: msg.kafka.headerList, else the msg.kafka.headers map (a msg from kafka-in), else
//   msg.properties (a msg from pulsar-in: each property a header, "base64:" values decoded to their bytes,
//   the kafka.headers property's exact list in place of the per-name ones); msg.properties a msg from
//   kafka-in also has are added after its headers, unless it has a header of that name;
// - timestamp: msg.eventTime, else msg.kafka.timestamp, else none (the producer's clock);
// - partition: msg.partition when it is set, else the key's murmur2 hash as Kafka's Java client does.
import { BridgeError } from "../common/errors";
import { parseJson } from "../common/json";
import type { KafkaHeader } from "./record-to-msg";
import {
  BINARY_PROPERTY_MARKER,
  HEADER_LIST_PROPERTY,
  headerAt,
  headerListFromMap,
  kafkaHeadersFromList,
  kafkaTime,
  payloadBytes,
  timeOf,
} from "./msg-to-pulsar";

export interface KafkaRecordOut {
  key: Buffer | string | null;
  value: Buffer | null;
  headers: Record<string, Buffer | string | (Buffer | string)[]>;
  /** Milliseconds since the epoch, as kafkajs takes it (text); undefined: the producer's clock. */
  timestamp?: string;
  partition?: number;
}

interface MsgLike {
  payload?: unknown;
  key?: unknown;
  properties?: unknown;
  eventTime?: unknown;
  partition?: unknown;
  kafka?: { timestamp?: unknown; headers?: unknown; headerList?: unknown };
}

const fail = (what: string) => new BridgeError("kafka-out.errors.record", what, false);

/** A property's text as header bytes: "base64:" values are the bytes they encode (msg-to-pulsar's marker). */
export function propertyToHeader(text: string): Buffer {
  return text.startsWith(BINARY_PROPERTY_MARKER)
    ? Buffer.from(text.slice(BINARY_PROPERTY_MARKER.length), "base64")
    : Buffer.from(text, "utf8");
}

/** The value of a msg.properties entry as header bytes (text as property, anything else as its JSON). */
function propertyValue(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  return typeof v === "string" ? propertyToHeader(v) : payloadBytes(v);
}

/** The header list msg.properties stand for: the exact kafka.headers list when there, else one per name. */
function headersFromProperties(properties: Record<string, unknown>): KafkaHeader[] {
  const listed = properties[HEADER_LIST_PROPERTY];
  let list: [string, string | null][] | undefined;
  if (typeof listed === "string") {
    let parsed: unknown;
    try {
      parsed = parseJson(listed);
    } catch {
      parsed = undefined;
    }
    if (
      Array.isArray(parsed) &&
      parsed.every(
        (p) =>
          Array.isArray(p) &&
          p.length === 2 &&
          typeof p[0] === "string" &&
          (p[1] === null || typeof p[1] === "string"),
      )
    )
      list = parsed as [string, string | null][];
  }
  // The exact list stands for a name only while the flow left that name's property as pulsar-out wrote it
  // (the last value of the name, or none when that was null): a property the flow set or deleted wins, as
  // msg.properties wins in pulsar-out.
  const last = new Map<string, string | null>();
  for (const [key, v] of list ?? []) last.set(key, v);
  const listedNames = new Set<string>();
  for (const [name, v] of last) {
    const now = properties[name];
    if (now === undefined ? v === null : now === v) listedNames.add(name);
  }
  const out: KafkaHeader[] = (list ?? [])
    .filter(([key]) => listedNames.has(key))
    .map(([key, v]) => ({ key, value: v === null ? null : propertyToHeader(v) }));
  for (const name of Object.keys(properties)) {
    const v = properties[name];
    if (v === undefined || (list && (name === HEADER_LIST_PROPERTY || listedNames.has(name)))) continue;
    out.push({ key: name, value: propertyValue(v) });
  }
  return out;
}

export function msgToKafka(msg: MsgLike, o: { mapHeaders: boolean }): KafkaRecordOut {
  const value = msg.payload === null ? null : payloadBytes(msg.payload);
  let key: Buffer | string | null = null;
  if (msg.key !== undefined && msg.key !== null) {
    if (Buffer.isBuffer(msg.key) || typeof msg.key === "string") key = msg.key;
    else if (typeof msg.key === "number" || typeof msg.key === "bigint") key = String(msg.key);
    else throw fail("msg.key must be a string, a Buffer or a number");
  }
  let properties: Record<string, unknown> | undefined;
  if (msg.properties !== undefined && msg.properties !== null) {
    if (typeof msg.properties !== "object" || Array.isArray(msg.properties))
      throw fail("msg.properties must be an object");
    properties = msg.properties as Record<string, unknown>;
  }
  let list: KafkaHeader[] = [];
  if (o.mapHeaders) {
    const kafka = msg.kafka;
    const fromKafka = Array.isArray(kafka?.headerList)
      ? (kafka.headerList as unknown[])
      : kafka?.headers
        ? headerListFromMap(kafka.headers)
        : undefined;
    if (fromKafka) {
      list = fromKafka.map((_, i) => headerAt(fromKafka, i));
      if (properties) {
        const named = new Set(list.map((h) => h.key));
        for (const h of headersFromProperties(properties)) if (!named.has(h.key)) list.push(h);
      }
    } else if (properties) list = headersFromProperties(properties);
  }
  const out: KafkaRecordOut = { key, value, headers: kafkaHeadersFromList(list.map(headerBytes)) };
  const time = timeOf(msg.eventTime, "eventTime") ?? kafkaTime(msg.kafka?.timestamp);
  if (time !== undefined) out.timestamp = String(time);
  if (msg.partition !== undefined && msg.partition !== null) {
    if (typeof msg.partition !== "number" || !Number.isInteger(msg.partition) || msg.partition < 0)
      throw fail(
        `msg.partition is not a partition number: ${typeof msg.partition === "number" ? String(msg.partition) : `a ${typeof msg.partition}`}`,
      );
    out.partition = msg.partition;
  }
  return out;
}

/** A header of a msg (any value a flow may put there) as bytes, or null for none. */
function headerBytes(h: KafkaHeader): KafkaHeader {
  const v: unknown = h.value;
  if (v === null || v === undefined || Buffer.isBuffer(v)) return { key: h.key, value: v ?? null };
  return { key: h.key, value: typeof v === "string" ? Buffer.from(v, "utf8") : payloadBytes(v) };
}
