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
 * Whether no retry can fix `err`: only errors that say so by their type (ours, our Pulsar client's, and
 * kafkajs's with retriable false). An untyped error (a function node's throw) may be transient, so it is
 * not permanent: it is retried within the failure policy's bound.
 */
export function isPermanent(err: unknown): boolean {
  if (err instanceof BridgeError || err instanceof PulsarError) return !err.retriable;
  if (err instanceof Error && err.name.startsWith("KafkaJS"))
    return (err as { retriable?: unknown }).retriable === false;
  return false;
}
