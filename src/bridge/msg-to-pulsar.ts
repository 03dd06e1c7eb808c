// A msg -> the Pulsar message pulsar-out publishes (DESIGN §3), and the headers of a Kafka dead-letter copy.
import { isUtf8 } from "node:buffer";
import { jsonText } from "../common/json";
import { BridgeError } from "../common/errors";
import type { OutgoingMessage } from "../pulsar/types";
import { setOwn, type KafkaHeader } from "./record-to-msg";

/**
 * Marker for Kafka header bytes that are not UTF-8 text: the property value is "base64:" followed by the
 * base64 of the bytes. A text value that itself starts with the marker is encoded the same way, so a
 * reader can always tell: strip the marker and decode whenever it is present.
 */
export const BINARY_PROPERTY_MARKER = "base64:";

/**
 * The property (and, on a Kafka dead-letter copy, the header) that carries the exact ordered header list
 * when one property per header name cannot: a JSON array of [name, value] pairs in the order of
 * msg.kafka.headerList, each value encoded as a per-name property is (text as is, other bytes and text that
 * starts with the marker as "base64:" + base64) or null for a header without a value.
 */
export const HEADER_LIST_PROPERTY = "kafka.headers";

/** Provenance properties (opt-in): where the record came from. */
export const PROVENANCE_PROPERTIES = ["kafka.topic", "kafka.partition", "kafka.offset"] as const;

export interface MappingOptions {
  mapHeaders: boolean;
  provenanceProperties: boolean;
  /** Writes msg.payload with a schema (pulsar-out's schema option) instead of as its bytes. */
  encodePayload?: (payload: unknown) => Buffer;
}

interface MsgLike {
  payload?: unknown;
  key?: unknown;
  properties?: unknown;
  eventTime?: unknown;
  orderingKey?: unknown;
  deliverAt?: unknown;
  deliverAfter?: unknown;
  kafka?: {
    topic?: unknown;
    partition?: unknown;
    offset?: unknown;
    timestamp?: unknown;
    headers?: unknown;
    headerList?: unknown;
  };
}

const fail = (what: string) => new BridgeError("pulsar-out.errors.payload", what, false);

/** Body bytes: Buffer as is, string as UTF-8, typed arrays as their bytes, other values as JSON. */
export function payloadBytes(payload: unknown): Buffer {
  if (payload === null || payload === undefined) return Buffer.alloc(0);
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === "string") return Buffer.from(payload, "utf8");
  if (ArrayBuffer.isView(payload)) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (payload instanceof ArrayBuffer) return Buffer.from(payload);
  let json: string | undefined;
  try {
    json = jsonText(payload);
  } catch (err) {
    throw fail(`msg.payload cannot be serialised as JSON: ${(err as Error).message}`);
  }
  if (json === undefined) throw fail(`msg.payload of type ${typeof payload} cannot be serialised`);
  return Buffer.from(json, "utf8");
}

/** A header value (or a non-string msg.properties value) as property text, by the marker scheme above. */
export function headerToProperty(value: unknown): string {
  if (Buffer.isBuffer(value)) {
    return isUtf8(value)
      ? headerToProperty(value.toString("utf8"))
      : BINARY_PROPERTY_MARKER + value.toString("base64");
  }
  const text = typeof value === "string" ? value : (jsonText(value) ?? "");
  return text.startsWith(BINARY_PROPERTY_MARKER)
    ? BINARY_PROPERTY_MARKER + Buffer.from(text, "utf8").toString("base64")
    : text;
}

/** The exact header list as the JSON that HEADER_LIST_PROPERTY carries. */
export function headerListJson(list: readonly KafkaHeader[]): string {
  return JSON.stringify(list.map((h) => [h.key, h.value == null ? null : headerToProperty(h.value)]));
}

const hasOwn = (o: object, name: string) => Object.prototype.hasOwnProperty.call(o, name);

