// A Kafka record -> the msg kafka-in emits (DESIGN §3).
import { isUtf8 } from "node:buffer";
import { randomFillSync } from "node:crypto";
import { BridgeError } from "../common/errors";
import { jsonText, parseJson, setOwn } from "../common/json";
import { SchemaDecodeError, type SchemaDecoder, type SchemaInfo } from "../registry/decoder";
import { wireHeaders } from "../kafka/header-order";

export { parseJson, setOwn };

export type ValueFormat = "auto" | "string" | "json" | "buffer" | "registry";
export type KeyFormat = "auto" | "string" | "buffer" | "registry";

/** How values and keys are decoded: the formats, and for "registry" the schema registry's decoder. */
export interface Formats {
  value: ValueFormat;
  key: KeyFormat;
  registry?: SchemaDecoder;
}
export type TimestampType = "CreateTime" | "LogAppendTime";

/** A header value as the msg carries it: UTF-8 text as string, other bytes as Buffer, null when Kafka has none. */
export type HeaderValue = string | Buffer | null;

/** One Kafka header, as `msg.kafka.headerList` holds it. */
export interface KafkaHeader {
  key: string;
  value: HeaderValue;
}

type RawHeaderValue = Buffer | string | null;

export interface KafkaRecordLike {
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  offset: string;
  /**
   * As kafkajs decodes them: one entry per name in order of first appearance, an array when the name is
   * repeated, null for a header written without a value.
   */
  headers?: Record<string, RawHeaderValue | RawHeaderValue[] | undefined>;
  /**
   * kafkajs puts its record batch's context on every record of a v2 batch (all Kafka 4 serves):
   * `timestampType` 1 is LogAppendTime, 0 CreateTime.
   */
  batchContext?: { timestampType?: number };
  /** Records of legacy message sets (magic 0 and 1) carry the timestamp type as bit 3 of their attributes. */
  attributes?: number;
}

export interface KafkaProvenance {
  topic: string;
  partition: number;
  offset: string;
  /** Milliseconds since the epoch; -1 when the record has none. */
  timestamp: number;
  timestampType: TimestampType;
  /** Name -> its last value (null when that value is null). */
  headers: Record<string, HeaderValue>;
  /** Every header in the order kafkajs gives them, repeated names and null values kept. */
  headerList: KafkaHeader[];
  groupId: string;
  /** Added by kafka-in: which try of the record this is, and the identity of its Kafka cluster. */
  attempt?: number;
  cluster?: string;
  /**
   * Added by kafka-in on Kafka 2.8 and later: the id of the topic the record was read from (a topic deleted
   * and created again under its name has a new one), as `kafka-topics.sh --describe` prints it.
   */
  topicId?: string;
  /**
   * Only when an effectively-once pulsar-out is deployed: the pass of the partition this msg belongs to
   * (a replay after a failure starts a new one) and the id of the kafka-in node that emitted it.
   */
  epoch?: number;
  source?: string;
  /** The registry schema the value (or key) was decoded with (format "registry"). */
  schema?: SchemaInfo;
  keySchema?: SchemaInfo;
}

export interface RecordMsg {
  payload: unknown;
  topic: string;
  key: string | Buffer | null;
  kafka: KafkaProvenance;
}

/** UTF-8 text when the bytes are valid UTF-8 (so they round-trip exactly), else the bytes. */
function auto(b: Buffer): string | Buffer {
  return isUtf8(b) ? b.toString("utf8") : b;
}

/** What a registry decoder's failure means for the record: which error, and whether retrying helps. */
const REGISTRY_FAILURES = {
  wire: ["kafka-in.errors.schema-wire", false],
  unknown: ["kafka-in.errors.schema-unknown", false],
  schema: ["kafka-in.errors.schema-invalid", false],
  body: ["kafka-in.errors.schema-decode", false],
  unavailable: ["kafka-in.errors.schema-registry", true],
  refused: ["kafka-in.errors.schema-refused", false],
} as const;

