// kafka-in's delivery between real core nodes in a real Node-RED runtime, without brokers
// (test/support/delivery-lab.ts): what a deploy changes in the flow is what the settlement follows.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { lab, loadLab, redeploy } from "../support/delivery-lab";
import { stopHelper, unloadFlow } from "../support/flow";
import { waitFor } from "../support/wait";
import { autoJoin, csvRows, dropSwitch, rateDelay, trigger } from "../support/flow-nodes";

after(() => stopHelper());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** batch of 3 -> a slow delay -> switch (dropping v4; recreating sequences or not) -> join -> sink. */
const flow = (repair: boolean) => [
  { id: "in", type: "lab-source", wires: [["b"]] },
  { id: "b", type: "batch", mode: "count", count: "3", overlap: "0", wires: [["d"]] },
  rateDelay("d", "sw"),
  { ...dropSwitch("sw", "v4", repair, "j"), name: repair ? "repair" : "plain" },
  autoJoin("j", "out"),
  { id: "out", type: "lab-sink", wires: [] },
];

test("issue 12 review F3: a 'nodes' deploy that turns on a switch's 'recreate message sequences' (kafka-in not restarted) is followed: with Pulsar down nothing is committed that Pulsar never had", async () => {
  await loadLab(flow(false));
  try {
    lab.produce(3); // the plain switch passes each part on; the join completes the group
    await waitFor("the first group committed", () => lab.committed() === 3n, 15_000, 100);
    await redeploy(flow(true), "nodes");
    lab.up = false;
    lab.produce(3); // v3, v4 (dropped by the rule), v5: the switch now holds the parts until the sequence is whole
    await sleep(6500);
    assert.deepEqual(
      lab.lost((v) => v === "v4"),
      [],
      `committed ${lab.committed()} while Pulsar had nothing of the group`,
    );
    lab.up = true;
    lab.ack();
    await waitFor("the group committed once Pulsar has it", () => lab.committed() === 6n, 15_000, 100);
  } finally {
    await unloadFlow();
  }
});

/** A trigger that sends nothing at first, then its second msg after 300 ms (`op2type`: first or latest msg). */
const triggerFlow = (op2type: "pay" | "payl", byTopic = false) => [
  { id: "in", type: "lab-source", wires: [["t"]] },
  trigger({ op2type, bytopic: byTopic ? "topic" : "all" }),
  { id: "out", type: "lab-sink", wires: [] },
];

for (const op2type of ["pay", "payl"] as const)
  test(`issue 12 audit F1: core trigger "send nothing, then the ${op2type === "pay" ? "original" : "latest"} msg after 300 ms": with Pulsar down nothing it holds is committed; once Pulsar has the msg, all is`, async () => {
    await loadLab(triggerFlow(op2type));
    try {
      lab.up = false;
      lab.produce(5);
      // the second msg goes out after 300 ms; the sink holds it (Pulsar down)
      await waitFor("the trigger's msg at the sink", () => lab.held.length === 1, 10_000, 20);
      await sleep(500);
      const sent = op2type === "pay" ? "v0" : "v4";
      assert.deepEqual(lab.seen, [sent]);
      // the others were dropped by the trigger (ignored while it waits, or replaced by the latest)
      assert.deepEqual(
        lab.lost((v) => v !== sent),
        [],
        `committed ${lab.committed()} while Pulsar had nothing`,
      );
      assert.equal(lab.committed(), 0n, "the trigger's records wait for the msg it sent");
      lab.up = true;
      lab.ack();
      await waitFor("all five committed once Pulsar has the msg", () => lab.committed() === 5n, 10_000, 20);
    } finally {
      await unloadFlow();
    }
  });

