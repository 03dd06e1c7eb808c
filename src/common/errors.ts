// The nodes' errors: one small hierarchy with a catalog key (which kind of error; each exists in the en-US
// catalogs) and a `retriable` flag, and one funnel from anything thrown to what the status and the log show.
import { PulsarError } from "../pulsar/errors";

export class BridgeError extends Error {
  constructor(
    /** Catalog key, e.g. "pulsar-out.errors.invalid-topic". */
    readonly key: string,
    message: string,
    readonly retriable: boolean,
  ) {
    super(message);
    this.name = "BridgeError";
  }
}

export class ConfigurationError extends BridgeError {
  constructor(key: string, message: string) {
    super(key, message, false);
    this.name = "ConfigurationError";
  }
}

export interface DescribedError {
  message: string;
  /** Whether trying again can help (a broker away, a timeout) or not (bad configuration, refused access). */
  retriable: boolean;
}

/** Anything thrown -> the message the status and the log show, and whether a retry can help. */
export function describeError(err: unknown): DescribedError {
  if (err instanceof BridgeError || err instanceof PulsarError)
    return { message: err.message, retriable: err.retriable };
  if (err instanceof Error) {
    // kafkajs errors carry `retriable`
    const retriable = (err as { retriable?: unknown }).retriable === true;
    return { message: err.message, retriable };
  }
  return { message: String(err), retriable: false };
}

/**
 * An error message short enough for a node's status (the log keeps it whole): the Java class names a
 * broker puts before its reasons dropped ("org.apache...IncompatibleSchemaException: "), whitespace
 * collapsed, what follows "caused by" (the same again) left out, then cut to `max` characters.
 */
export function statusText(message: string, max = 80): string {
  const text = message
    .replace(/\b(?:[a-z][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error): /g, "")
    .split(/\s+caused by\s/)[0]
    .replace(/\s+/g, " ")
    .trim();
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/**
 * What a failure is about, for the failure policy:
 * - "record": this record can never be delivered as it is (it does not decode, it is too big, its msg
 *   renders an invalid topic or has no provenance): a dead-letter copy is the way out;
 * - "destination": the deployment refuses every record (authorization, a missing tenant, namespace or
 *   topic, deduplication off, a configuration error): dead-lettering would bury good records, so the
 *   partition waits and tries again until the user fixes it;
 * - "transient": anything else, including untyped errors (a function node's throw may be transient): tried
 *   again within the policy's bound.
 */
export type FailureScope = "record" | "destination" | "transient";

const RECORD_KEYS = new Set([
  "kafka-in.errors.json",
  "kafka-in.errors.schema-wire",
  "kafka-in.errors.schema-unknown",
  "kafka-in.errors.schema-invalid",
  "kafka-in.errors.schema-decode",
  "pulsar-out.errors.payload",
  "pulsar-out.errors.schema-payload",
  "pulsar-out.errors.invalid-topic",
  "pulsar-out.errors.template",
  "pulsar-out.errors.no-provenance",
  "pulsar-out.errors.split-record",
  "kafka-out.errors.record",
  "kafka-out.errors.invalid-topic",
  "kafka-out.errors.template",
  "pulsar-out.errors.out-of-order",
  "pulsar-out.errors.unproven-duplicate",
  "kafka-window.errors.not-a-number",
  "kafka-window.errors.no-time",
  "kafka-window.errors.too-many-windows",
  "kafka-window.errors.expression",
  "kafka-window.errors.out-of-order",
  "kafka-window.errors.split-record",
  "kafka-window.errors.state-too-large",
]);
const RECORD_CODES = new Set(["MessageTooBig", "InvalidTopicName"]);
/** Kafka's answers about the record itself (kafkajs's protocol error types). */
const RECORD_KAFKA_TYPES = new Set([
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_RECORD",
  "CORRUPT_MESSAGE",
  // a timestamp outside what the topic takes (log.message.timestamp.*.max.ms): this record's own
  "INVALID_TIMESTAMP",
]);
/** Non-retriable by their flag, but they say the producer is going away (a redeploy), not that it refused. */
const TRANSIENT_CODES = new Set(["AlreadyClosed", "ChecksumError"]);

/**
 * Errors a record gets because of what happened to others, not to it: a msg refused because an earlier
 * record of its partition failed and is being replayed, or because pulsar-out is closing (a redeploy).
 * Not counted as the record's tries (as an interruption is not), or records behind a failing one, or a
 * few redeploys, would use theirs up.
 */
const CONSEQUENTIAL_KEYS = new Set([
  "pulsar-out.errors.replaying",
  "pulsar-out.errors.closing",
  "kafka-out.errors.closing",
  "pulsar-out.errors.producer-busy",
  "kafka-window.errors.waiting",
]);

/**
 * Consequential errors that say the record waits for something outside the flow to let go (a producer
 * name Pulsar still has on another connection), however long: never counted, not even after the free
 * interruptions a record has (the status says what it waits for).
 */
const WAIT_KEYS = new Set(["pulsar-out.errors.producer-busy"]);

export function isWait(err: unknown): boolean {
  return err instanceof BridgeError && WAIT_KEYS.has(err.key);
}

export function isConsequential(err: unknown): boolean {
  return err instanceof BridgeError && CONSEQUENTIAL_KEYS.has(err.key);
}

/**
 * Retriable errors about something every record needs (the schema registry away): the partition waits and
 * tries again, without end and without dead-lettering good records.
 */
const WAITING_KEYS = new Set(["kafka-in.errors.schema-registry", "pulsar-out.errors.schema-registry"]);

export function failureScope(err: unknown): FailureScope {
  if (err instanceof ConfigurationError) return "destination";
  if (err instanceof BridgeError) {
    if (WAITING_KEYS.has(err.key)) return "destination";
    if (err.retriable) return "transient";
    return RECORD_KEYS.has(err.key) ? "record" : "destination";
  }
  if (err instanceof PulsarError) {
    if (RECORD_CODES.has(err.code)) return "record";
    if (err.retriable || TRANSIENT_CODES.has(err.code)) return "transient";
    return "destination";
  }
  if (err instanceof Error && err.name.startsWith("KafkaJS")) {
    if (RECORD_KAFKA_TYPES.has(String((err as { type?: unknown }).type))) return "record";
    return (err as { retriable?: unknown }).retriable === false ? "destination" : "transient";
  }
  return "transient";
}