/** A name that a property of higher precedence (ours, or msg.properties) takes from a header. */
function isTaken(name: string, o: MappingOptions, userProperties: object | undefined): boolean {
  if (name.startsWith("kafka.")) {
    if (name === HEADER_LIST_PROPERTY) return true;
    if (o.provenanceProperties && (PROVENANCE_PROPERTIES as readonly string[]).includes(name)) return true;
  }
  return userProperties !== undefined && hasOwn(userProperties, name);
}

/** The msg.kafka.headers map as a list (an array value: a repeated name), for msgs without headerList. */
export function headerListFromMap(map: unknown): unknown[] {
  const out: KafkaHeader[] = [];
  if (map && typeof map === "object") {
    for (const key of Object.keys(map)) {
      const v = (map as Record<string, unknown>)[key];
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const one of v) out.push({ key, value: one as KafkaHeader["value"] });
      else out.push({ key, value: v as KafkaHeader["value"] });
    }
  }
  return out;
}

export function headerAt(list: unknown[], i: number): KafkaHeader {
  const h = list[i] as { key?: unknown } | null;
  if (!h || typeof h !== "object" || typeof h.key !== "string")
    throw fail(`msg.kafka.headerList[${i}] is not a { key, value } header`);
  return h as KafkaHeader;
}

/**
 * Header properties, from msg.kafka.headerList (else the msg.kafka.headers map): one per name with its last
 * value (a header whose last value is null has none), and, when that cannot say everything (a repeated
 * name, a null value, or a name that a provenance property, HEADER_LIST_PROPERTY itself or msg.properties
 * takes), HEADER_LIST_PROPERTY with the exact list.
 */
function headerProperties(
  kafka: NonNullable<MsgLike["kafka"]>,
  o: MappingOptions,
  userProperties: object | undefined,
): Record<string, string> {
  const properties: Record<string, string> = {};
  const list = Array.isArray(kafka.headerList)
    ? (kafka.headerList as unknown[])
    : headerListFromMap(kafka.headers);
  let i = 0;
  // The usual case: distinct names with values, none taken: one property each, nothing else to build.
  for (; i < list.length; i++) {
    const h = headerAt(list, i);
    if (h.value === null || h.value === undefined) break;
    if (hasOwn(properties, h.key) || isTaken(h.key, o, userProperties)) break;
    setOwn(properties, h.key, headerToProperty(h.value));
  }
  if (i === list.length) return properties;
  for (; i < list.length; i++) {
    const h = headerAt(list, i);
    if (h.value === null || h.value === undefined) delete properties[h.key];
    else setOwn(properties, h.key, headerToProperty(h.value));
  }
  properties[HEADER_LIST_PROPERTY] = headerListJson(list as KafkaHeader[]);
  return properties;
}

/**
 * A msg -> the Pulsar message. Properties, by precedence: msg.properties, then the provenance properties,
 * then the headers (a header a higher one takes is still in HEADER_LIST_PROPERTY). `msg.payload === null`
 * (a Kafka tombstone) is a message without a value (null_value), unlike an empty string or Buffer.
 */
