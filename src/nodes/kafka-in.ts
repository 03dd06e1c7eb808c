// kafka-in: consumes Kafka records and emits one msg per record (or per batch). A record's offset is
// committed only after the flow settled everything derived from it (DESIGN §4): Node-RED's message hooks
// count deliveries and done() calls per msg id; failures are retried or dead-lettered, never skipped.
import { KAFKA_IN_DEFAULTS } from "./properties";
import { coerceConfig } from "../common/coerce";
import { BridgeError, describeError, statusText } from "../common/errors";
import { instanceKey, onClose, registerType, type Node, type NodeConfig, type RED } from "./red";
import type { KafkaClusterNode } from "./kafka-cluster";
import type { PulsarClusterNode } from "./pulsar-cluster";
import { trackFlows } from "./flow-hooks";
import { groupCountsAfter, nodeKinds, reachOf, streamingSplitsAfter } from "./flow-shape";
import { GroupConsumer, type ConsumerState } from "../kafka/group-consumer";
import { OffsetLedger } from "../bridge/offsets";
import { Delivery, type DeliveryRecord } from "../bridge/delivery";
import { PulsarDeadLetterWriter, deadLetterFields, writeKafkaDeadLetter } from "../bridge/dead-letter";
import {
  msgIdSource,
  recordToMsg,
  type Formats,
  type KeyFormat,
  type ValueFormat,
} from "../bridge/record-to-msg";
import type { SchemaDecoder } from "../registry/decoder";
import type { SchemaRegistryNode } from "./schema-registry";
import type { OrderedSource } from "../bridge/effectively-once";

const NS = "node-red-contrib-kafka-pulsar/kafka:";

/**
 * Per Kafka cluster and group: the id each topic was last read as by a kafka-in of this process. A node
 * redeployed while a topic is deleted and created again (Kafka deletes the group's commits with it) then
 * knows it read the topic under another id, and reads the partitions without a commit from their start
 * rather than from where "start from" says; and the resets to offset 0 a node redeployed meanwhile still
 * owed (their commit was refused), which its successor pays; and the topic ids the group reads from their
 * start (GroupConsumerOptions.fromStart).
 */
const topicIdsRead = new Map<
  string,
  {
    lastIds: Map<string, string>;
    resets: Map<string, { topic: string; partition: number }>;
    fromStart: Set<string>;
  }
>();

/** The most max in flight is raised to for joins and batches by count (see below). */
const RAISED_MAX = 100_000;

/** Comma-separated names, or one /regular expression/. */
export function parseTopics(text: string): (string | RegExp)[] {
  const t = text.trim();
  const re = /^\/(.+)\/([a-z]*)$/.exec(t);
  if (re) {
    try {
      return [new RegExp(re[1] ?? "", re[2])];
    } catch (err) {
      throw new BridgeError(
        "kafka-in.errors.no-topics",
        `invalid topic pattern ${t}: ${(err as Error).message}`,
        false,
      );
    }
  }
  const topics = t
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
  if (topics.length === 0) throw new BridgeError("kafka-in.errors.no-topics", "no Kafka topic given", false);
  for (const topic of topics) {
    if (!/^[A-Za-z0-9._-]{1,249}$/.test(topic)) {
      throw new BridgeError("kafka-in.errors.no-topics", `"${topic}" is not a valid Kafka topic name`, false);
    }
  }
  return topics;
}

type KafkaInConfig = ReturnType<typeof coerceConfig<typeof KAFKA_IN_DEFAULTS>>;

/** The dead-letter writer of a kafka-in with the dead-letter policy: one producer, reused. */
function deadLetterWriter(RED: RED, share: string, cfg: KafkaInConfig, groupId: string) {
  const topic = cfg.deadLetterTopic.trim();
  const userId = `${share}-dlq`;
  if (cfg.deadLetterTarget === "pulsar") {
    const pc = RED.nodes.getNode(cfg.deadLetterPulsarCluster) as PulsarClusterNode | null;
    let acquired = false;
    const writer = new PulsarDeadLetterWriter(async () => {
      if (!pc)
        throw new BridgeError(
          "kafka-in.errors.no-dead-letter-cluster",
          "the Pulsar dead-letter target needs a pulsar-cluster",
          false,
        );
      acquired = true;
      const client = await pc.acquireClient(userId);
      return client.createProducer({ topic, batchingEnabled: false });
    }, groupId);
    return {
      write: (r: DeliveryRecord, reason: string) => writer.write(r, deadLetterFields(r, reason, groupId)),
      close: async () => {
        await writer.close();
        if (acquired) await pc?.releaseClient(userId);
      },
    };
  }
  const kafka = RED.nodes.getNode(cfg.cluster) as KafkaClusterNode;
  return {
    write: async (r: DeliveryRecord, reason: string) =>
      writeKafkaDeadLetter(
        await kafka.producer.acquire(share),
        topic,
        r,
        deadLetterFields(r, reason, groupId),
      ),
    close: () => kafka.producer.release(share),
  };
}

