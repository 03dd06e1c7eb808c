// kafka-out: writes msgs to Kafka. done() only after Kafka acknowledged the record (acks=all, idempotent
// producer); done(err) on any failure, so Catch nodes get the msg and the node upstream (kafka-in,
// pulsar-in) does not count it as settled. The mapping is msg-to-kafka's, the writing KafkaPublisher's.
import type { CompressionTypes as Compression, Producer } from "kafkajs";
import { CompressionTypes } from "kafkajs";
import { KAFKA_OUT_DEFAULTS } from "./properties";
import { coerceConfig } from "../common/coerce";
import { BridgeError, ConfigurationError, describeError, statusText } from "../common/errors";
import { onClose, registerType, type Node, type NodeConfig, type NodeMessage, type RED } from "./red";
import type { KafkaClusterNode } from "./kafka-cluster";
import { KAFKA_TOPICS, TopicResolver, type TopicSource } from "../bridge/topic";
import { msgToKafka } from "../bridge/msg-to-kafka";
import { KafkaPublisher, publisherProducer } from "../kafka/publisher";

const COMPRESSION: Record<string, Compression> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

export function registerKafkaOut(RED: RED): void {
  function KafkaOutNode(this: Node, def: NodeConfig) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = coerceConfig(def, KAFKA_OUT_DEFAULTS);
    const t = (key: string, vars?: Record<string, unknown>) =>
      RED._(`node-red-contrib-kafka-pulsar/kafka:${key}`, vars);
    const red = (err: unknown) => {
      const d = describeError(err);
      node.status({ fill: "red", shape: "ring", text: statusText(d.message) });
      return d;
    };

    let setupError: Error | undefined;
    let resolver: TopicResolver | undefined;
    let publisher: KafkaPublisher | undefined;
    let producer: Promise<Producer> | undefined;
    try {
      const cluster = RED.nodes.getNode(cfg.cluster) as KafkaClusterNode | null;
      if (!cluster)
        throw new ConfigurationError("kafka-out.errors.no-cluster", "no kafka-cluster is configured");
      const compression = COMPRESSION[cfg.compression];
      if (compression === undefined)
        throw new ConfigurationError(
          "kafka-out.errors.compression",
          `unknown compression ${cfg.compression}`,
        );
      resolver = new TopicResolver(cfg.topic, cfg.topicType as TopicSource, KAFKA_TOPICS);
      const kafka = cluster.getKafka();
      // one producer per node, opened at deploy (a failed open is tried again by the next msg)
      const open = () => {
        const p = publisherProducer(kafka);
        const connected = p.connect().then(() => p);
        producer = connected;
        connected.then(
          () => node.status({ fill: "green", shape: "dot", text: "node-red:common.status.connected" }),
          (err: unknown) => {
            if (producer === connected) producer = undefined;
            red(err);
          },
        );
        return connected;
      };
      node.status({ fill: "yellow", shape: "ring", text: "node-red:common.status.connecting" });
      open().catch(() => undefined);
      publisher = new KafkaPublisher(
        () => producer ?? open(),
        {
          compression,
          maxBatchRecords: cfg.maxBatchRecords,
          maxBatchBytes: cfg.maxBatchBytes,
        },
        (pending) => {
          if (pending > 0)
            node.status({ fill: "green", shape: "dot", text: t("kafka-out.status.sending", { pending }) });
          else node.status({ fill: "green", shape: "dot", text: "node-red:common.status.connected" });
        },
      );
    } catch (err) {
      setupError =
        err instanceof BridgeError
          ? err
          : new ConfigurationError("kafka-out.errors.no-cluster", describeError(err).message);
      red(err);
      node.error(describeError(err).message);
    }

    node.on("input", (msg: NodeMessage, _send: unknown, done: (err?: Error) => void) => {
      if (setupError) {
        done(setupError);
        return;
      }
      let sent: Promise<void>;
      try {
        const m = msg as unknown as Record<string, unknown>;
        const topic = (resolver as TopicResolver).resolve(m);
        sent = (publisher as KafkaPublisher).send({
          topic,
          ...msgToKafka(m, { mapHeaders: cfg.mapHeaders }),
        });
      } catch (err) {
        sent = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      sent.then(
        () => done(),
        (err: unknown) => {
          const d = red(err);
          done(err instanceof Error ? err : new Error(d.message));
        },
      );
    });

    onClose(node, async () => {
      await publisher?.close();
      const p = producer;
      producer = undefined;
      if (p) await p.then((x) => x.disconnect()).catch(() => undefined);
      node.status({});
    });
  }

  registerType(RED, "kafka-out", KafkaOutNode);
}
