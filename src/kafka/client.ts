// The one place that imports kafkajs for connections (a seam: the Kafka client could change).
import type { ConnectionOptions } from "node:tls";
import { Kafka, logLevel, type KafkaConfig, type LogEntry, type SASLOptions } from "kafkajs";
import { ConfigurationError } from "../common/errors";
import { registerKafkaCodecs } from "./codecs";

export type SaslMechanism = "none" | "plain" | "scram-sha-256" | "scram-sha-512" | "oauthbearer";

export interface KafkaSettings {
  brokers: string[];
  clientId: string;
  /** TLS options, or undefined for plaintext. */
  tls?: ConnectionOptions;
  saslMechanism: SaslMechanism;
  username?: string;
  password?: string;
  /** For oauthbearer: returns a current access token. */
  oauthToken?: () => Promise<string>;
  connectionTimeoutMs: number;
  requestTimeoutMs: number;
  /** kafkajs diagnostics; messages never contain credentials. */
  log?: (level: "debug" | "info" | "warn" | "error", message: string) => void;
  /**
   * A consumer of `groupId` asked for an offset Kafka no longer holds (deleted by retention or
   * deleteRecords before it was consumed, or the topic was recreated) and kafkajs moved it to the earliest
   * or the latest offset, as the group starts from: the records in between were never delivered.
   */
  offsetReset?: (e: { groupId: string; topic: string; partition: number }) => void;
}

/** What kafkajs logs, and nothing else tells, when it resets a consumer's offset that is out of range. */
const OFFSET_RESET = "Offset out of range, resetting to default offset";

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

/** Splits and checks a comma-separated host:port list. */
export function parseBrokerList(text: string): string[] {
  const brokers = text
    .split(",")
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  if (brokers.length === 0)
    throw new ConfigurationError("kafka-cluster.errors.no-brokers", "no Kafka broker given");
  for (const b of brokers) {
    const m = HOST_PORT.exec(b);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) {
      throw new ConfigurationError(
        "kafka-cluster.errors.bad-broker",
        `"${b}" is not a host:port broker address`,
      );
    }
  }
  return brokers;
}

function saslOptions(s: KafkaSettings): SASLOptions | undefined {
  switch (s.saslMechanism) {
    case "none":
      return undefined;
    case "plain":
    case "scram-sha-256":
    case "scram-sha-512":
      if (!s.username || !s.password) {
        throw new ConfigurationError(
          "kafka-cluster.errors.sasl-credentials",
          `SASL ${s.saslMechanism.toUpperCase()} needs a username and a password`,
        );
      }
      return { mechanism: s.saslMechanism, username: s.username, password: s.password };
    case "oauthbearer": {
      const fetchToken = s.oauthToken;
      if (!fetchToken) {
        throw new ConfigurationError(
          "kafka-cluster.errors.oauth",
          "SASL OAUTHBEARER needs a token endpoint and client credentials",
        );
      }
      return { mechanism: "oauthbearer", oauthBearerProvider: async () => ({ value: await fetchToken() }) };
    }
    default:
      throw new ConfigurationError(
        "kafka-cluster.errors.sasl-mechanism",
        `unknown SASL mechanism "${String(s.saslMechanism)}"`,
      );
  }
}

const LEVELS: Record<number, "debug" | "info" | "warn" | "error"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/** A kafkajs client for the settings; no connection is opened until a consumer/producer/admin connects. */
export function createKafka(s: KafkaSettings): Kafka {
  registerKafkaCodecs();
  const config: KafkaConfig = {
    clientId: s.clientId,
    brokers: s.brokers,
    ssl: s.tls ?? false,
    sasl: saslOptions(s),
    connectionTimeout: s.connectionTimeoutMs,
    requestTimeout: s.requestTimeoutMs,
    // ERROR at least when offset resets are listened to (kafkajs logs them as errors)
    logLevel: s.log ? logLevel.INFO : s.offsetReset ? logLevel.ERROR : logLevel.NOTHING,
    logCreator: () => (entry: LogEntry) => {
      const { message, error, groupId, topic, partition } = entry.log as {
        message?: string;
        error?: string;
        groupId?: unknown;
        topic?: unknown;
        partition?: unknown;
      };
      if (
        message === OFFSET_RESET &&
        typeof groupId === "string" &&
        typeof topic === "string" &&
        typeof partition === "number"
      )
        s.offsetReset?.({ groupId, topic, partition });
      s.log?.(
        LEVELS[entry.level] ?? "debug",
        `${entry.namespace}: ${message ?? ""}${error ? ` (${error})` : ""}`,
      );
    },
  };
  return new Kafka(config);
}
