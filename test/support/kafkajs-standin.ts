// A kafkajs idempotent producer (with kafkajs's retries, or those given), built by kafkajs's
// own createProducer over a stand-in for its Cluster (no broker): one broker (node 0) leading a topic's
// partitions, produce requests recorded and answered without error, topics unknown to it answered with
// UNKNOWN_TOPIC_OR_PARTITION (retriable, as a real broker answers for a missing topic with auto-creation
// off), and `down` making every request fail as a lost connection.
import { createRequire } from "node:module";
import type { Producer } from "kafkajs";

const require = createRequire(__filename);

const createProducer = require("kafkajs/src/producer") as (o: Record<string, unknown>) => Producer;
const Cluster = require("kafkajs/src/cluster") as { prototype: Record<string, unknown> };
const { createLogger, LEVELS } = require("kafkajs/src/loggers") as {
  createLogger: (o: Record<string, unknown>) => unknown;
  LEVELS: Record<string, number>;
};
const { KafkaJSProtocolError, KafkaJSConnectionError } = require("kafkajs/src/errors") as {
  KafkaJSProtocolError: new (e: Record<string, unknown>) => Error;
  KafkaJSConnectionError: new (m: string) => Error;
};

export interface Produced {
  topic: string;
  partition: number;
  count: number;
}

export function kafkajsStandIn(topics: Record<string, number>, retry?: Record<string, number>) {
  const state = {
    connected: false,
    down: false,
    connects: 0,
    connectsAfterDisconnect: 0,
    disconnected: false,
    produced: [] as Produced[],
  };
  const unknownTopic = () =>
    new KafkaJSProtocolError({
      type: "UNKNOWN_TOPIC_OR_PARTITION",
      code: 3,
      retriable: true,
      message: "This server does not host this topic-partition",
    });
  const broker = {
    nodeId: 0,
    initProducerId: () => Promise.resolve({ producerId: 1, producerEpoch: 0 }),
    produce: ({
      topicData,
    }: {
      topicData: { topic: string; partitions: { partition: number; messages: unknown[] }[] }[];
    }) => {
      if (state.down) return Promise.reject(new KafkaJSConnectionError("Connection error: ECONNREFUSED"));
      for (const t of topicData)
        for (const p of t.partitions)
          state.produced.push({ topic: t.topic, partition: p.partition, count: p.messages.length });
      return Promise.resolve({
        topics: topicData.map((t) => ({
          topicName: t.topic,
          partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: 0, baseOffset: "0" })),
        })),
      });
    },
  };
  const targetTopics = new Set<string>();
  const cluster = {
    // fast retries for the test (kafka-out leaves kafkajs's defaults: 300 ms growing to 30 s, without end)
    retry: { initialRetryTime: 20, maxRetryTime: 100 },
    targetTopics,
    isConnected: () => state.connected,
    connect: () => {
      state.connects++;
      if (state.disconnected) state.connectsAfterDisconnect++;
      if (state.down) return Promise.reject(new KafkaJSConnectionError("Connection error: ECONNREFUSED"));
      state.connected = true;
      return Promise.resolve();
    },
    disconnect: () => {
      state.connected = false;
      state.disconnected = true;
      return Promise.resolve();
    },
    refreshMetadataIfNecessary: () => Promise.resolve(),
    refreshMetadata: () => {
      for (const t of targetTopics) if (!(t in topics)) return Promise.reject(unknownTopic());
      return Promise.resolve();
    },
    addMultipleTargetTopics(list: string[]) {
      const before = new Set(targetTopics);
      for (const t of list) targetTopics.add(t);
      return this.refreshMetadata().catch((e: Error) => {
        targetTopics.clear();
        for (const t of before) targetTopics.add(t);
        throw e;
      });
    },
    findTopicPartitionMetadata: (topic: string) =>
      Array.from({ length: topics[topic] ?? 0 }, (_, i) => ({ partitionId: i, leader: 0 })),
    findLeaderForPartitions: Cluster.prototype.findLeaderForPartitions,
    findBroker: () => Promise.resolve(broker),
    findControllerBroker: () => Promise.resolve(broker),
    removeBroker: () => undefined,
  };
  const logger = createLogger({ level: LEVELS.NOTHING, logCreator: () => () => undefined });
  // what kafka-out asks of kafkajs: kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  const producer = createProducer({ cluster, logger, idempotent: true, ...(retry ? { retry } : {}) });
  return { producer, state };
}
