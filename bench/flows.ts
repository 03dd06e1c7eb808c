// The flows the benchmark deploys. Every node keeps its shipped defaults except what a case is about.
import { kafkaBrokers, pulsarUrl } from "../test/support/brokers";

export interface FlowTarget {
  kafkaTopic: string;
  groupId: string;
  pulsarTopic: string;
}

const tab = { id: "bench", type: "tab", label: "bench" };
const kafkaCluster = { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "bench" };
const pulsarCluster = { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl };

function kafkaIn(t: FlowTarget, wires: string[][], extra: Record<string, unknown> = {}) {
  return {
    id: "in",
    type: "kafka-in",
    z: "bench",
    cluster: "kc",
    topics: t.kafkaTopic,
    groupId: t.groupId,
    startFrom: "earliest",
    wires,
    ...extra,
  };
}

/** The change node of the example bridge: stamps a Pulsar property. */
const change = {
  id: "chg",
  type: "change",
  z: "bench",
  rules: [{ t: "set", p: "properties.bridgedAt", pt: "msg", to: "", tot: "date" }],
  wires: [["out"]],
};

function pulsarOut(t: FlowTarget, extra: Record<string, unknown> = {}) {
  return {
    id: "out",
    type: "pulsar-out",
    z: "bench",
    cluster: "pc",
    topic: t.pulsarTopic,
    wires: [],
    ...extra,
  };
}

/** kafka-in -> a function node that counts each msg (returning null: done without a send). */
export function kafkaInAlone(t: FlowTarget): unknown[] {
  return [
    tab,
    kafkaCluster,
    kafkaIn(t, [["count"]]),
    {
      id: "count",
      type: "function",
      z: "bench",
      func: 'context.set("n", (context.get("n") || 0) + 1);\nreturn null;',
      outputs: 1,
      wires: [],
    },
  ];
}

export type BridgeMode = "settled" | "effectively-once" | "batch";

/** kafka-in -> change -> pulsar-out. */
export function bridge(t: FlowTarget, mode: BridgeMode): unknown[] {
  return [
    tab,
    kafkaCluster,
    pulsarCluster,
    kafkaIn(t, [["chg"]], mode === "batch" ? { batchOutput: true } : {}),
    change,
    pulsarOut(t, mode === "effectively-once" ? { effectivelyOnce: true } : {}),
  ];
}

/** kafka-in -> window (tumbling, a minute of event time or `size` ms, count per key) -> pulsar-out. */
export function windowedBridge(t: FlowTarget, changelogTopic: string, size?: number): unknown[] {
  return [
    tab,
    kafkaCluster,
    pulsarCluster,
    kafkaIn(t, [["win"]]),
    {
      id: "win",
      type: "kafka-window",
      z: "bench",
      cluster: "kc",
      changelogTopic,
      ...(size === undefined ? {} : { size }),
      wires: [["out"], []],
    },
    pulsarOut(t),
  ];
}

/** The peer's consumer (node-red-contrib-kafka-suite) -> change -> pulsar-out. */
export function peerBridge(t: FlowTarget): unknown[] {
  return [
    tab,
    pulsarCluster,
    {
      id: "pb",
      type: "kafka-suite-broker",
      brokers: kafkaBrokers.join(","),
      clientId: "bench-peer",
      backend: "kafkajs",
      servicePreset: "self-hosted",
      authType: "none",
      logLevel: "warn",
    },
    {
      id: "in",
      type: "kafka-suite-consumer",
      z: "bench",
      broker: "pb",
      topics: t.kafkaTopic,
      groupId: t.groupId,
      startOffset: "earliest",
      autoCommit: true,
      autoCommitInterval: 5000,
      messageFormat: "string",
      concurrency: 1,
      wires: [["chg"]],
    },
    change,
    pulsarOut(t),
  ];
}