test("issue 12 audit F1: a trigger by topic keeps each topic's records for that topic's msg; a redeploy while it waits commits nothing", async () => {
  const flow = triggerFlow("payl", true);
  // records of even offsets get topic "even", the others "odd"
  flow[0].wires = [["c"]];
  flow.splice(1, 0, {
    id: "c",
    type: "change",
    rules: [
      {
        t: "set",
        p: "topic",
        pt: "msg",
        to: '$number($substring(payload, 1)) % 2 = 1 ? "odd" : "even"',
        tot: "jsonata",
      },
    ],
    wires: [["t"]],
  } as never);
  await loadLab(flow);
  try {
    lab.up = false;
    lab.produce(4);
    await waitFor("each topic's latest msg at the sink", () => lab.held.length === 2, 10_000, 20);
    assert.deepEqual([...lab.seen].sort(), ["v2", "v3"]);
    // Pulsar has topic even's msg only
    const even = lab.held.findIndex((h) => h.msg.payload === "v2");
    lab.acked.add("v2");
    lab.held.splice(even, 1)[0].done();
    await sleep(300);
    const superseded = (v: string) => v === "v0" || v === "v1";
    assert.deepEqual(
      lab.lost(superseded),
      [],
      `committed ${lab.committed()}: odd's records wait for odd's msg`,
    );
    assert.equal(lab.committed(), 1n, "v0 (even, given up for v2) is done; v1 waits with v3");
    // a deploy that restarts the trigger while it holds odd's records: they are tried again, not settled
    lab.produce(2); // v4 (even), v5 (odd) wait in the new timers
    await sleep(100);
    await redeploy(
      flow.map((n) => (n.id === "t" ? { ...n, name: "renamed" } : n)),
      "nodes",
    );
    await sleep(1500);
    assert.deepEqual(
      lab.lost((v) => superseded(v) || v === "v4"),
      [],
      `committed ${lab.committed()}`,
    );
    lab.up = true;
    lab.ack();
    await waitFor(
      "all six committed once Pulsar has each topic's msg",
      () => {
        lab.ack();
        return lab.committed() === 6n;
      },
      10_000,
      20,
    );
  } finally {
    await unloadFlow();
  }
});

test("issue 12 audit F2: batch of 3 -> csv 'a single message [array]': the parts it keeps wait for the msg of rows; with Pulsar down nothing is committed", async () => {
  await loadLab([
    { id: "in", type: "lab-source", wires: [["b"]] },
    { id: "b", type: "batch", mode: "count", count: "3", overlap: "0", wires: [["rows"]] },
    csvRows("rows", "out"),
    { id: "out", type: "lab-sink", wires: [] },
  ]);
  try {
    lab.up = false;
    lab.produce(6);
    await waitFor("two msgs of rows at the sink", () => lab.held.length === 2, 10_000, 20);
    await sleep(300);
    assert.deepEqual(lab.seen, ["v0", "v1", "v2", "v3", "v4", "v5"]);
    assert.deepEqual(lab.lost(), [], `committed ${lab.committed()} while Pulsar had nothing`);
    lab.up = true;
    lab.ack();
    await waitFor("all six committed once Pulsar has the rows", () => lab.committed() === 6n, 10_000, 20);
  } finally {
    await unloadFlow();
  }
});

test("issue 12 review T1: a trigger that sends a first msg at once and the original msg after 300 ms: the record waits for both to be in Pulsar", async () => {
  await loadLab([
    { id: "in", type: "lab-source", wires: [["t"]] },
    trigger({ op1: "start", op1type: "str" }),
    { id: "out", type: "lab-sink", wires: [] },
  ]);
  try {
    lab.produce(1);
    await waitFor("the first msg in Pulsar", () => lab.acked.has("start"), 5000, 5);
    lab.up = false;
    await waitFor("the second msg at the sink", () => lab.held.length === 1, 5000, 10);
    await sleep(200);
    assert.deepEqual(lab.lost(), [], `committed ${lab.committed()} while the second msg waits for Pulsar`);
    lab.up = true;
    lab.ack();
    await waitFor("committed once both are in Pulsar", () => lab.committed() === 1n, 5000, 20);
  } finally {
    await unloadFlow();
  }
});

