// kafka-cluster: the config node that owns the Kafka client settings and a shared, reference-counted
// producer (used for dead-letter records). Each kafka-in opens its own consumer from getKafka().
import type { Kafka, Producer } from "kafkajs";
import { KAFKA_CLUSTER_CREDENTIALS, KAFKA_CLUSTER_DEFAULTS } from "./properties";
import { coerceConfig, type Coerced } from "../common/coerce";
import { SharedResource } from "../common/shared";
import { onClose, registerType, tlsConfigNode, type Node, type NodeConfig, type RED } from "./red";
import { createKafka, parseBrokerList, type SaslMechanism } from "../kafka/client";
import { oauth2ClientCredentials } from "../pulsar/auth";
import { kafkaIdentity } from "../kafka/identity";
import { BridgeError, describeError } from "../common/errors";

export interface KafkaClusterCredentials {
  username?: string;
  password?: string;
  oauthClientId?: string;
  oauthClientSecret?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsPassphrase?: string;
}

export interface KafkaClusterNode extends Node<KafkaClusterCredentials> {
  settings: Coerced<typeof KAFKA_CLUSTER_DEFAULTS>;
  /** The kafkajs client; throws a ConfigurationError when the settings are invalid. */
  getKafka(): Kafka;
  /** The broker list, sorted: what names the cluster when its id cannot be known. */
  identity(): string;
  /**
   * The cluster's id and the topic's id (Kafka 4 topic ids: a recreated topic gets a new one), as
   * "<cluster id>/<topic id>", for effectively-once producer names; asked of the cluster on each call.
   */
  topicIdentity(topic: string, topicId?: string): Promise<string>;
  producer: SharedResource<Producer>;
  /** Calls `fn` when a consumer of `groupId` lost its place (KafkaSettings.offsetReset); returns the undo. */
  onOffsetReset(groupId: string, fn: (topic: string, partition: number) => void): () => void;
}

export function registerKafkaCluster(RED: RED): void {
  function KafkaClusterNode(this: KafkaClusterNode, def: NodeConfig) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = coerceConfig(def, KAFKA_CLUSTER_DEFAULTS);
    node.settings = cfg;
    const creds = node.credentials ?? {};
    let kafka: Kafka | undefined;

    node.identity = () =>
      cfg.brokers
        .split(",")
        .map((b) => b.trim())
        .sort()
        .join(",");
    // the cluster id never changes under a running node: asked once (again after a failure)
    let clusterId: Promise<string> | undefined;
    node.topicIdentity = async (topic, topicId) => {
      try {
        if (topicId === undefined) {
          const id = await kafkaIdentity(node.getKafka(), [topic]);
          return `${id.clusterId}/${id.topicIds.get(topic) ?? ""}`;
        }
        const asked = (clusterId ??= kafkaIdentity(node.getKafka(), []).then((id) => id.clusterId));
        asked.catch(() => {
          if (clusterId === asked) clusterId = undefined;
        });
        return `${await asked}/${topicId}`;
      } catch (err) {
        throw new BridgeError(
          "kafka-in.errors.identity",
          `cannot read the ids of Kafka cluster and topic ${topic}: ${describeError(err).message}`,
          true,
        );
      }
    };
    const resetListeners = new Map<string, Set<(topic: string, partition: number) => void>>();
    node.onOffsetReset = (groupId, fn) => {
      let set = resetListeners.get(groupId);
      if (!set) resetListeners.set(groupId, (set = new Set()));
      set.add(fn);
      return () => {
        set.delete(fn);
        if (set.size === 0 && resetListeners.get(groupId) === set) resetListeners.delete(groupId);
      };
    };
    node.getKafka = () => {
      if (kafka) return kafka;
      let tls: Record<string, unknown> | undefined;
      if (cfg.tls) {
        tls = { rejectUnauthorized: cfg.tlsRejectUnauthorized };
        if (creds.tlsCa) tls.ca = creds.tlsCa;
        if (creds.tlsCert) tls.cert = creds.tlsCert;
        if (creds.tlsKey) tls.key = creds.tlsKey;
        if (creds.tlsPassphrase) tls.passphrase = creds.tlsPassphrase;
        const tlsNode = tlsConfigNode(RED, cfg.tlsConfig, "kafka-cluster");
        if (tlsNode) tls = tlsNode.addTLSOptions(tls);
      }
      let oauthToken: (() => Promise<string>) | undefined;
      if (cfg.saslMechanism === "oauthbearer" && cfg.oauthTokenUrl) {
        const provider = oauth2ClientCredentials({
          issuerUrl: cfg.oauthTokenUrl,
          clientId: creds.oauthClientId ?? "",
          clientSecret: creds.oauthClientSecret ?? "",
          scope: cfg.oauthScope || undefined,
        });
        oauthToken = async () => (await provider.getAuthData()).toString("utf8");
      }
      kafka = createKafka({
        brokers: parseBrokerList(cfg.brokers),
        clientId: cfg.clientId || "node-red",
        tls,
        saslMechanism: cfg.saslMechanism as SaslMechanism,
        username: creds.username,
        password: creds.password,
        oauthToken,
        connectionTimeoutMs: cfg.connectionTimeoutMs,
        requestTimeoutMs: cfg.requestTimeoutMs,
        offsetReset: (e) => {
          for (const fn of resetListeners.get(e.groupId) ?? []) fn(e.topic, e.partition);
        },
        log: (level, message) => {
          if (level === "error" || level === "warn") node.debug(message);
          else node.trace(message);
        },
      });
      return kafka;
    };

    node.producer = new SharedResource<Producer>(
      async () => {
        const producer = node.getKafka().producer({ allowAutoTopicCreation: true });
        await producer.connect();
        return producer;
      },
      (producer) => producer.disconnect(),
    );
    onClose(node, () => node.producer.shutdown());
  }

  registerType(RED, "kafka-cluster", KafkaClusterNode, KAFKA_CLUSTER_CREDENTIALS);
}
