// kafka-window: per-key windows over the records kafka-in emits (issue 14), with their state in a compacted
// Kafka changelog. Thin over window-processor.ts (what is applied, checkpointed, sent and done when) and
// result-flow.ts (when the flow settled a result): this file reads the settings and the msgs.
//
// A record's done() is called once its contribution is durable (a checkpoint holds it), so kafka-in commits
// it only then; results are fresh msgs (this node settles its inputs itself: settlesItself) and stay in the
// changelog until the flow settled them downstream. kafka-in replays failures in offset order when this node
// is deployed (the window applies each partition's records in order).
import { KAFKA_WINDOW_DEFAULTS } from "./properties";
import { coerceConfig } from "../common/coerce";
import { BridgeError, ConfigurationError, describeError } from "../common/errors";
import {
  instanceKey,
  onClose,
  registerType,
  type Node,
  type NodeConfig,
  type NodeMessage,
  type RED,
} from "./red";
import type { KafkaClusterNode } from "./kafka-cluster";
import { trackFlows } from "./flow-hooks";
import { Aggregator, parseAggregations, type CustomReduce } from "../bridge/aggregate";
import { PartitionWindows, type WindowSpec, type WindowType } from "../bridge/window";
import { WindowProcessor, type PendingResult, type WindowInput } from "../bridge/window-processor";
import { ResultFlow } from "../bridge/result-flow";
import { configOf, nodeKinds, sourcesOf } from "./flow-shape";
import { Changelog, isFencedError } from "../kafka/changelog";
import { groupBehind } from "../kafka/lag";
import type { OrderedSource } from "../bridge/effectively-once";

const NS = "node-red-contrib-kafka-pulsar/kafka:";

type Config = ReturnType<typeof coerceConfig<typeof KAFKA_WINDOW_DEFAULTS>>;

interface JsonataExpression {
  evaluate(input: unknown, bindings?: Record<string, unknown>): unknown;
}

function specOf(cfg: Config): WindowSpec {
  const type = cfg.windowType as WindowType;
  if (!["tumbling", "hopping", "sliding"].includes(type))
    throw new ConfigurationError("kafka-window.errors.bad-spec", `unknown window type "${type}"`);
  if (cfg.by !== "time" && cfg.by !== "count")
    throw new ConfigurationError(
      "kafka-window.errors.bad-spec",
      `windows are by time or count, not "${cfg.by}"`,
    );
  return {
    type,
    by: cfg.by,
    size: cfg.size,
    advance: type === "hopping" ? cfg.advance : undefined,
    graceMs: cfg.graceMs,
    emit: cfg.emit === "current" ? "current" : "final",
    watermark: cfg.watermark === "key" ? "key" : "partition",
    maxOpenWindows: cfg.maxOpenWindows,
  };
}

/** An event time from what a msg property or expression gave: ms, a numeric string or a date. */
export function eventTime(v: unknown): number {
  if (typeof v === "number") return v >= 0 ? v : NaN;
  if (v instanceof Date) return v.getTime();
  if (typeof v === "string" && v.trim() !== "") {
    const n = Number(v);
    return Number.isFinite(n) ? (n >= 0 ? n : NaN) : Date.parse(v);
  }
  return NaN;
}

/** A group key as text (the changelog names state by it). */
export function keyText(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  return JSON.stringify(v) ?? "";
}

