// kafka-in: consumes Kafka records and emits one msg per record (or per batch). A record's offset is
// committed only after the flow settled everything derived from it (DESIGN §4): Node-RED's message hooks
// count deliveries and done() calls per msg id; failures are retried or dead-lettered, never skipped.
import type { IHeaders, KafkaMessage } from "kafkajs";
import { KAFKA_IN_DEFAULTS } from "./properties";
import { coerceConfig } from "../common/coerce";
import { BridgeError, describeError } from "../common/errors";
import {
  onClose,
  registerType,
  type HookCompleteEvent,
  type HookSendEvent,
  type Node,
  type NodeConfig,
  type NodeMessage,
  type RED,
} from "./red";
import type { KafkaClusterNode } from "./kafka-cluster";
import type { PulsarClusterNode } from "./pulsar-cluster";
import { GroupConsumer, type ConsumerState } from "../kafka/group-consumer";
import { OffsetLedger } from "../bridge/offsets";
import { SettlementTracker } from "../bridge/settlement";
import {
  msgIdSource,
  recordToMsg,
  type KeyFormat,
  type RecordMsg,
  type ValueFormat,
} from "../bridge/record-to-msg";
import { Backoff } from "../pulsar/backoff";

const NS = "node-red-contrib-kafka-pulsar/kafka:";

interface InFlightRecord {
  topic: string;
  partition: number;
  message: KafkaMessage;
  attempt: number;
}

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

