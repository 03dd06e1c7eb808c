// The Pulsar client's errors: one hierarchy, a stable `code`, and whether retrying can help.
// ServerError numbers are those of Pulsar's PulsarApi.proto.

export class PulsarError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly retriable: boolean,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

const define = (code: string, retriable: boolean) =>
  class extends PulsarError {
    constructor(message: string) {
      super(message, code, retriable);
    }
  };

/** Retriable, except a certificate that failed verification (either side): retrying cannot fix that. */
export class ConnectionError extends PulsarError {
  constructor(message: string, retriable = true) {
    super(message, "ConnectionError", retriable);
  }
}
export class TimeoutError extends define("Timeout", true) {}
export class AuthenticationError extends define("AuthenticationError", false) {}
export class AuthorizationError extends define("AuthorizationError", false) {}
export class TopicNotFoundError extends define("TopicNotFound", false) {}
export class InvalidTopicNameError extends define("InvalidTopicName", false) {}
export class ProducerFencedError extends define("ProducerFenced", false) {}
export class TopicTerminatedError extends define("TopicTerminated", false) {}
export class ProducerBusyError extends define("ProducerBusy", true) {}
/** Another consumer holds an exclusive (or differently typed) subscription: fatal at subscribe, as in the official clients. */
export class ConsumerBusyError extends define("ConsumerBusy", false) {}
export class MessageTooBigError extends define("MessageTooBig", false) {}
export class ProducerQueueFullError extends define("ProducerQueueFull", true) {}
export class AlreadyClosedError extends define("AlreadyClosed", false) {}
export class ChecksumError extends define("ChecksumError", false) {}
export class ConfigError extends define("ConfigError", false) {}
export class ServerError extends PulsarError {}

// ServerError enum values -> (code, retriable, class)
const SERVER_ERRORS: Record<number, [string, boolean]> = {
  0: ["UnknownError", true],
  1: ["MetadataError", true],
  2: ["PersistenceError", true],
  3: ["AuthenticationError", false],
  4: ["AuthorizationError", false],
  5: ["ConsumerBusy", false],
  6: ["ServiceNotReady", true],
  7: ["ProducerBlockedQuotaExceededError", true],
  8: ["ProducerBlockedQuotaExceededException", true],
  9: ["ChecksumError", false],
  10: ["UnsupportedVersionError", false],
  11: ["TopicNotFound", false],
  12: ["SubscriptionNotFound", false],
  13: ["ConsumerNotFound", false],
  14: ["TooManyRequests", true],
  15: ["TopicTerminatedError", false],
  16: ["ProducerBusy", true],
  17: ["InvalidTopicName", false],
  18: ["IncompatibleSchema", false],
  19: ["ConsumerAssignError", true],
  20: ["TransactionCoordinatorNotFound", true],
  21: ["InvalidTxnStatus", false],
  22: ["NotAllowedError", false],
  23: ["TransactionConflict", false],
  24: ["TransactionNotFound", false],
  25: ["ProducerFenced", false],
};

/**
 * The typed error for a broker's ServerError code and message. A typed class's name already says the code
 * (String(err) is "AuthenticationError: <broker text>"), so only the generic ServerError repeats it in the text.
 */
export function fromServerError(serverError: number, message: string): PulsarError {
  const [code, retriable] = SERVER_ERRORS[serverError] ?? [`ServerError${serverError}`, true];
  const text = message || "the broker gave no details";
  switch (code) {
    case "AuthenticationError":
      return new AuthenticationError(text);
    case "AuthorizationError":
      return new AuthorizationError(text);
    case "TopicNotFound":
      return new TopicNotFoundError(text);
    case "InvalidTopicName":
      return new InvalidTopicNameError(text);
    case "ProducerFenced":
      return new ProducerFencedError(text);
    case "TopicTerminatedError":
      return new TopicTerminatedError(text);
    case "ProducerBusy":
      return new ProducerBusyError(text);
    case "ConsumerBusy":
      return new ConsumerBusyError(text);
    case "ChecksumError":
      return new ChecksumError(text);
    default:
      return new ServerError(message ? `${code}: ${message}` : code, code, retriable);
  }
}

/**
 * Whether an error met while re-creating a producer that was created before ends its reconnection. As with
 * the Java client, only a fenced producer, a terminated topic or a closed client do. Anything else is retried
 * with back-off, refused credentials and permissions included: after a rotated token, an identity provider's
 * hiccup or a permission granted again, the producer comes back by itself. (A first creation is stricter:
 * an error that is not `retriable` fails it at once, so that a wrong configuration shows.)
 */
export function endsReconnection(err: unknown): boolean {
  return (
    err instanceof ProducerFencedError ||
    err instanceof TopicTerminatedError ||
    err instanceof AlreadyClosedError
  );
}