export function registerKafkaWindow(RED: RED): void {
  function KafkaWindowNode(this: Node & { settlesItself?: boolean }, def: NodeConfig) {
    RED.nodes.createNode(this, def);
    const node = this;
    node.settlesItself = true;
    const cfg = coerceConfig(def, KAFKA_WINDOW_DEFAULTS);
    const t = (key: string, vars?: Record<string, unknown>) => RED._(`${NS}${key}`, vars);
    const cluster = RED.nodes.getNode(cfg.cluster) as KafkaClusterNode | null;

    const expression = (text: string): JsonataExpression => {
      try {
        return RED.util.prepareJSONataExpression(text, node);
      } catch (err) {
        throw new ConfigurationError(
          "kafka-window.errors.bad-spec",
          `invalid JSONata "${text}": ${(err as Error).message}`,
        );
      }
    };
    const evaluate = async (e: JsonataExpression, input: unknown, bindings?: Record<string, unknown>) => {
      try {
        return await e.evaluate(input, bindings);
      } catch (err) {
        throw new BridgeError("kafka-window.errors.expression", `JSONata: ${(err as Error).message}`, false);
      }
    };
    /** A TypedInput read from a msg. */
    const reader = (value: string, type: string): ((msg: NodeMessage) => Promise<unknown>) => {
      if (type === "jsonata") {
        const e = expression(value);
        return (msg) => evaluate(e, msg);
      }
      if (type === "str") return () => Promise.resolve(value);
      return (msg) => Promise.resolve(RED.util.getMessageProperty(msg, value));
    };

    let setup: { processor: WindowProcessor; flow: ResultFlow<PendingResult> } | undefined;
    let setupError: unknown;
    let readKey: (msg: NodeMessage) => Promise<unknown> = () => Promise.resolve(undefined);
    let readTime: (msg: NodeMessage) => Promise<unknown> = readKey;
    let readValue: (msg: NodeMessage) => Promise<unknown> = readKey;
    let spec: WindowSpec | undefined;
    try {
      if (!cluster)
        throw new ConfigurationError("kafka-window.errors.no-cluster", "no kafka-cluster is configured");
      const topic = cfg.changelogTopic.trim();
      if (!/^[A-Za-z0-9._-]{1,249}$/.test(topic))
        throw new ConfigurationError(
          "kafka-window.errors.no-changelog",
          `the changelog topic "${topic}" is not a valid Kafka topic name`,
        );
      // the topic names the transactional ids and the state: two nodes on one would fence and read each other
      let other: string | undefined;
      RED.nodes.eachNode((n: { id: string; type?: string; d?: unknown; changelogTopic?: unknown }) => {
        if (
          n.type === "kafka-window" &&
          n.id !== node.id &&
          n.d !== true &&
          String(n.changelogTopic).trim() === topic
        )
          other = n.id;
      });
      if (other)
        throw new ConfigurationError(
          "kafka-window.errors.shared-changelog",
          `window node ${other} keeps its state in the changelog topic ${topic} too: give each window node its own`,
        );
      spec = specOf(cfg);
      let custom: CustomReduce | undefined;
      if (cfg.reduceStep.trim()) {
        const init = cfg.reduceInit.trim() ? expression(cfg.reduceInit) : undefined;
        const step = expression(cfg.reduceStep);
        const result = cfg.reduceResult.trim() ? expression(cfg.reduceResult) : undefined;
        custom = {
          init: async () => (init ? ((await evaluate(init, {})) ?? null) : 0),
          accumulate: async (acc, value, c) =>
            (await evaluate(step, { payload: value, time: c.time }, { A: acc })) ?? null,
          result: async (acc) => (result ? await evaluate(result, { payload: acc }, { A: acc }) : acc),
        };
      }
      const aggregator = new Aggregator(parseAggregations(cfg.aggregations), custom);
      new PartitionWindows(spec, aggregator); // checks the settings now, not at the first record
      readKey = reader(cfg.key, cfg.keyType);
      readTime = reader(cfg.time, cfg.timeType);
      readValue = reader(cfg.value, cfg.valueType);
      const changelog = new Changelog({ kafka: cluster.getKafka(), topic, owner: topic });
      const kafka = cluster.getKafka();
      // asked once per source topic (again after a failure), not at every partition's opening
      const counts = new Map<string, Promise<number>>();
      const partitionsOf = (source: string) => {
        let count = counts.get(source);
        if (!count) {
          const asked = (async () => {
            const admin = kafka.admin();
            await admin.connect();
            try {
              const meta = await admin.fetchTopicMetadata({ topics: [source] });
              return meta.topics[0]?.partitions.length ?? 1;
            } finally {
              await admin.disconnect().catch(() => undefined);
            }
          })();
          counts.set(source, (count = asked));
          asked.catch(() => {
            if (counts.get(source) === asked) counts.delete(source);
          });
        }
        return count;
      };
      // how many times each result was sent (while it is not settled)
      const attempts = new Map<string, number>();
      const idOf = (r: PendingResult) => `${r.topic}\u0000${r.partition}\u0000${r.seq}`;
      const attemptOf = (r: PendingResult) => {
        const n = (attempts.get(idOf(r)) ?? 0) + 1;
        attempts.set(idOf(r), n);
        return n;
      };
      const flow = new ResultFlow<PendingResult>(
        {
          settled: (r) => {
            attempts.delete(idOf(r));
            processor.resultSettled(r.topic, r.partition, r.seq);
          },
          failed: (r, err) => {
            node.warn(
              t("kafka-window.errors.result-failed", { seq: r.seq, message: describeError(err).message }),
            );
            processor.resultFailed(r.topic, r.partition, r.seq);
          },
        },
        cfg.settleTimeoutMs,
        nodeKinds(RED),
      );
      const processor = new WindowProcessor(
        {
          spec,
          aggregator,
          openLog: async (source, partition) => {
            let count = await partitionsOf(source);
            if (partition >= count) {
              // partitions were added to the topic since it was asked
              counts.delete(source);
              count = await partitionsOf(source);
            }
            await changelog.ensureTopic(Math.max(count, partition + 1));
            return changelog.open(source, partition);
          },
          checkpointMs: cfg.checkpointMs,
          idleMs: cfg.idleTimeoutMs,
          // the group of the kafka-in the partition's records come from: behind, the partition is not quiet
          behind: (topic, partition) => {
            const source = kafkaSources.get(`${topic}\u0000${partition}`);
            const conf =
              source === undefined
                ? undefined
                : configOf<{ id: string; cluster?: unknown; groupId?: unknown }>(RED, source);
            const from = conf && (RED.nodes.getNode(String(conf.cluster)) as KafkaClusterNode | null);
            // a source this node cannot name: nothing tells it is behind (the close goes as before)
            if (!conf || !from || typeof conf.groupId !== "string") return Promise.resolve(false);
            return groupBehind(from.getKafka(), conf.groupId.trim(), topic, partition);
          },
          isFenced: isFencedError,
          reduceState: custom ? JSON.stringify([cfg.reduceInit.trim(), cfg.reduceStep.trim()]) : undefined,
          identityOf: (source, topicId) => cluster.topicIdentity(source, topicId),
        },
        {
          result: (pending) => {
            const r = pending.result;
            const msg = {
              _msgid: RED.util.generateId(),
              topic: pending.topic,
              key: r.key,
              payload: r.payload,
              window: {
                start: r.start,
                end: r.end,
                count: r.count,
                key: r.key,
                final: r.final,
                // per source partition: a group whose records are in several partitions has a result in each
                id: `${pending.topic}/${pending.partition}/${r.id}`,
                seq: pending.seq,
                topic: pending.topic,
                partition: pending.partition,
                firstOffset: r.firstOffset,
                lastOffset: r.lastOffset,
                truncated: r.truncated,
                // an effectively-once pulsar-out publishes it under this node's producer for the
                // partition, seq as sequence id; a try after a failure is told apart from a second msg
                source: topic,
                kafkaSource: kafkaSources.get(`${pending.topic}\u0000${pending.partition}`),
                incarnation: pending.incarnation,
                attempt: attemptOf(pending),
              },
            };
            flow.track(msg._msgid, pending);
            node.send([msg, null]);
          },
          changed: () => renderSoon(),
          warn: (message) => node.warn(message),
          checkpointFailed: (topic, partition, err) => {
            lastError = describeError(err).message;
            node.error(t("kafka-window.errors.checkpoint", { topic, partition, message: lastError }));
            renderSoon();
          },
        },
      );
      setup = { processor, flow };
    } catch (err) {
      setupError = err;
      const d = describeError(err);
      node.status({ fill: "red", shape: "ring", text: d.message });
      node.error(d.message);
    }

    let lastError: string | undefined;
    let queued = false;
    const renderSoon = () => {
      if (queued) return;
      queued = true;
      setImmediate(() => {
        queued = false;
        if (!setup) return;
        const vars = { windows: setup.processor.openWindows, results: setup.processor.pendingResults };
        if (lastError)
          node.status({
            fill: "red",
            shape: "ring",
            text: t("kafka-window.status.failing", { ...vars, message: lastError }),
          });
        else node.status({ fill: "green", shape: "dot", text: t("kafka-window.status.open", vars) });
      });
    };

    const hookLabel = `kafkaWindow${node.id.replace(/[^A-Za-z0-9]/g, "")}_${instanceKey(node).split("#")[1]}`;
    const stopTracking = setup ? trackFlows(RED, hookLabel, setup.flow) : () => undefined;

    // The kafka-in each partition's records come from (msg.kafka.source): the partitions a rebalance takes
    // away are given up here too (their new owner restores them), and the results name it, so that an
    // effectively-once pulsar-out closes their producers then and the new owner can open them.
    const kafkaSources = new Map<string, string>();
    const watches = new Map<string, () => void>();
    const watchSource = (id: string) => {
      if (watches.has(id)) return;
      const source = (RED.nodes.getNode(id) as { orderedSource?: OrderedSource } | null)?.orderedSource;
      if (!source) return;
      const stopAssigned = source.onAssigned?.((assigned) => {
        // results of a partition restored without a record name their kafka-in too (effectively-once)
        for (const a of assigned) kafkaSources.set(`${a.topic}\u0000${a.partition}`, id);
        setup?.processor.assigned(assigned);
      });
      const stopRevoked = source.onRevoked((revoked, closing) => {
        void setup?.processor.revoked(revoked);
        if (closing) {
          stop();
          watches.delete(id);
        }
      });
      const stop = () => {
        stopRevoked();
        stopAssigned?.();
      };
      watches.set(id, stop);
    };
    // The kafka-in nodes wired to this one are watched from the start (each after the flows started: it may
    // be made after this node): their partitions' state is restored without waiting for a record.
    const watchWired = () => {
      for (const n of sourcesOf(RED, node.id, "kafka-in")) watchSource(n.id);
    };
    const events = (RED as unknown as { events?: NodeJS.EventEmitter }).events;
    events?.on("flows:started", watchWired);
    watchWired();

    node.on(
      "input",
      (msg: NodeMessage, send: (m: (NodeMessage | null)[]) => void, done: (err?: Error) => void) => {
        const fail = (err: unknown) =>
          done(err instanceof Error ? err : new Error(describeError(err).message));
        if (!setup || !spec) return fail(setupError);
        const { processor } = setup;
        const k = (
          msg as {
            kafka?: {
              topic?: unknown;
              partition?: unknown;
              offset?: unknown;
              epoch?: unknown;
              attempt?: unknown;
              topicId?: unknown;
              source?: unknown;
            };
          }
        ).kafka;
        if (
          !k ||
          typeof k.topic !== "string" ||
          typeof k.partition !== "number" ||
          typeof k.offset !== "string"
        )
          return fail(
            new BridgeError(
              "kafka-window.errors.no-record",
              "the window node takes the msgs kafka-in emits (msg.kafka.topic, partition and offset)",
              false,
            ),
          );
        if (typeof k.source === "string") {
          watchSource(k.source);
          kafkaSources.set(`${k.topic}\u0000${k.partition}`, k.source);
        }
        const by = spec.by;
        void Promise.all([readKey(msg), readTime(msg), readValue(msg)]).then(([key, time, value]) => {
          const at = eventTime(time);
          const input: WindowInput = {
            topic: k.topic as string,
            partition: k.partition as number,
            offset: k.offset as string,
            key: keyText(key),
            // count windows need no event time: a record without one (timestamp -1) still counts
            time: Number.isFinite(at) ? at : by === "count" ? 0 : NaN,
            value,
            epoch: typeof k.epoch === "number" ? k.epoch : undefined,
            attempt: typeof k.attempt === "number" ? k.attempt : undefined,
            topicId: typeof k.topicId === "string" ? k.topicId : undefined,
          };
          processor.input(input, {
            done: (err) => (err === undefined ? done() : fail(err)),
            late: () => send([null, msg]),
          });
        }, fail);
      },
    );

    onClose(node, async () => {
      events?.off("flows:started", watchWired);
      stopTracking();
      for (const stop of watches.values()) stop();
      watches.clear();
      setup?.flow.close();
      await setup?.processor.close();
      node.status({});
    });
  }

  registerType(RED, "kafka-window", KafkaWindowNode);
}