function fromRegistry(
  bytes: Buffer,
  registry: SchemaDecoder | undefined,
  subject: string,
): { value: unknown; schema: SchemaInfo } {
  if (!registry)
    throw new BridgeError(
      "kafka-in.errors.no-registry",
      "the schema registry format needs a schema-registry node",
      false,
    );
  try {
    return registry.decode(bytes, subject);
  } catch (err) {
    if (!(err instanceof SchemaDecodeError)) throw err;
    const [key, retriable] = REGISTRY_FAILURES[err.failure];
    throw new BridgeError(key, err.message, retriable);
  }
}

/** A decoded registry key as msg.key: text and numbers as text, bytes as they are, anything else as its JSON text. */
function keyText(value: unknown): string | Buffer | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string" || Buffer.isBuffer(value)) return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean")
    return String(value);
  return jsonText(value) ?? null;
}

export function decodeValue(value: Buffer | null, format: ValueFormat): unknown {
  if (value === null) return null;
  switch (format) {
    case "buffer":
      return value;
    case "string":
      return value.toString("utf8");
    case "json":
      try {
        return parseJson(value.toString("utf8"));
      } catch (err) {
        throw new BridgeError(
          "kafka-in.errors.json",
          `the record value is not valid JSON: ${(err as Error).message}`,
          false,
        );
      }
    default:
      return auto(value);
  }
}

function decodeKey(key: Buffer | null, format: KeyFormat): string | Buffer | null {
  if (key === null) return null;
  if (format === "buffer") return key;
  if (format === "string") return key.toString("utf8");
  return auto(key);
}

function headerValue(v: RawHeaderValue): HeaderValue {
  return v === null || typeof v === "string" ? v : auto(v);
}

/**
 * The record's headers as the msg carries them: `headers`, name -> last value, and `headerList`, every
 * header with repeated names and null values kept, in the order they were written (see
 * kafka/header-order.ts: kafkajs groups a repeated name at its first appearance and lists names that are
 * array indices first; with `record`, its bytes tell the order; without, kafkajs's order stands).
 */
export function decodeHeaders(
  raw: KafkaRecordLike["headers"],
  record?: Pick<KafkaRecordLike, "key" | "value">,
): {
  headers: Record<string, HeaderValue>;
  headerList: KafkaHeader[];
} {
  const headers: Record<string, HeaderValue> = {};
  const headerList: KafkaHeader[] = [];
  if (raw) fillHeaders(raw, headers, headerList, record);
  return { headers, headerList };
}

/** A name JavaScript lists before the others in an object (an array index). */
const INDEX_NAME = /^(?:0|[1-9]\d{0,9})$/;

function fillHeaders(
  raw: NonNullable<KafkaRecordLike["headers"]>,
  headers: Record<string, HeaderValue>,
  headerList: KafkaHeader[],
  record?: Pick<KafkaRecordLike, "key" | "value">,
): void {
  const grouped: [string, RawHeaderValue[]][] = [];
  let regrouped = false;
  for (const key of Object.keys(raw)) {
    const v = raw[key];
    if (v === undefined) continue;
    // kafkajs groups repeats by reading obj[name], which for a name such as "constructor" or "__proto__"
    // finds Object.prototype's member first and keeps it as a first element: not a header.
    const values = Array.isArray(v)
      ? v.filter((one) => one === null || typeof one === "string" || Buffer.isBuffer(one))
      : [v];
    if (values.length === 0) continue;
    if (Array.isArray(v) || (INDEX_NAME.test(key) && Number(key) < 2 ** 32 - 1)) regrouped = true;
    grouped.push([key, values]);
  }
  const list =
    (regrouped && grouped.length > 1 && record ? inWrittenOrder(grouped, record) : undefined) ??
    grouped.flatMap(([key, values]) => values.map((value) => ({ key, value })));
  for (const { key, value } of list) {
    const h = headerValue(value);
    headerList.push({ key, value: h });
    setOwn(headers, key, h);
  }
}