export function registerKafkaIn(RED: RED): void {
  function KafkaInNode(this: Node & { wires?: string[][] }, def: NodeConfig) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = coerceConfig(def, KAFKA_IN_DEFAULTS);
    const cluster = RED.nodes.getNode(cfg.cluster) as KafkaClusterNode | null;
    const t = (key: string, vars?: Record<string, unknown>) => RED._(`${NS}${key}`, vars);

    const stop = (err: unknown) => {
      const d = describeError(err);
      node.status({ fill: "red", shape: "ring", text: d.message });
      node.error(d.message);
    };
    let topics: (string | RegExp)[];
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
    } catch (err) {
      stop(err);
      return;
    }
    const kafkaCluster = cluster;
    const settled = cfg.commitMode === "settled";
    const groupId = cfg.groupId.trim();
    const ledger = new OffsetLedger();
    const retryTimers = new Set<NodeJS.Timeout>();
    let closing = false;

    const destinations = (): string[] => node.wires?.[0] ?? [];

    const settle = (records: InFlightRecord | InFlightRecord[]) => {
      if (!settled) return;
      if (Array.isArray(records))
        for (const r of records) ledger.settle(r.topic, r.partition, r.message.offset);
      else ledger.settle(records.topic, records.partition, records.message.offset);
      consumer.settled();
    };

    const tracker = new SettlementTracker<InFlightRecord | InFlightRecord[]>(settle, (records, error) => {
      if (Array.isArray(records)) for (const r of records) onFailure(r, error);
      else onFailure(records, error);
    });

    // Fixed for the life of this node (a changed kafka-cluster redeploys it): computed once, not per record.
    const clusterIdentity = kafkaCluster.identity();
    const formats = { value: cfg.valueFormat as ValueFormat, key: cfg.keyFormat as KeyFormat };
    const nextMsgId = msgIdSource();

    /** The msg fields of a record; undefined when it cannot be decoded (reported, then the failure policy). */
    const toFields = (r: InFlightRecord): RecordMsg | undefined => {
      try {
        return recordToMsg(r.message, { topic: r.topic, partition: r.partition, groupId }, formats, {
          attempt: r.attempt,
          cluster: clusterIdentity,
        });
      } catch (err) {
        // An undecodable record goes to Catch with its raw bytes and is handled by the failure policy.
        const raw: NodeMessage & Record<string, unknown> = {
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
            cluster: clusterIdentity,
          },
        };
        node.error(describeError(err).message, raw);
        onFailure(r, err);
        return undefined;
      }
    };

    /** One msg per record: the hot path, so no intermediate arrays or copies. */
    const emitRecord = (r: InFlightRecord) => {
      if (closing) return;
      const fields = toFields(r);
      if (!fields) return;
      const msg = {
        _msgid: nextMsgId(),
        payload: fields.payload,
        topic: fields.topic,
        key: fields.key,
        kafka: fields.kafka,
      };
      if (settled) tracker.track(msg._msgid, r, destinations());
      node.send(msg);
    };

    /** One msg carrying the records (batch output). */
    const emitBatch = (records: InFlightRecord[]) => {
      if (closing) return;
      const ready: { fields: RecordMsg; record: InFlightRecord }[] = [];
      for (const r of records) {
        const fields = toFields(r);
        if (fields) ready.push({ fields, record: r });
      }
      if (ready.length === 0) return;
      const msg = {
        _msgid: nextMsgId(),
        topic: ready[0]?.record.topic,
        payload: ready.map((x) => x.fields),
        kafka: { records: ready.map((x) => x.fields.kafka), groupId },
      };
      if (settled)
        tracker.track(
          msg._msgid,
          ready.map((x) => x.record),
          destinations(),
        );
      node.send(msg);
    };

    const backoffFor = (attempt: number) =>
      Math.min(60_000, cfg.retryBackoffMs * 2 ** Math.min(attempt - 1, 10));

    const onFailure = (r: InFlightRecord, error: unknown) => {
      if (closing) return;
      const d = describeError(error);
      if (!settled) {
        node.warn(t("kafka-in.errors.failed-auto", { offset: r.message.offset, message: d.message }));
        return;
      }
      if (cfg.failurePolicy === "dead-letter" && r.attempt >= cfg.maxAttempts) {
        void deadLetter(r, d.message);
        return;
      }
      const delay = backoffFor(r.attempt);
      node.status({
        fill: "yellow",
        shape: "ring",
        text: t("kafka-in.status.retrying", { offset: r.message.offset, attempt: r.attempt }),
      });
      const timer = setTimeout(() => {
        retryTimers.delete(timer);
        const again = { ...r, attempt: r.attempt + 1 };
        if (cfg.batchOutput) emitBatch([again]);
        else emitRecord(again);
      }, delay);
      retryTimers.add(timer);
    };

    const deadLetterBackoff = new Backoff({ initialMs: 1000, maxMs: 60_000 });
    const deadLetter = async (r: InFlightRecord, reason: string) => {
      const headers: IHeaders = {
        ...(r.message.headers ?? {}),
        "dlq.error": reason,
        "dlq.topic": r.topic,
        "dlq.partition": String(r.partition),
        "dlq.offset": r.message.offset,
        "dlq.attempts": String(r.attempt),
        "dlq.group": groupId,
      };
      try {
        if (cfg.deadLetterTarget === "pulsar") {
          const pc = RED.nodes.getNode(cfg.deadLetterPulsarCluster) as PulsarClusterNode | null;
          if (!pc)
            throw new BridgeError(
              "kafka-in.errors.no-dead-letter-cluster",
              "the Pulsar dead-letter target needs a pulsar-cluster",
              false,
            );
          const client = await pc.acquireClient(`${node.id}-dlq`);
          const producer = await client.createProducer({
            topic: cfg.deadLetterTopic,
            batchingEnabled: false,
          });
          try {
            const properties: Record<string, string> = {};
            for (const [k, v] of Object.entries(headers))
              if (v !== undefined) properties[k] = Buffer.isBuffer(v) ? v.toString("base64") : String(v);
            await producer.send({
              payload: r.message.value ?? Buffer.alloc(0),
              key: r.message.key ?? undefined,
              properties,
              eventTime: Number(r.message.timestamp),
            });
          } finally {
            await producer.close();
            await pc.releaseClient(`${node.id}-dlq`);
          }
        } else {
          const producer = await kafkaCluster.producer.acquire(node.id);
          await producer.send({
            topic: cfg.deadLetterTopic,
            messages: [{ key: r.message.key, value: r.message.value, headers }],
          });
        }
        deadLetterBackoff.reset();
        node.warn(
          t("kafka-in.errors.dead-lettered", {
            topic: r.topic,
            partition: r.partition,
            offset: r.message.offset,
            target: cfg.deadLetterTopic,
          }),
        );
        settle([r]);
      } catch (err) {
        // The record stays unsettled (its offset is not committed) until the dead-letter write succeeds.
        node.error(t("kafka-in.errors.dead-letter-failed", { message: describeError(err).message }));
        if (closing) return;
        const timer = setTimeout(() => {
          retryTimers.delete(timer);
          void deadLetter(r, reason);
        }, deadLetterBackoff.next());
        retryTimers.add(timer);
      }
    };

    let pendingBatch: InFlightRecord[] = [];
    const flushBatch = () => {
      const batch = pendingBatch;
      pendingBatch = [];
      if (batch.length > 0) emitBatch(batch);
    };

    // A connection failure is logged once per distinct cause (Catch and the log see it), not at every retry.
    let lastLoggedError: string | undefined;
    const showState = (s: ConsumerState) => {
      if (s.kind === "consuming") lastLoggedError = undefined;
      if (s.kind === "reconnecting" && s.error !== lastLoggedError) {
        lastLoggedError = s.error;
        node.error(t("kafka-in.errors.consumer", { message: s.error }));
      }
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

    const consumer = new GroupConsumer(kafkaCluster.getKafka(), {
      groupId,
      topics,
      fromBeginning: cfg.startFrom === "earliest",
      commitMode: settled ? "settled" : "auto",
      maxInFlight: Math.max(1, cfg.maxInFlight),
      ledger,
      onRecord: (topic, partition, message) => {
        const r: InFlightRecord = { topic, partition, message, attempt: 1 };
        if (cfg.batchOutput) {
          pendingBatch.push(r);
          if (pendingBatch.length >= Math.max(1, cfg.batchSize)) flushBatch();
        } else emitRecord(r);
      },
      onBatchEnd: flushBatch,
      onState: showState,
      onError: (err) => node.debug(describeError(err).message),
    });

    const hookLabel = `kafkaIn${node.id.replace(/[^A-Za-z0-9]/g, "")}`;
    if (settled) {
      RED.hooks.add(`onSend.${hookLabel}`, ((events: HookSendEvent[]) => {
        for (const e of events) {
          const id = e.msg?._msgid;
          if (id && e.source.id !== node.id) tracker.delivered(id, e.destination.id);
        }
      }) as (event: never) => unknown);
      RED.hooks.add(`onComplete.${hookLabel}`, ((e: HookCompleteEvent) => {
        const id = e.msg?._msgid;
        if (id) tracker.completed(id, e.node.id, e.error);
      }) as (event: never) => unknown);
    }
    consumer.start();

    onClose(node, async () => {
      closing = true;
      for (const timer of retryTimers) clearTimeout(timer);
      retryTimers.clear();
      await consumer.stop();
      if (settled) {
        RED.hooks.remove(`onSend.${hookLabel}`);
        RED.hooks.remove(`onComplete.${hookLabel}`);
      }
      tracker.clear();
      await kafkaCluster.producer.release(node.id);
    });
  }

  registerType(RED, "kafka-in", KafkaInNode);
}