export function msgToPulsar(msg: MsgLike, o: MappingOptions): OutgoingMessage {
  const out: OutgoingMessage = {
    payload:
      // with a schema, a missing payload is refused by it (an empty body would name the schema's version)
      o.encodePayload && msg.payload !== null ? o.encodePayload(msg.payload) : payloadBytes(msg.payload),
  };
  if (msg.payload === null) out.nullValue = true;
  if (msg.key !== undefined && msg.key !== null) {
    if (Buffer.isBuffer(msg.key)) out.key = msg.key;
    else if (typeof msg.key === "string" || typeof msg.key === "number") out.key = String(msg.key);
    else throw fail("msg.key must be a string or a Buffer");
  }
  let userProperties: Record<string, unknown> | undefined;
  if (msg.properties !== undefined && msg.properties !== null) {
    if (typeof msg.properties !== "object" || Array.isArray(msg.properties))
      throw fail("msg.properties must be an object");
    userProperties = msg.properties as Record<string, unknown>;
  }
  const kafka = msg.kafka;
  const properties =
    o.mapHeaders && kafka ? headerProperties(kafka, o, userProperties) : ({} as Record<string, string>);
  if (o.provenanceProperties && kafka) {
    properties["kafka.topic"] = String(kafka.topic);
    properties["kafka.partition"] = String(kafka.partition);
    properties["kafka.offset"] = String(kafka.offset);
  }
  if (userProperties) {
    for (const name of Object.keys(userProperties)) {
      const value = userProperties[name];
      if (value === undefined) continue;
      setOwn(properties, name, typeof value === "string" ? value : headerToProperty(value));
    }
  }
  if (Object.keys(properties).length > 0) out.properties = properties;
  out.eventTime = timeOf(msg.eventTime, "eventTime") ?? kafkaTime(kafka?.timestamp);
  if (msg.orderingKey !== undefined && msg.orderingKey !== null) {
    out.orderingKey = Buffer.isBuffer(msg.orderingKey)
      ? msg.orderingKey
      : Buffer.from(
          typeof msg.orderingKey === "string" ? msg.orderingKey : (jsonText(msg.orderingKey) ?? ""),
          "utf8",
        );
  }
  const deliverAt = timeOf(msg.deliverAt, "deliverAt");
  if (deliverAt !== undefined) out.deliverAt = deliverAt;
  if (msg.deliverAfter !== undefined && msg.deliverAfter !== null) {
    const ms = Number(msg.deliverAfter);
    if (!Number.isFinite(ms) || ms < 0)
      throw fail(
        `msg.deliverAfter must be a number of milliseconds, not ${JSON.stringify(msg.deliverAfter)}`,
      );
    out.deliverAfterMs = ms;
  }
  return out;
}

export function timeOf(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const t =
    v instanceof Date ? v.getTime() : typeof v === "string" && !/^\d+$/.test(v) ? Date.parse(v) : Number(v);
  if (!Number.isFinite(t) || t < 0) throw fail(`msg.${field} is not a valid time: ${shown(v)}`);
  return Math.trunc(t);
}

function shown(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (v instanceof Date) return "an invalid Date";
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  return `a value of type ${typeof v}`;
}

/** The default event time: the Kafka timestamp; none when the record has none (-1, or any negative). */
export function kafkaTime(v: unknown): number | undefined {
  if (typeof v === "number" && v < 0) return undefined;
  if (typeof v === "string" && v.startsWith("-") && Number(v) < 0) return undefined;
  return timeOf(v, "kafka.timestamp");
}

/**
 * An ordered header list (msg.kafka.headerList) as kafkajs producer headers, for the Kafka dead-letter copy.
 * A repeated name becomes an array, which kafkajs writes as repeated headers in the list's order (grouped by
 * name, as kafkajs read them). kafkajs cannot write a header without a value (its record encoder measures
 * each value with Buffer.byteLength, which throws for null): such a header is written with an empty value,
 * and a HEADER_LIST_PROPERTY header with the exact list (the JSON above) is added, also when the record has
 * a header of that name itself, so a reader can rely on it: when a copy has that header, its last value is
 * the exact list. `extra` headers (kafka-in's dlq.* fields) come after the record's own: a record header of
 * the same name is kept, and the extra value is the last of that name (kafkajs writes all values of a name
 * where the name first appears).
 */
export function kafkaHeadersFromList(
  list: readonly KafkaHeader[],
  extra?: Record<string, string>,
): Record<string, Buffer | string | (Buffer | string)[]> {
  const out: Record<string, Buffer | string | (Buffer | string)[]> = {};
  const add = (name: string, value: Buffer | string) => {
    const had = hasOwn(out, name) ? out[name] : undefined;
    setOwn(out, name, had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value]);
  };
  let exact = false;
  for (const h of list) {
    if (h.value === null || h.key === HEADER_LIST_PROPERTY) exact = true;
    add(h.key, h.value ?? Buffer.alloc(0));
  }
  if (exact) add(HEADER_LIST_PROPERTY, headerListJson(list));
  if (extra) for (const name of Object.keys(extra)) add(name, extra[name]);
  return out;
}
