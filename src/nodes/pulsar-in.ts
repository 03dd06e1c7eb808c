// pulsar-in: subscribes to Pulsar topics and sends one msg per message; a message is acknowledged only
// once the flow settled everything made of it (Node-RED's message hooks, as kafka-in), negatively
// acknowledged when it fails (Pulsar delivers it again after a delay) and dead-lettered after its last try.
// The delivery is PulsarSource's, the subscribing (a list, or a pattern over a namespace)
// PulsarSubscriptions'; this file finds the cluster, wires them and shows the status.
import { PULSAR_IN_DEFAULTS } from "./properties";
import { coerceConfig } from "../common/coerce";
import { ConfigurationError, describeError, statusText } from "../common/errors";
import {
  instanceKey,
  onClose,
  registerType,
  type Node,
  type NodeConfig,
  type NodeMessage,
  type RED,
} from "./red";
import type { PulsarClusterNode } from "./pulsar-cluster";
import { trackFlows } from "./flow-hooks";
import { nodeKinds } from "./flow-shape";
import { messageIdText, PulsarSource } from "../bridge/pulsar-source";
import { msgIdSource } from "../bridge/record-to-msg";
import type { Producer, PulsarClient, ReceivedMessage, SubscriptionType } from "../pulsar/types";
import { parseTopicName } from "../pulsar/service-url";
import { parseTopicPattern, type TopicPattern } from "../pulsar/topic-pattern";
import { PulsarSubscriptions } from "../bridge/pulsar-subscriptions";

