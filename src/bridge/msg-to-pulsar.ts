// A msg -> the Pulsar message pulsar-out publishes (DESIGN §3).
import { isUtf8 } from "node:buffer";
import { BridgeError } from "../common/errors";
import type { OutgoingMessage } from "../pulsar/types";

/**
 * Marker for Kafka header bytes that are not UTF-8 text: the property value is "base64:" followed by the
 * base64 of the bytes. A text value that itself starts with the marker is encoded the same way, so a
 * reader can always tell: strip the marker and decode whenever it is present.
 */
export const BINARY_PROPERTY_MARKER = "base64:";

export interface MappingOptions {
  mapHeaders: boolean;
  provenanceProperties: boolean;
}

interface MsgLike {
  payload?: unknown;
  key?: unknown;
  properties?: unknown;
  eventTime?: unknown;
  orderingKey?: unknown;
  deliverAt?: unknown;
  deliverAfter?: unknown;
  kafka?: { topic?: unknown; partition?: unknown; offset?: unknown; timestamp?: unknown; headers?: unknown };
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
    json = JSON.stringify(payload);
  } catch (err) {
    throw fail(`msg.payload cannot be serialised as JSON: ${(err as Error).message}`);
  }
  if (json === undefined) throw fail(`msg.payload of type ${typeof payload} cannot be serialised`);
  return Buffer.from(json, "utf8");
}

export function headerToProperty(value: unknown): string {
  if (Buffer.isBuffer(value)) {
    return isUtf8(value)
      ? headerToProperty(value.toString("utf8"))
      : BINARY_PROPERTY_MARKER + value.toString("base64");
  }
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? "");
  return text.startsWith(BINARY_PROPERTY_MARKER)
    ? BINARY_PROPERTY_MARKER + Buffer.from(text, "utf8").toString("base64")
    : text;
}

function timeOf(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const t =
    v instanceof Date ? v.getTime() : typeof v === "string" && !/^\d+$/.test(v) ? Date.parse(v) : Number(v);
  if (!Number.isFinite(t) || t < 0) throw fail(`msg.${field} is not a valid time: ${JSON.stringify(v)}`);
  return Math.trunc(t);
}

export function msgToPulsar(msg: MsgLike, o: MappingOptions): OutgoingMessage {
  const out: OutgoingMessage = { payload: payloadBytes(msg.payload) };
  if (msg.key !== undefined && msg.key !== null) {
    if (Buffer.isBuffer(msg.key)) out.key = msg.key;
    else if (typeof msg.key === "string" || typeof msg.key === "number") out.key = String(msg.key);
    else throw fail("msg.key must be a string or a Buffer");
  }
  const properties: Record<string, string> = {};
  const kafka = msg.kafka;
  if (o.mapHeaders && kafka?.headers && typeof kafka.headers === "object") {
    for (const [name, value] of Object.entries(kafka.headers as Record<string, unknown>))
      properties[name] = headerToProperty(value);
  }
  if (o.provenanceProperties && kafka) {
    properties["kafka.topic"] = String(kafka.topic);
    properties["kafka.partition"] = String(kafka.partition);
    properties["kafka.offset"] = String(kafka.offset);
  }
  if (msg.properties !== undefined && msg.properties !== null) {
    if (typeof msg.properties !== "object" || Array.isArray(msg.properties))
      throw fail("msg.properties must be an object");
    for (const [name, value] of Object.entries(msg.properties as Record<string, unknown>)) {
      if (value === undefined) continue;
      properties[name] = typeof value === "string" ? value : headerToProperty(value);
    }
  }
  if (Object.keys(properties).length > 0) out.properties = properties;
  out.eventTime = timeOf(msg.eventTime, "eventTime") ?? timeOf(kafka?.timestamp, "kafka.timestamp");
  if (msg.orderingKey !== undefined && msg.orderingKey !== null) {
    out.orderingKey = Buffer.isBuffer(msg.orderingKey)
      ? msg.orderingKey
      : Buffer.from(
          typeof msg.orderingKey === "string" ? msg.orderingKey : JSON.stringify(msg.orderingKey),
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