test("issue 12 review T7: a trigger inside a subflow wired to the subflow's output port only", async () => {
  await loadLab([
    { id: "f1", type: "tab" },
    {
      id: "sf",
      type: "subflow",
      name: "debounce",
      in: [{ x: 50, y: 30, wires: [{ id: "t" }] }],
      out: [{ x: 250, y: 30, wires: [{ id: "t", port: 0 }] }],
    },
    { ...trigger({ wires: [[]] }), z: "sf", x: 1, y: 1 },
    { id: "in", type: "lab-source", z: "f1", x: 1, y: 1, wires: [["inst"]] },
    { id: "inst", type: "subflow:sf", z: "f1", x: 1, y: 1, wires: [["out"]] },
    { id: "out", type: "lab-sink", z: "f1", x: 1, y: 1, wires: [] },
  ]);
  try {
    lab.up = false;
    lab.produce(3);
    await waitFor("the trigger's msg at the sink", () => lab.held.length === 1, 5000, 10);
    await sleep(300);
    assert.deepEqual(
      lab.lost((v) => v !== "v0"),
      [],
      `committed ${lab.committed()} while Pulsar had nothing`,
    );
    lab.up = true;
    lab.ack();
    await waitFor("all committed", () => lab.committed() === 3n, 5000, 20);
  } finally {
    await unloadFlow();
  }
});

test("issue 12 review T8: a trigger by a topic under payload whose second msg replaces the payload: its msg still takes what it kept", async () => {
  await loadLab([
    { id: "in", type: "lab-source", wires: [["c"]] },
    {
      id: "c",
      type: "change",
      rules: [{ t: "set", p: "payload", pt: "msg", to: '{"id":"dev","v":payload}', tot: "jsonata" }],
      wires: [["t"]],
    },
    trigger({ op2: "offline", op2type: "str", bytopic: "topic", topic: "payload.id" }),
    { id: "out", type: "lab-sink", wires: [] },
  ]);
  try {
    lab.up = false;
    lab.produce(2);
    await waitFor("the trigger's msg at the sink", () => lab.held.length === 1, 5000, 10);
    assert.equal(lab.held[0]?.msg.payload, "offline");
    await sleep(200);
    assert.equal(lab.committed(), 0n);
    lab.up = true;
    lab.ack();
    await waitFor(
      "both committed once the trigger's msg is in Pulsar",
      () => lab.committed() === 2n,
      5000,
      20,
    );
  } finally {
    await unloadFlow();
  }
});

test("issue 12 review T3: a trigger that waits to be reset (0) but takes msg.delay: a msg with a delay of 300 ms is held for its second msg", async () => {
  await loadLab([
    { id: "in", type: "lab-source", wires: [["c"]] },
    {
      id: "c",
      type: "change",
      rules: [{ t: "set", p: "delay", pt: "msg", to: "300", tot: "num" }],
      wires: [["t"]],
    },
    trigger({ duration: "0", overrideDelay: true }),
    { id: "out", type: "lab-sink", wires: [] },
  ]);
  try {
    lab.up = false;
    lab.produce(1);
    await waitFor("the trigger's msg at the sink", () => lab.held.length === 1, 5000, 10);
    await sleep(200);
    assert.deepEqual(lab.lost(), [], `committed ${lab.committed()} while Pulsar had nothing`);
    lab.up = true;
    lab.ack();
    await waitFor("committed once it is in Pulsar", () => lab.committed() === 1n, 5000, 20);
  } finally {
    await unloadFlow();
  }
});

test("issue 12: csv 'a single message [array]' with parts of two lines sends their rows at once: each record settles with its own rows (none waits for a msg that never comes)", async () => {
  await loadLab([
    { id: "in", type: "lab-source", wires: [["c"]] },
    {
      id: "c",
      type: "change",
      rules: [{ t: "set", p: "payload", pt: "msg", to: 'payload & "\\n" & payload', tot: "jsonata" }],
      wires: [["b"]],
    },
    { id: "b", type: "batch", mode: "count", count: "3", overlap: "0", wires: [["rows"]] },
    csvRows("rows", "out"),
    { id: "out", type: "lab-sink", wires: [] },
  ]);
  try {
    lab.produce(3);
    await waitFor("every record committed", () => lab.committed() === 3n, 10_000, 20);
  } finally {
    await unloadFlow();
  }
});
