// A Kafka record -> the msg kafka-in emits (DESIGN §3).
import { isUtf8 } from "node:buffer";
import { randomFillSync } from "node:crypto";
import { BridgeError } from "../common/errors";

export type ValueFormat = "auto" | "string" | "json" | "buffer";
export type KeyFormat = "auto" | "string" | "buffer";

export interface KafkaRecordLike {
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  offset: string;
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

export interface KafkaProvenance {
  topic: string;
  partition: number;
  offset: string;
  timestamp: number;
  headers: Record<string, string | Buffer>;
  groupId: string;
  /** Added by kafka-in: which try of the record this is, and the identity of its Kafka cluster. */
  attempt?: number;
  cluster?: string;
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

function decodeValue(value: Buffer | null, format: ValueFormat): unknown {
  if (value === null) return null;
  switch (format) {
    case "buffer":
      return value;
    case "string":
      return value.toString("utf8");
    case "json":
      try {
        return JSON.parse(value.toString("utf8")) as unknown;
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

/** Header values: UTF-8 text as string, other bytes as Buffer; a header repeated keeps its last value. */
export function decodeHeaders(headers: KafkaRecordLike["headers"]): Record<string, string | Buffer> {
  const out: Record<string, string | Buffer> = {};
  if (!headers) return out;
  for (const name of Object.keys(headers)) {
    let v = headers[name];
    if (Array.isArray(v)) v = v[v.length - 1];
    if (v === undefined) continue;
    out[name] = typeof v === "string" ? v : auto(v);
  }
  return out;
}

/**
 * The msg fields for a record. A value the format cannot decode (json) throws a BridgeError; the caller
 * reports it with the raw record and treats the record as failed, never as dropped. `provenance` (kafka-in's
 * try count and cluster identity) is added to msg.kafka, in the one object literal (this runs per record).
 */
export function recordToMsg(
  record: KafkaRecordLike,
  where: { topic: string; partition: number; groupId: string },
  formats: { value: ValueFormat; key: KeyFormat },
  provenance?: { attempt: number; cluster: string },
): RecordMsg {
  const payload = decodeValue(record.value, formats.value);
  const key = decodeKey(record.key, formats.key);
  const timestamp = Number(record.timestamp);
  const headers = decodeHeaders(record.headers);
  const kafka: KafkaProvenance = {
    topic: where.topic,
    partition: where.partition,
    offset: record.offset,
    timestamp,
    headers,
    groupId: where.groupId,
  };
  if (provenance) {
    kafka.attempt = provenance.attempt;
    kafka.cluster = provenance.cluster;
  }
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