/** kafkajs's grouped headers in the order the record's bytes list them; undefined if they disagree. */
function inWrittenOrder(
  grouped: [string, RawHeaderValue[]][],
  record: Pick<KafkaRecordLike, "key" | "value">,
): { key: string; value: RawHeaderValue }[] | undefined {
  const wire = wireHeaders(record);
  if (!wire) return undefined;
  const queues = new Map(grouped.map(([key, values]) => [key, { values, next: 0 }]));
  const out: { key: string; value: RawHeaderValue }[] = [];
  for (const h of wire) {
    const q = queues.get(h.key);
    const value = q?.values[q.next];
    if (!q || value === undefined) return undefined;
    q.next++;
    const same =
      value === null
        ? h.value === null
        : h.value !== null && h.value.equals(typeof value === "string" ? Buffer.from(value) : value);
    if (!same) return undefined;
    out.push({ key: h.key, value });
  }
  for (const q of queues.values()) if (q.next !== q.values.length) return undefined;
  return out;
}

function timestampTypeOf(record: KafkaRecordLike): TimestampType {
  const context = record.batchContext;
  if (context) return context.timestampType === 1 ? "LogAppendTime" : "CreateTime";
  return ((record.attributes ?? 0) & 0x08) !== 0 ? "LogAppendTime" : "CreateTime";
}

/**
 * The msg fields for a record. A value the format cannot decode (json) throws a BridgeError; the caller
 * reports it with the raw record and treats the record as failed, never as dropped. `provenance` (kafka-in's
 * try count and cluster identity) is added to msg.kafka, in the one object literal (this runs per record).
 */
export function recordToMsg(
  record: KafkaRecordLike,
  where: { topic: string; partition: number; groupId: string },
  formats: Formats,
  provenance?: { attempt: number; cluster: string },
): RecordMsg {
  let payload: unknown;
  let schema: SchemaInfo | undefined;
  if (formats.value === "registry" && record.value !== null) {
    const d = fromRegistry(record.value, formats.registry, `${where.topic}-value`);
    payload = d.value;
    schema = d.schema;
  } else payload = decodeValue(record.value, formats.value);
  let key: string | Buffer | null;
  let keySchema: SchemaInfo | undefined;
  if (formats.key === "registry" && record.key !== null) {
    const d = fromRegistry(record.key, formats.registry, `${where.topic}-key`);
    key = keyText(d.value);
    keySchema = d.schema;
  } else key = decodeKey(record.key, formats.key);
  // Legacy records of magic 0 have no timestamp at all.
  const timestamp = record.timestamp === undefined ? -1 : Number(record.timestamp);
  const headers: Record<string, HeaderValue> = {};
  const headerList: KafkaHeader[] = [];
  if (record.headers) fillHeaders(record.headers, headers, headerList, record);
  const kafka: KafkaProvenance = {
    topic: where.topic,
    partition: where.partition,
    offset: record.offset,
    timestamp,
    timestampType: timestampTypeOf(record),
    headers,
    headerList,
    groupId: where.groupId,
  };
  if (provenance) {
    kafka.attempt = provenance.attempt;
    kafka.cluster = provenance.cluster;
  }
  if (schema) kafka.schema = schema;
  if (keySchema) kafka.keySchema = keySchema;
  return { payload, topic: where.topic, key, kafka };
}

/**
 * Msg ids like Node-RED's (16 hex digits, 64 random bits), cut from a pool of random bytes: one id per
 * record is on the hot path, where RED.util.generateId() builds each from eight Math.random() strings.
 */
export function msgIdSource(): () => string {
  const pool = Buffer.allocUnsafe(8 * 512);
  let at = pool.length;
  return () => {
    if (at === pool.length) {
      randomFillSync(pool);
      at = 0;
    }
    const id = pool.toString("hex", at, at + 8);
    at += 8;
    return id;
  };
}