export function registerPulsarIn(RED: RED): void {
  function PulsarInNode(this: Node, def: NodeConfig) {
    RED.nodes.createNode(this, def);
    const node = this;
    const share = instanceKey(node);
    const cfg = coerceConfig(def, PULSAR_IN_DEFAULTS);
    const t = (key: string, vars?: Record<string, unknown>) =>
      RED._(`node-red-contrib-kafka-pulsar/pulsar:${key}`, vars);
    const red = (err: unknown) => {
      const d = describeError(err);
      node.status({ fill: "red", shape: "ring", text: statusText(d.message) });
      node.error(d.message);
    };

    let topics: string[] = [];
    let pattern: TopicPattern | undefined;
    let cluster: PulsarClusterNode;
    try {
      const c = RED.nodes.getNode(cfg.cluster) as PulsarClusterNode | null;
      if (!c) throw new ConfigurationError("pulsar-in.errors.no-cluster", "no pulsar-cluster is configured");
      cluster = c;
      if (cfg.topicMode === "pattern") {
        try {
          pattern = parseTopicPattern(cfg.topics);
        } catch (err) {
          throw new ConfigurationError("pulsar-in.errors.invalid-pattern", describeError(err).message);
        }
      } else {
        topics = cfg.topics
          .split(",")
          .map((x) => x.trim())
          .filter((x) => x !== "");
        if (topics.length === 0)
          throw new ConfigurationError("pulsar-in.errors.no-topics", "no topic is given");
        for (const topic of topics)
          try {
            parseTopicName(topic);
          } catch (err) {
            throw new ConfigurationError(
              "pulsar-in.errors.invalid-topic",
              `${topic} is not a valid Pulsar topic: ${describeError(err).message}`,
            );
          }
      }
      if (!cfg.subscription.trim())
        throw new ConfigurationError("pulsar-in.errors.no-subscription", "no subscription name is given");
    } catch (err) {
      red(err);
      return;
    }

    const describeNode = (id: string) => {
      const n = RED.nodes.getNode(id) as (Node & { type?: string }) | null;
      if (!n) return `node ${id}`;
      return n.name ? `"${n.name}" (${n.type} ${id})` : `${n.type} ${id}`;
    };
    const client: Promise<PulsarClient> = cluster.acquireClient(share);
    let deadLetterProducer: Promise<Producer> | undefined;
    const deadLetterTopic = cfg.deadLetterTopic.trim();
    const writeDeadLetter = deadLetterTopic
      ? async (m: ReceivedMessage, reason: string, tries: number) => {
          deadLetterProducer ??= client.then((c) => c.createProducer({ topic: deadLetterTopic }));
          deadLetterProducer.catch(() => (deadLetterProducer = undefined));
          await (
            await deadLetterProducer
          ).send({
            payload: m.payload,
            nullValue: m.nullValue || undefined,
            key: m.keyBase64 ? m.keyBytes : m.key,
            eventTime: m.eventTime,
            properties: {
              ...m.properties,
              // as Pulsar's own clients name them
              REAL_TOPIC: m.topic,
              ORIGIN_MESSAGE_ID: messageIdText(m),
              "dlq.error": reason,
              "dlq.attempts": String(tries),
              "dlq.subscription": cfg.subscription,
            },
          });
        }
      : undefined;
    const nextMsgId = msgIdSource();
    const showStatus = () => {
      const n = source.pending;
      if (source.lastError && n === 0)
        node.status({ fill: "yellow", shape: "ring", text: statusText(source.lastError) });
      else
        node.status({
          fill: "green",
          shape: n >= cfg.maxInFlight ? "ring" : "dot",
          text: t("pulsar-in.status.in-flight", { n }),
        });
    };
    const source = new PulsarSource(
      {
        valueFormat: cfg.valueFormat as "auto" | "string" | "json" | "buffer",
        maxInFlight: Math.max(1, cfg.maxInFlight),
        nackDelayMs: Math.max(0, cfg.nackDelayMs),
        maxTries: Math.max(0, cfg.maxTries),
        settleTimeoutMs: Math.max(0, cfg.settleTimeoutMs),
        nextMsgId,
        describeNode,
        writeDeadLetter,
        kinds: nodeKinds(RED),
      },
      {
        send: (msg) => node.send(msg as unknown as NodeMessage),
        decodeFailed: (m, err) =>
          node.error(`${m.topic} ${messageIdText(m)}: ${describeError(err).message}`, {
            payload: m.payload,
            topic: m.topic,
            pulsar: { topic: m.topic, messageId: messageIdText(m), redeliveryCount: m.redeliveryCount },
          }),
        deadLettered: (m, reason) =>
          node.warn(
            t("pulsar-in.errors.dead-lettered", { id: messageIdText(m), topic: deadLetterTopic, reason }),
          ),
        changed: () => showStatus(),
      },
    );
    const hookLabel = `pulsarIn${node.id.replace(/[^A-Za-z0-9]/g, "")}_${nextMsgId()}`;
    const stopTracking = trackFlows(RED, hookLabel, source);

    node.status({ fill: "yellow", shape: "ring", text: "node-red:common.status.connecting" });
    const subscriptions = new PulsarSubscriptions({
      subscribe: async (topic) =>
        (await client).subscribe({
          topic,
          subscription: cfg.subscription.trim(),
          subscriptionType: cfg.subscriptionType as SubscriptionType,
          initialPosition: cfg.initialPosition === "earliest" ? "earliest" : "latest",
          receiverQueueSize: Math.min(1000, Math.max(1, cfg.maxInFlight)),
        }),
      started: (_topic, consumer) => {
        source.start(consumer);
        showStatus();
      },
      stopped: (_topic, consumer) => source.stop(consumer),
      subscribeFailed: (topic, err, seconds) => {
        const reason = describeError(err).message;
        node.status({ fill: "red", shape: "ring", text: statusText(`${topic}: ${reason}`) });
        node.warn(t("pulsar-in.errors.subscribe", { topic, reason, seconds }));
      },
      listFailed: (err, seconds) => {
        const reason = describeError(err).message;
        node.status({ fill: "red", shape: "ring", text: statusText(reason) });
        node.warn(t("pulsar-in.errors.list", { namespace: pattern?.namespace, reason, seconds }));
      },
      matched: (added, removed) => {
        if (added.length) node.log(t("pulsar-in.log.topics-added", { topics: added.join(", ") }));
        if (removed.length) node.log(t("pulsar-in.log.topics-removed", { topics: removed.join(", ") }));
      },
    });
    if (pattern) {
      const p = pattern;
      subscriptions.watch(
        p,
        async () => (await client).getTopicsOfNamespace(p.namespace, p.persistent),
        Math.max(1, cfg.discoverySeconds) * 1000,
      );
    } else for (const topic of topics) subscriptions.add(topic);

    onClose(node, async () => {
      await subscriptions.close();
      await source.close();
      stopTracking();
      const p = deadLetterProducer;
      if (p) await p.then((x) => x.close()).catch(() => undefined);
      await cluster.releaseClient(share);
      node.status({});
    });
  }

  registerType(RED, "pulsar-in", PulsarInNode);
}
