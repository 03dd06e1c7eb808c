// The nodes' errors: one small hierarchy with an i18n key and a `retriable` flag, and one funnel from
// anything thrown to what the status and the log show.
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
  /** Catalog key for the status text. */
  key: string;
  message: string;
  retriable: boolean;
}

/** Anything thrown -> catalog key, message and whether a retry can help. */
export function describeError(err: unknown): DescribedError {
  if (err instanceof BridgeError) return { key: err.key, message: err.message, retriable: err.retriable };
  if (err instanceof PulsarError) {
    const key =
      err.code === "AuthenticationError" || err.code === "AuthorizationError"
        ? "errors.auth"
        : err.code === "Timeout"
          ? "errors.timeout"
          : err.code === "ConnectionError"
            ? "errors.connection"
            : "errors.pulsar";
    return { key, message: err.message, retriable: err.retriable };
  }
  if (err instanceof Error) {
    // kafkajs errors carry `retriable`
    const retriable = (err as { retriable?: unknown }).retriable === true;
    return { key: "errors.failed", message: err.message, retriable };
  }
  return { key: "errors.failed", message: String(err), retriable: false };
}
