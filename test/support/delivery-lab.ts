// kafka-in's delivery between real core nodes, without brokers: a real Node-RED runtime (the test helper)
// runs a flow from a stand-in source, which feeds kafka-in's own Delivery, SettlementTracker and message
// hooks with records of one partition (settled mode, as src/nodes/kafka-in.ts wires them), to a stand-in
// sink that acts as pulsar-out (done() only once "Pulsar" acknowledged). What was committed and what the sink
// acknowledged tell whether a record was settled before Pulsar had it.
import { Delivery } from "../../src/bridge/delivery";
import { OffsetLedger } from "../../src/bridge/offsets";
import { msgIdSource } from "../../src/bridge/record-to-msg";
import { trackFlows } from "../../src/nodes/flow-hooks";
import { groupCountsAfter, nodeKinds } from "../../src/nodes/flow-shape";
import type { RED as Runtime } from "../../src/nodes/red";
import { helper, loadWithSets, type NodeSet } from "./flow";

interface Held {
  msg: { payload?: unknown };
  done: (err?: unknown) => void;
}

/** What the lab's flow did: the partition's commit, what the sink got and acknowledged. */
export class Lab {
  acked = new Set<string>();
  seen: string[] = [];
  held: Held[] = [];
  /** The sink acknowledges at once ("Pulsar" up). */
  up = true;
  logs: string[] = [];
  produce: (n: number) => void = () => undefined;
  private commitPoint = 0n;
  takeCommit: () => void = () => undefined;

  /** The partition's committed point (the next offset to read). */
  committed(): bigint {
    this.takeCommit();
    return this.commitPoint;
  }

  setCommitted(offset: bigint): void {
    this.commitPoint = offset;
  }

  ack(): void {
    const held = this.held;
    this.held = [];
    for (const h of held) {
      for (const v of values(h.msg.payload)) this.acked.add(v);
      h.done();
    }
  }

  /** Committed records ("v<offset>") the sink never acknowledged, but those the flow meant to drop. */
  lost(dropped: (value: string) => boolean = () => false): string[] {
    const c = Number(this.committed());
    const out: string[] = [];
    for (let i = 0; i < c; i++) if (!this.acked.has(`v${i}`) && !dropped(`v${i}`)) out.push(`v${i}`);
    return out;
  }
}

/** The record values in a payload (a record's value, or arrays and objects of them). */
function values(p: unknown): string[] {
  if (typeof p === "string") return [p];
  if (Array.isArray(p)) return p.flatMap(values);
  if (p && typeof p === "object") return Object.values(p).flatMap(values);
  return [];
}

export const lab = new Lab();

const labNodes: NodeSet = (R) => {
  const RED = R as unknown as Runtime;
  function Source(this: import("../../src/nodes/red").Node, def: { maxInFlight?: number }) {
    RED.nodes.createNode(this, def as never);
    const node = this;
    const ledger = new OffsetLedger();
    const nextMsgId = msgIdSource();
    let next = 0n;
    let queued = 0;
    const needs = 2 * groupCountsAfter(RED, node.id, 1).reduce((s, g) => s + g.needs, 0);
    const maxInFlight = Math.max(Number(def.maxInFlight ?? 2000), needs);
    const pump = () => {
      while (queued > 0 && ledger.inFlight < maxInFlight) {
        queued--;
        const offset = String(next++);
        ledger.add("t", 0, offset);
        delivery.onRecord("t", 0, {
          offset,
          value: Buffer.from(`v${offset}`),
          key: null,
          timestamp: "0",
          attributes: 0,
          headers: {},
        });
      }
    };
    const delivery = new Delivery(
      {
        settled: true,
        batchOutput: false,
        batchSize: 100,
        settleTimeoutMs: 300_000,
        maxAttempts: 5,
        retryBackoffMs: 200,
        groupId: "g",
        cluster: "c",
        decode: (r) =>
          ({
            payload: r.message.value?.toString(),
            topic: r.topic,
            kafka: { topic: r.topic, partition: r.partition, offset: r.message.offset },
          }) as never,
        nextMsgId,
        describeNode: (id) => id,
        ledger,
        kinds: nodeKinds(RED),
      },
      {
        send: (msg) => node.send(msg),
        decodeFailed: () => undefined,
        deadLettered: (r) => lab.logs.push(`dead-lettered ${r.message.offset}`),
        deadLetterFailed: () => undefined,
        blocked: (b) => lab.logs.push(`blocked ${b.offset}: ${b.reason}`),
        expired: (r, e) => lab.logs.push(`expired ${r.message.offset}: ${(e as Error).message}`),
        lost: () => undefined,
        changed: () => undefined,
      },
    );
    delivery.control = {
      settled: () => setImmediate(pump),
      block: () => undefined,
      unblock: () => undefined,
    };
    const stop = trackFlows(RED, `lab${node.id.replace(/[^A-Za-z0-9]/g, "")}_${nextMsgId()}`, delivery);
    lab.produce = (n) => {
      queued += n;
      pump();
    };
    lab.takeCommit = () => {
      const c = ledger.takeCommittable("t", 0);
      if (c === undefined) return;
      ledger.commitConfirmed("t", 0, c);
      lab.setCommitted(BigInt(c));
    };
    node.on("close", (done: () => void) => {
      stop();
      delivery.close();
      done();
    });
  }
  RED.nodes.registerType("lab-source", Source as never);
  function Sink(this: import("../../src/nodes/red").Node, def: object) {
    RED.nodes.createNode(this, def as never);
    this.on("input", ((msg: Held["msg"], _send: unknown, done: Held["done"]) => {
      lab.seen.push(...values(msg.payload));
      lab.held.push({ msg, done });
      if (lab.up) setImmediate(() => lab.ack());
    }) as never);
  }
  RED.nodes.registerType("lab-sink", Sink);
};

/** Loads `flow` (its source "lab-source", its sink "lab-sink") afresh. */
export async function loadLab(flow: unknown[]): Promise<void> {
  Object.assign(lab, { acked: new Set(), seen: [], held: [], up: true, logs: [] });
  lab.setCommitted(0n);
  await loadWithSets([labNodes], flow);
}

export const redeploy = (flow: unknown[], type: "full" | "flows" | "nodes") => helper.setFlows(flow, type);