export function registerKafkaIn(RED: RED): void {
  function KafkaInNode(this: Node & { wires?: string[][] }, def: NodeConfig) {
    RED.nodes.createNode(this, def);
    const node = this;
    const share = instanceKey(node);
    const cfg = coerceConfig(def, KAFKA_IN_DEFAULTS);
    const cluster = RED.nodes.getNode(cfg.cluster) as KafkaClusterNode | null;
    const t = (key: string, vars?: Record<string, unknown>) => RED._(`${NS}${key}`, vars);

    const stop = (err: unknown) => {
      const d = describeError(err);
      node.status({ fill: "red", shape: "ring", text: statusText(d.message) });
      node.error(d.message);
    };
    let topics: (string | RegExp)[];
    let registry: SchemaDecoder | undefined;
    try {
      if (!cluster)
        throw new BridgeError("kafka-in.errors.no-cluster", "no kafka-cluster is configured", false);
      if (!cfg.groupId.trim())
        throw new BridgeError("kafka-in.errors.no-group", "a consumer group id is required", false);
      topics = parseTopics(cfg.topics);
      if (cfg.failurePolicy === "dead-letter" && !cfg.deadLetterTopic.trim()) {
        throw new BridgeError(
          "kafka-in.errors.no-dead-letter-topic",
          "the dead-letter policy needs a dead-letter topic",
          false,
        );
      }
      if (
        cfg.failurePolicy === "dead-letter" &&
        cfg.deadLetterTarget === "pulsar" &&
        !RED.nodes.getNode(cfg.deadLetterPulsarCluster)
      ) {
        throw new BridgeError(
          "kafka-in.errors.no-dead-letter-cluster",
          "the Pulsar dead-letter target needs a pulsar-cluster",
          false,
        );
      }
      cluster.getKafka();
      if (cfg.valueFormat === "registry" || cfg.keyFormat === "registry") {
        const registryNode = RED.nodes.getNode(cfg.registry) as SchemaRegistryNode | null;
        if (!registryNode)
          throw new BridgeError(
            "kafka-in.errors.no-registry",
            "the schema registry format needs a schema-registry node",
            false,
          );
        registry = registryNode.decoder();
      }
    } catch (err) {
      stop(err);
      return;
    }
    const kafkaCluster = cluster;
    const settled = cfg.commitMode === "settled";
    const groupId = cfg.groupId.trim();
    const ledger = new OffsetLedger();
    const formats: Formats = {
      value: cfg.valueFormat as ValueFormat,
      key: cfg.keyFormat as KeyFormat,
      registry,
    };
    const nextMsgId = msgIdSource();
    const deadLetters =
      cfg.failurePolicy === "dead-letter" ? deadLetterWriter(RED, share, cfg, groupId) : undefined;

    const describeNode = (id: string) => {
      const n = RED.nodes.getNode(id) as (Node & { type?: string }) | null;
      if (!n) return `node ${id}`;
      return n.name ? `"${n.name}" (${n.type} ${id})` : `${n.type} ${id}`;
    };
    const where = (r: DeliveryRecord) => `${r.topic}/${r.partition}@${r.message.offset}`;

    const delivery = new Delivery(
      {
        settled,
        batchOutput: cfg.batchOutput,
        batchSize: cfg.batchSize,
        settleTimeoutMs: cfg.settleTimeoutMs,
        maxAttempts: cfg.maxAttempts,
        retryBackoffMs: cfg.retryBackoffMs,
        groupId,
        // Fixed for the life of this node (a changed kafka-cluster redeploys it): computed once.
        cluster: kafkaCluster.identity(),
        decode: (r) => recordToMsg(r.message, { topic: r.topic, partition: r.partition, groupId }, formats),
        nextMsgId,
        writeDeadLetter: deadLetters?.write,
        describeNode,
        ledger,
        // An effectively-once pulsar-out or a window node anywhere in the deployment: failures replay their
        // partition in order from the start (one reached through a link or another process asks for it on
        // its first msg).
        ordered: orderedDeployed(RED),
        sourceId: node.id,
        identity: (topic, topicId) => kafkaCluster.topicIdentity(topic, topicId),
        reach: () => (orderedDeployed(RED) ? reachOf(RED) : undefined),
        flowsStarted: () => consumer.setMaxInFlight(windowSize()),
        kinds: nodeKinds(RED),
      },
      {
        send: (msg) => node.send(msg),
        decodeFailed: (r, err) => {
          // the undecodable record goes to Catch with its raw bytes; the failure policy follows
          const raw = {
            _msgid: nextMsgId(),
            payload: r.message.value,
            topic: r.topic,
            key: r.message.key,
            kafka: {
              topic: r.topic,
              partition: r.partition,
              offset: r.message.offset,
              groupId,
              attempt: r.attempt,
            },
          };
          node.error(`${where(r)}: ${describeError(err).message}`, raw);
        },
        deadLettered: (r) =>
          node.warn(
            t("kafka-in.errors.dead-lettered", {
              topic: r.topic,
              partition: r.partition,
              offset: r.message.offset,
              target: cfg.deadLetterTopic,
            }),
          ),
        deadLetterFailed: (r, err) =>
          node.error(
            t("kafka-in.errors.dead-letter-failed", {
              message: `${where(r)}: ${describeError(err).message}`,
            }),
          ),
        blocked: (b) =>
          node.error(
            t("kafka-in.errors.blocked", {
              topic: b.topic,
              partition: b.partition,
              offset: b.offset,
              message: b.reason,
            }),
          ),
        expired: (r, err) => node.warn(`${where(r)}: ${describeError(err).message}`),
        lost: (r, err) =>
          node.warn(
            t("kafka-in.errors.failed-auto", { offset: where(r), message: describeError(err).message }),
          ),
        changed: () => renderSoon(),
      },
    );

    // The status: a blocked partition first (red), then retries (yellow), else the consumer's state.
    let consumerState: ConsumerState = { kind: "connecting" };
    let lastLoggedError: string | undefined;
    const render = () => {
      const blocked = delivery.blocked;
      if (blocked.length > 0) {
        const b = blocked[0];
        node.status({
          fill: "red",
          shape: "dot",
          text: t("kafka-in.status.blocked", {
            topic: b.topic,
            partition: b.partition,
            offset: b.offset,
            more: blocked.length > 1 ? ` (+${blocked.length - 1})` : "",
            message: b.reason,
          }),
        });
        return;
      }
      const retrying = delivery.retrying;
      if (retrying.length > 0) {
        const r = retrying[0];
        node.status({
          fill: "yellow",
          shape: "ring",
          text: t("kafka-in.status.retrying", {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            attempt: r.attempt,
            more: retrying.length > 1 ? ` (+${retrying.length - 1})` : "",
            message: r.reason,
          }),
        });
        return;
      }
      showState(consumerState);
    };
    // many records change state at once (an outage blocks a whole window): one redraw per turn
    let renderQueued = false;
    const renderSoon = () => {
      if (renderQueued) return;
      renderQueued = true;
      setImmediate(() => {
        renderQueued = false;
        render();
      });
    };
    const showState = (s: ConsumerState) => {
      switch (s.kind) {
        case "connecting":
          node.status({ fill: "yellow", shape: "ring", text: "node-red:common.status.connecting" });
          break;
        case "consuming":
          node.status({
            fill: "green",
            shape: "dot",
            text: t("kafka-in.status.consuming", { partitions: s.partitions }),
          });
          break;
        case "paused":
          node.status({
            fill: "yellow",
            shape: "dot",
            text: t("kafka-in.status.paused", { inFlight: s.inFlight }),
          });
          break;
        case "rebalancing":
          node.status({ fill: "yellow", shape: "ring", text: t("kafka-in.status.rebalancing") });
          break;
        case "reconnecting":
          node.status({
            fill: "red",
            shape: "ring",
            text: t("kafka-in.status.reconnecting", { error: s.error }),
          });
          break;
        case "stopped":
          node.status({});
          break;
      }
    };

    const readKey = `${kafkaCluster.identity()}\u0000${groupId}`;
    let memory = topicIdsRead.get(readKey);
    if (!memory)
      topicIdsRead.set(readKey, (memory = { lastIds: new Map(), resets: new Map(), fromStart: new Set() }));
    // Joins and batches by count after this node fill their groups only with that many records in flight
    // (paused below it, kafka-in would wait for them to settle, and they for more records): the window
    // holds twice what they wait for together. Sized again after every deploy (a "nodes" deploy may add a
    // join without restarting this node).
    let raisedFor = "";
    const windowSize = (): number => {
      const configured = Math.max(1, cfg.maxInFlight);
      if (!settled) return configured;
      const groups = groupCountsAfter(RED, node.id, cfg.batchOutput ? Math.max(1, cfg.batchSize) : 1);
      // at most RAISED_MAX: a count that big wants a window set by hand (and memory to match)
      const needed = Math.min(RAISED_MAX, 2 * groups.reduce((sum, g) => sum + g.needs, 0));
      if (needed <= configured) return configured;
      const nodes = groups.map((g) => `${g.node.type} "${g.node.name || g.node.id}" (${g.needs})`).join(", ");
      if (nodes !== raisedFor)
        node.warn(t("kafka-in.errors.in-flight-raised", { nodes, max: cfg.maxInFlight, raised: needed }));
      raisedFor = nodes;
      return needed;
    };
    const maxInFlight = windowSize();
    const consumer = new GroupConsumer(kafkaCluster.getKafka(), {
      groupId,
      lastIds: memory.lastIds,
      resets: memory.resets,
      fromStart: memory.fromStart,
      topics,
      fromBeginning: cfg.startFrom === "earliest",
      commitMode: settled ? "settled" : "auto",
      maxInFlight,
      ledger,
      onRecord: (topic, partition, message) => delivery.onRecord(topic, partition, message),
      onBatchEnd: () => delivery.onBatchEnd(),
      // the schemas a batch's values and keys name, loaded before its records are decoded
      beforeBatch: registry
        ? (messages) =>
            registry.prefetch(
              (function* () {
                for (const m of messages) {
                  if (cfg.valueFormat === "registry") yield m.value;
                  if (cfg.keyFormat === "registry") yield m.key;
                }
              })(),
            )
        : undefined,
      // effectively-once and windows: not one record of a recreated topic under the old topic's identity
      topicCheckEveryBatch: () => delivery.isOrdered,
      onAssignment: (list) => delivery.onAssignment(list),
      onIdsUnavailable: (reason) => node.warn(t("kafka-in.errors.ids-unavailable", { reason })),
      onTopicRecreated: (topic, partitions) => {
        delivery.topicRecreated(topic, partitions);
        node.warn(t("kafka-in.errors.topic-recreated", { topic, partitions: partitions.join(", ") }));
      },
      onState: (s) => {
        consumerState = s;
        // A connection failure is logged once per distinct cause (Catch and the log see it), not per retry.
        if (s.kind === "consuming") lastLoggedError = undefined;
        if (s.kind === "reconnecting" && s.error !== lastLoggedError) {
          lastLoggedError = s.error;
          node.error(t("kafka-in.errors.consumer", { message: s.error }));
        }
        render();
      },
      onError: (err) => node.debug(describeError(err).message),
    });
    // Records Kafka deleted before this group consumed them are gone: said, never passed over in silence
    // (with a msg naming the partition, so that Catch nodes get it)
    // (and the topic's id is asked again: a topic recreated names new effectively-once producers)
    const stopResets = kafkaCluster.onOffsetReset(groupId, (topic, partition) => {
      delivery.forgetIdentity(topic);
      // the topic may have been deleted and created again, shorter than the old position
      consumer.lookSoon();
      node.error(t("kafka-in.errors.offset-reset", { topic, partition, from: cfg.startFrom }), {
        _msgid: nextMsgId(),
        topic,
        kafka: { topic, partition, groupId },
      });
    });
    delivery.control = consumer;
    (node as Node & { orderedSource?: OrderedSource }).orderedSource = delivery;

    // Node-RED's message hooks, under a label of this instance only (flow-hooks.ts)
    const hookLabel = `kafkaIn${node.id.replace(/[^A-Za-z0-9]/g, "")}_${nextMsgId()}`;
    const stopTracking = settled ? trackFlows(RED, hookLabel, delivery) : () => undefined;
    if (settled)
      for (const split of streamingSplitsAfter(RED, node.id))
        node.warn(t("kafka-in.errors.split-stream", { name: split.name || split.id }));
    consumer.start();

    onClose(node, async () => {
      // No retry starts from here on; settlements go on being counted while the consumer drains.
      delivery.stopRetrying();
      // The hooks go as soon as the (bounded) drain ends, before the commit and the disconnect, which can
      // take long against a broker that went away.
      await consumer.stop(() => {
        stopTracking();
        delivery.close();
      });
      stopResets();
      await Promise.allSettled([deadLetters?.close(), kafkaCluster.producer.release(share)]);
    });
  }

  registerType(RED, "kafka-in", KafkaInNode);
}

/**
 * Whether the deployed flows need each partition's records in offset order, failures replayed from the
 * failed one: a pulsar-out publishing effectively-once, or a window node (it applies records in order).
 */
function orderedDeployed(RED: RED): boolean {
  let found = false;
  RED.nodes.eachNode((n: { type?: string; effectivelyOnce?: unknown; d?: unknown }) => {
    if (n.type === "pulsar-out" && (n.effectivelyOnce === true || n.effectivelyOnce === "true")) found = true;
    if (n.type === "kafka-window" && n.d !== true) found = true;
  });
  return found;
}
