// The flows users wire, in a real Node-RED runtime against the real brokers: a disabled node downstream,
// core join / batch / split -> join between kafka-in and pulsar-out (with Pulsar unreachable, then across
// a redeploy), a function that throws, a node that holds records past the settle deadline. Offsets are
// read with Kafka's own consumer-groups tool; Pulsar's content with a consumer.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { helper, loadFlow, unloadFlow, stopHelper } from "../support/flow";
import { consoleConsume, createTopic, committedOffsets, produce } from "../support/kafka";
import { kafkaBrokers, pulsarUrl, uniqueName } from "../support/brokers";
import { createClient } from "../../src/pulsar/client";
import type { Consumer, PulsarClient, ReceivedMessage } from "../../src/pulsar/types";
import { freePort } from "../support/node-red-process";
import { waitFor } from "../support/wait";
import { autoJoin, dropSwitch, rateDelay } from "../support/flow-nodes";
import { receipt } from "../../src/nodes/deploy-watch";
import type { RED } from "../../src/nodes/red";

let pulsar: PulsarClient;
before(() => {
  pulsar = createClient({ serviceUrl: pulsarUrl });
});
after(async () => {
  await pulsar.close();
  await stopHelper();
});

async function drain(consumer: Consumer, n: number, timeoutMs = 60_000): Promise<ReceivedMessage[]> {
  const out: ReceivedMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n && Date.now() < deadline) {
    try {
      const m = await consumer.receive(Math.min(Math.max(1, deadline - Date.now()), 2000));
      out.push(m);
      await consumer.acknowledge(m);
    } catch {
      /* keep waiting until the deadline */
    }
  }
  return out;
}

/** What else arrives within `ms` (nothing, when the flow is correct). */
async function extra(consumer: Consumer, ms: number): Promise<ReceivedMessage[]> {
  return drain(consumer, Number.MAX_SAFE_INTEGER, ms);
}

async function committed(groupId: string, topic: string, partition = 0): Promise<number> {
  return (await committedOffsets(groupId, topic)).get(partition)?.committed ?? -1;
}

interface Setup {
  kafkaTopic: string;
  pulsarTopic: string;
  groupId: string;
  consumer: Consumer;
}

async function setup(prefix: string, records: number, value = (i: number) => `v${i}`): Promise<Setup> {
  const kafkaTopic = uniqueName(prefix);
  const pulsarTopic = `persistent://public/default/${uniqueName(prefix)}`;
  const groupId = uniqueName("group");
  await createTopic(kafkaTopic, 1);
  const consumer = await pulsar.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });
  await produce(
    kafkaTopic,
    Array.from({ length: records }, (_, i) => ({ key: `k${i}`, value: value(i) })),
  );
  return { kafkaTopic, pulsarTopic, groupId, consumer };
}

function flow(
  s: Setup,
  between: Record<string, unknown>[],
  o: { inWires: string[]; serviceUrl?: string; kafkaIn?: Record<string, unknown> },
) {
  return [
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "delivery-test" },
    { id: "pc", type: "pulsar-cluster", serviceUrl: o.serviceUrl ?? pulsarUrl },
    {
      id: "in",
      type: "kafka-in",
      cluster: "kc",
      topics: s.kafkaTopic,
      groupId: s.groupId,
      startFrom: "earliest",
      retryBackoffMs: 200,
      wires: [o.inWires],
      ...o.kafkaIn,
    },
    ...between,
    // short send timeout: with Pulsar down, sends fail within the test's time
    { id: "out", type: "pulsar-out", cluster: "pc", topic: s.pulsarTopic, sendTimeoutMs: 3000, wires: [] },
  ];
}

/** Statuses of node `id`, through a core status node wired to a helper node. */
function statusWatch(id: string) {
  return [
    { id: "st", type: "status", scope: [id], wires: [["st-h"]] },
    { id: "st-h", type: "helper" },
  ];
}
function collectStatuses(): { text: string; fill: string }[] {
  const out: { text: string; fill: string }[] = [];
  helper
    .getNode("st-h")
    ?.on("input", (msg: { status: { text: string; fill: string } }) => out.push(msg.status));
  return out;
}

test("a disabled debug node downstream does not stall the bridge: all 300 records arrive and commit", async () => {
  const s = await setup("disabled", 300);
  const between = [
    { id: "fn", type: "function", func: "return msg;", outputs: 1, wires: [["out", "dbg"]] },
    { id: "dbg", type: "debug", d: true, active: true, wires: [] },
  ];
  await loadFlow(flow(s, between, { inWires: ["fn"], kafkaIn: { maxInFlight: 50 } }));
  try {
    const got = await drain(s.consumer, 300, 60_000);
    assert.equal(got.length, 300);
    await waitFor(
      "offset 300 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === 300,
      30_000,
    );
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("core join of 5: nothing commits while Pulsar is down, not even across a redeploy; then all 5 arrive joined and commit", async () => {
  const s = await setup("join", 5);
  const between = [
    { id: "j1", type: "join", mode: "custom", build: "array", count: "5", timeout: "", wires: [["out"]] },
  ];
  const down = `pulsar://127.0.0.1:${await freePort()}`;
  await loadFlow(flow(s, between, { inWires: ["j1"], serviceUrl: down }));
  try {
    // the joined msg fails in pulsar-out (send timeout 3 s) and is retried; the parts stay unsettled
    await new Promise((r) => setTimeout(r, 10_000));
    assert.equal(await committed(s.groupId, s.kafkaTopic), -1, "no part committed while Pulsar is down");
  } finally {
    await unloadFlow();
  }
  assert.equal(await committed(s.groupId, s.kafkaTopic), -1, "no part committed by the redeploy's close");
  await loadFlow(flow(s, between, { inWires: ["j1"] }));
  try {
    const got = await drain(s.consumer, 1, 60_000);
    assert.equal(got.length, 1);
    assert.deepEqual(JSON.parse(got[0]?.payload.toString() ?? ""), ["v0", "v1", "v2", "v3", "v4"]);
    await waitFor("offset 5 committed", async () => (await committed(s.groupId, s.kafkaTopic)) === 5, 30_000);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a join holding parts when it is redeployed: the parts are emitted again to the new join, none is lost", async () => {
  const s = await setup("join-redeploy", 12);
  const between = [
    { id: "j1", type: "join", mode: "custom", build: "array", count: "5", timeout: "", wires: [["out"]] },
  ];
  await loadFlow(flow(s, between, { inWires: ["j1"] }));
  try {
    // 12 records: two groups of 5 go out, 2 parts stay held by the join
    const first = await drain(s.consumer, 2, 60_000);
    assert.equal(first.length, 2);
    await waitFor(
      "offset 10 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === 10,
      30_000,
    );
    assert.equal(await committed(s.groupId, s.kafkaTopic), 10, "the 2 held parts are not committed");
  } finally {
    await unloadFlow();
  }
  assert.equal(
    await committed(s.groupId, s.kafkaTopic),
    10,
    "closing the join did not settle its held parts",
  );
  await produce(
    s.kafkaTopic,
    [0, 1, 2].map((i) => ({ key: `n${i}`, value: `w${i}` })),
  );
  await loadFlow(flow(s, between, { inWires: ["j1"] }));
  try {
    const got = await drain(s.consumer, 1, 60_000);
    assert.deepEqual(JSON.parse(got[0]?.payload.toString() ?? ""), ["v10", "v11", "w0", "w1", "w2"]);
    await waitFor(
      "offset 15 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === 15,
      30_000,
    );
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a join of 10 behind a kafka-in with max in flight 5: the window is raised for it, so its groups fill; each record once", async () => {
  const s = await setup("join-window", 20);
  const between = [
    { id: "j10", type: "join", mode: "custom", build: "array", count: "10", timeout: "", wires: [["out"]] },
  ];
  await loadFlow(
    flow(s, between, { inWires: ["j10"], kafkaIn: { maxInFlight: 5, settleTimeoutMs: 20_000 } }),
  );
  try {
    const got = await drain(s.consumer, 2, 60_000);
    assert.deepEqual(
      got.map((m) => JSON.parse(m.payload.toString()) as string[]),
      [Array.from({ length: 10 }, (_, i) => `v${i}`), Array.from({ length: 10 }, (_, i) => `v${i + 10}`)],
    );
    await waitFor(
      "offset 20 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === 20,
      30_000,
    );
    assert.deepEqual(await extra(s.consumer, 2000), [], "nothing sent twice");
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a switch recreating message sequences between batch and join, slowed by a delay, with Pulsar down: nothing commits while it holds parts; afterwards the joined parts arrive and commit", async () => {
  const s = await setup("switch-repair", 3);
  const between = [
    { id: "bt", type: "batch", mode: "count", count: 3, overlap: 0, wires: [["dl"]] },
    // one msg every 2 s: the switch holds the sequence's first part for 4 s, idle
    rateDelay("dl", "sw"),
    dropSwitch("sw", "v1", true, "jn"),
    autoJoin("jn", "out"),
  ];
  const down = `pulsar://127.0.0.1:${await freePort()}`;
  await loadFlow(flow(s, between, { inWires: ["bt"], serviceUrl: down }));
  try {
    await new Promise((r) => setTimeout(r, 8000));
    assert.equal(
      await committed(s.groupId, s.kafkaTopic),
      -1,
      "nothing committed while the switch or Pulsar holds it",
    );
  } finally {
    await unloadFlow();
  }
  assert.equal(await committed(s.groupId, s.kafkaTopic), -1, "nothing committed by the close");
  await loadFlow(flow(s, between, { inWires: ["bt"] }));
  try {
    const got = await drain(s.consumer, 1, 60_000);
    assert.deepEqual(JSON.parse(got[0]?.payload.toString() ?? ""), ["v0", "v2"]);
    await waitFor("offset 3 committed", async () => (await committed(s.groupId, s.kafkaTopic)) === 3, 30_000);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("split -> switch recreating sequences -> join, 60 parts a record, every part of some records dropped: nothing commits while Pulsar is down; then each kept record arrives joined once, and the dropped ones commit too", async () => {
  // even records: the parts 0..59, odd ones dropped by the switch; odd records: every part negative
  const value = (i: number) =>
    JSON.stringify(Array.from({ length: 60 }, (_, k) => (i % 2 === 0 ? (k % 2 === 0 ? k : -k) : -1 - k)));
  const s = await setup("split-switch", 10, value);
  const between = [
    {
      id: "sp2",
      type: "split",
      splt: "\\n",
      spltType: "str",
      arraySplt: 1,
      arraySpltType: "len",
      wires: [["sw2"]],
    },
    {
      id: "sw2",
      type: "switch",
      property: "payload",
      propertyType: "msg",
      rules: [{ t: "gte", v: "0", vt: "num" }],
      checkall: "true",
      repair: true,
      outputs: 1,
      wires: [["j2"]],
    },
    { id: "j2", type: "join", mode: "auto", wires: [["out"]] },
  ];
  const down = `pulsar://127.0.0.1:${await freePort()}`;
  await loadFlow(flow(s, between, { inWires: ["sp2"], serviceUrl: down, kafkaIn: { valueFormat: "json" } }));
  try {
    await new Promise((r) => setTimeout(r, 8_000));
    assert.equal(await committed(s.groupId, s.kafkaTopic), -1, "no record committed while Pulsar is down");
  } finally {
    await unloadFlow();
  }
  assert.equal(await committed(s.groupId, s.kafkaTopic), -1, "nothing committed by the close");
  await loadFlow(flow(s, between, { inWires: ["sp2"], kafkaIn: { valueFormat: "json" } }));
  try {
    const got = await drain(s.consumer, 5, 60_000);
    const kept = Array.from({ length: 30 }, (_, k) => 2 * k);
    assert.deepEqual(
      got.map((m) => JSON.parse(m.payload.toString()) as number[]),
      Array.from({ length: 5 }, () => kept),
    );
    await waitFor(
      "offset 10 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === 10,
      30_000,
    );
    assert.deepEqual(await extra(s.consumer, 2000), [], "nothing sent twice");
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("split -> join: a record split in parts settles only when the joined msg is in Pulsar", async () => {
  const s = await setup("split-join", 20, (i) => JSON.stringify([i, i + 1, i + 2]));
  const between = [
    {
      id: "sp1",
      type: "split",
      splt: "\\n",
      spltType: "str",
      arraySplt: 1,
      arraySpltType: "len",
      wires: [["dbl"]],
    },
    {
      id: "dbl",
      type: "function",
      func: "msg.payload = msg.payload * 2; return msg;",
      outputs: 1,
      wires: [["j1"]],
    },
    { id: "j1", type: "join", mode: "auto", wires: [["out"]] },
  ];
  const down = `pulsar://127.0.0.1:${await freePort()}`;
  await loadFlow(flow(s, between, { inWires: ["sp1"], serviceUrl: down, kafkaIn: { valueFormat: "json" } }));
  try {
    await new Promise((r) => setTimeout(r, 8_000));
    assert.equal(await committed(s.groupId, s.kafkaTopic), -1, "no record committed while Pulsar is down");
  } finally {
    await unloadFlow();
  }
  await loadFlow(flow(s, between, { inWires: ["sp1"], kafkaIn: { valueFormat: "json" } }));
  try {
    const got = await drain(s.consumer, 20, 60_000);
    assert.deepEqual(
      got.map((m) => JSON.parse(m.payload.toString()) as number[]).sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0)),
      Array.from({ length: 20 }, (_, i) => [2 * i, 2 * i + 2, 2 * i + 4]),
    );
    await waitFor(
      "offset 20 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === 20,
      30_000,
    );
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("core batch of 3: nothing commits while Pulsar is down; afterwards every record arrives once and commits", async () => {
  const s = await setup("batch-node", 9);
  const between = [
    { id: "bt1", type: "batch", mode: "count", count: 3, overlap: 0, honourParts: false, wires: [["out"]] },
  ];
  const down = `pulsar://127.0.0.1:${await freePort()}`;
  await loadFlow(flow(s, between, { inWires: ["bt1"], serviceUrl: down }));
  try {
    await new Promise((r) => setTimeout(r, 6_000));
    assert.equal(await committed(s.groupId, s.kafkaTopic), -1);
  } finally {
    await unloadFlow();
  }
  await loadFlow(flow(s, between, { inWires: ["bt1"] }));
  try {
    const got = await drain(s.consumer, 9, 60_000);
    assert.deepEqual(
      got.map((m) => m.payload.toString()).sort(),
      Array.from({ length: 9 }, (_, i) => `v${i}`).sort(),
    );
    await waitFor("offset 9 committed", async () => (await committed(s.groupId, s.kafkaTopic)) === 9, 30_000);
    assert.equal((await extra(s.consumer, 1500)).length, 0, "nothing twice after the restart");
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a function that throws for one record: retried to the bound, then its partition stops there (red status), nothing past it commits", async () => {
  const s = await setup("throws", 10);
  const between = [
    {
      id: "fn",
      type: "function",
      // each try of offset 5 is reported on output 2, then it throws
      func: 'if (msg.kafka.offset === "5") { node.send([null, { payload: "try" }]); throw new Error("cannot digest this"); } return [msg, null];',
      outputs: 2,
      wires: [["out"], ["tries"]],
    },
    { id: "tries", type: "helper" },
    ...statusWatch("in"),
  ];
  await loadFlow(flow(s, between, { inWires: ["fn"], kafkaIn: { maxAttempts: 3, retryBackoffMs: 100 } }));
  const statuses = collectStatuses();
  let tries = 0;
  helper.getNode("tries")?.on("input", () => tries++);
  try {
    const got = await drain(s.consumer, 9, 30_000);
    assert.equal(got.length, 9);
    await waitFor(
      "a red status naming the partition and offset",
      () => statuses.some((st) => st.fill === "red" && st.text.includes(`${s.kafkaTopic}/0 stopped at 5`)),
      20_000,
      100,
    );
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(await committed(s.groupId, s.kafkaTopic), 5, "committed up to the blocking record only");
    assert.equal(tries, 3, "tried maxAttempts times, not in a loop");
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a function that throws, with the dead-letter policy: the record is dead-lettered after its tries and the partition commits to the end", async () => {
  const s = await setup("throws-dlq", 10);
  const dlq = uniqueName("throws-dlq");
  await createTopic(dlq, 1);
  const between = [
    {
      id: "fn",
      type: "function",
      func: 'if (msg.kafka.offset === "5") throw new Error("cannot digest this"); return msg;',
      outputs: 1,
      wires: [["out"]],
    },
  ];
  await loadFlow(
    flow(s, between, {
      inWires: ["fn"],
      kafkaIn: { failurePolicy: "dead-letter", deadLetterTopic: dlq, maxAttempts: 2, retryBackoffMs: 100 },
    }),
  );
  try {
    await waitFor(
      "offset 10 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === 10,
      30_000,
    );
    const dead = await consoleConsume(dlq, 1);
    assert.match(dead, /v5/);
    assert.match(dead, /dlq\.error:(Error: )?cannot digest this/);
    assert.match(dead, /dlq\.attempts:2/);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("batch -> join (reduce) whose expression fails on one record of a group: every record of the group is dead-lettered, none committed unpublished; the next group is published", async () => {
  const values = ["10", "abc", "30", "40", "50", "60"];
  const s = await setup("join-fails", values.length, (i) => values[i] ?? "");
  const dlq = uniqueName("join-fails-dlq");
  await createTopic(dlq, 1);
  const between = [
    { id: "grp", type: "batch", mode: "count", count: 3, overlap: 0, interval: 10, wires: [["sum"]] },
    {
      id: "sum",
      type: "join",
      mode: "reduce",
      reduceRight: false,
      reduceExp: "$A + $number(payload)",
      reduceInit: "0",
      reduceInitType: "num",
      reduceFixup: "",
      wires: [["out"]],
    },
  ];
  await loadFlow(
    flow(s, between, {
      inWires: ["grp"],
      kafkaIn: { failurePolicy: "dead-letter", deadLetterTopic: dlq, maxAttempts: 2, retryBackoffMs: 100 },
    }),
  );
  try {
    await waitFor(
      "offset 6 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === values.length,
      60_000,
    );
    const published = (await drain(s.consumer, 1, 10_000)).map((m) => m.payload.toString());
    assert.deepEqual(published, ["150"]);
    const dead = await consoleConsume(dlq, 3);
    for (const v of ["10", "abc", "30"]) assert.match(dead, new RegExp(`\\t${v}$`, "m"), dead);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a record a node holds past the settle deadline fails, and the dead letter names the node that held it", async () => {
  const s = await setup("deadline", 3);
  const dlq = uniqueName("deadline-dlq");
  await createTopic(dlq, 1);
  const between = [
    {
      id: "slow",
      type: "delay",
      name: "very slow",
      pauseType: "delay",
      timeout: "60",
      timeoutUnits: "seconds",
      wires: [["out"]],
    },
  ];
  await loadFlow(
    flow(s, between, {
      inWires: ["slow"],
      kafkaIn: {
        failurePolicy: "dead-letter",
        deadLetterTopic: dlq,
        maxAttempts: 1,
        settleTimeoutMs: 1500,
      },
    }),
  );
  try {
    await waitFor("offset 3 committed", async () => (await committed(s.groupId, s.kafkaTopic)) === 3, 30_000);
    const dead = await consoleConsume(dlq, 3);
    assert.match(dead, /dlq\.error:not settled within 2 s: held by "very slow" \(delay slow\)/);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("core switch and filter (rbe) never call done(): records they pass on settle at pulsar-out, those they drop settle at once", async () => {
  const s = await setup("switch", 40, (i) => (i % 2 === 0 ? `even-${i}` : `odd-${Math.floor(i / 4)}`));
  const between = [
    {
      id: "sw",
      type: "switch",
      property: "payload",
      propertyType: "msg",
      rules: [{ t: "regex", v: "^even", vt: "str" }, { t: "else" }],
      checkall: "true",
      outputs: 2,
      wires: [["out"], ["rb"]],
    },
    // odd values repeat twice in a row: the filter passes only the first of each pair
    {
      id: "rb",
      type: "rbe",
      func: "rbe",
      gap: "",
      start: "",
      inout: "out",
      property: "payload",
      wires: [["out"]],
    },
  ];
  await loadFlow(flow(s, between, { inWires: ["sw"], kafkaIn: { maxInFlight: 10 } }));
  try {
    const got = await drain(s.consumer, 30, 30_000);
    assert.equal(got.length, 30, "20 even values and 10 distinct odd ones");
    await waitFor(
      "offset 40 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === 40,
      30_000,
    );
    assert.equal((await extra(s.consumer, 1500)).length, 0, "nothing published twice");
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a deploy of only the async function while it holds records (its close clears the timers that would send them): they are tried again at once, not held until a deadline", async () => {
  const s = await setup("held-by-fn", 3);
  const between = [
    {
      id: "fn",
      type: "function",
      func: "setTimeout(() => { node.send(msg); node.done(); }, 60000); return null;",
      outputs: 1,
      wires: [["out"]],
    },
  ];
  // no settle deadline: without the interruption the records would wait for ever
  const f = flow(s, between, { inWires: ["fn"], kafkaIn: { settleTimeoutMs: 0 } });
  await loadFlow(f);
  try {
    await waitFor(
      "the function holding the 3 records",
      () => helper.getNode("fn") !== null && helper.getNode("in") !== null,
      10_000,
    );
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok((await committed(s.groupId, s.kafkaTopic)) <= 0, "held: nothing committed yet");
    // a "nodes" deploy of the function only, now quick: kafka-in and pulsar-out keep running
    await (helper as unknown as { setFlows(f: unknown[], type: string): Promise<void> }).setFlows(
      f.map((n) =>
        (n as { id?: string }).id === "fn"
          ? { ...n, func: "setTimeout(() => { node.send(msg); node.done(); }, 5); return null;" }
          : n,
      ),
      "nodes",
    );
    await waitFor("offset 3 committed", async () => (await committed(s.groupId, s.kafkaTopic)) === 3, 30_000);
    const got = (await drain(s.consumer, 3, 10_000)).map((m) => m.payload.toString()).sort();
    assert.deepEqual(got, ["v0", "v1", "v2"]);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a deploy of only pulsar-out while records stream through an async function: none is committed without reaching Pulsar", async () => {
  const N = 3000;
  const s = await setup("partial", N);
  const topicB = `persistent://public/default/${uniqueName("partial-b")}`;
  const consumerB = await pulsar.subscribe({
    topic: topicB,
    subscription: "check",
    initialPosition: "earliest",
  });
  const between = [
    {
      id: "fn",
      type: "function",
      func: "setTimeout(() => { node.send(msg); node.done(); }, 5); return null;",
      outputs: 1,
      wires: [["out"]],
    },
  ];
  const f = flow(s, between, { inWires: ["fn"], kafkaIn: { maxInFlight: 10 } });
  await loadFlow(f);
  try {
    const first = await drain(s.consumer, 500, 30_000);
    // a "nodes" deploy that changes pulsar-out's topic: kafka-in and the function keep running
    await (helper as unknown as { setFlows(f: unknown[], type: string): Promise<void> }).setFlows(
      f.map((n) => ((n as { id?: string }).id === "out" ? { ...n, topic: topicB } : n)),
      "nodes",
    );
    await waitFor(
      "offset 3000 committed",
      async () => (await committed(s.groupId, s.kafkaTopic)) === N,
      60_000,
    );
    const seen = new Set(
      [...first, ...(await extra(s.consumer, 3000)), ...(await drain(consumerB, N, 10_000))].map((m) =>
        m.payload.toString(),
      ),
    );
    const missing = Array.from({ length: N }, (_, i) => `v${i}`).filter((v) => !seen.has(v));
    assert.deepEqual(missing, [], "every committed record is in one of the two topics");
  } finally {
    await unloadFlow();
    await s.consumer.close();
    await consumerB.close();
  }
});

test("a rebalance while a delay node holds records of the revoked partition: nothing lost, both members go on, everything commits", async () => {
  const kafkaTopic = uniqueName("revoke");
  const pulsarTopic = `persistent://public/default/${uniqueName("revoke")}`;
  const groupId = uniqueName("group");
  await createTopic(kafkaTopic, 2);
  const consumer = await pulsar.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });
  await produce(
    kafkaTopic,
    Array.from({ length: 200 }, (_, i) => ({ partition: i % 2, key: `k${i}`, value: `v${i}` })),
  );
  const s = { kafkaTopic, pulsarTopic, groupId, consumer };
  const between = [
    {
      id: "hold",
      type: "delay",
      pauseType: "delay",
      timeout: "4",
      timeoutUnits: "seconds",
      wires: [["out"]],
    },
  ];
  const f = flow(s, between, { inWires: ["hold"] });
  await loadFlow(f);
  try {
    // the delay holds all 200; a second member joins the group and takes one partition
    await new Promise((r) => setTimeout(r, 1500));
    const second = {
      id: "in2",
      type: "kafka-in",
      cluster: "kc",
      topics: kafkaTopic,
      groupId,
      startFrom: "earliest",
      wires: [["out"]],
    };
    await (helper as unknown as { setFlows(f: unknown[], type: string): Promise<void> }).setFlows(
      [...f, second],
      "nodes",
    );
    await waitFor(
      "both partitions committed to their end",
      async () => {
        const o = await committedOffsets(groupId, kafkaTopic);
        return o.size === 2 && [...o.values()].every((p) => p.committed === p.logEnd);
      },
      90_000,
    );
    const got = await drain(consumer, 400, 8_000);
    const seen = new Set(got.map((m) => m.payload.toString()));
    const missing = Array.from({ length: 200 }, (_, i) => `v${i}`).filter((v) => !seen.has(v));
    assert.deepEqual(missing, []);
  } finally {
    await unloadFlow();
    await consumer.close();
  }
});

test("a burst through core switch (it queues msgs while busy) into a rate-limiting delay: nothing commits before it is in Pulsar", async () => {
  const s = await setup("switch-burst", 20);
  const between = [
    {
      id: "sw",
      type: "switch",
      property: "payload",
      propertyType: "msg",
      rules: [{ t: "nnull" }],
      checkall: "true",
      repair: false,
      outputs: 1,
      wires: [["dl"]],
    },
    {
      id: "dl",
      type: "delay",
      pauseType: "rate",
      timeout: "5",
      timeoutUnits: "seconds",
      rate: "1",
      nbRateUnits: "3",
      rateUnits: "second",
      drop: false,
      allowrate: false,
      outputs: 1,
      wires: [["out"]],
    },
  ];
  await loadFlow(flow(s, between, { inWires: ["sw"] }));
  try {
    await new Promise((r) => setTimeout(r, 7000));
    const c = await committed(s.groupId, s.kafkaTopic);
    const inPulsar = await drain(s.consumer, 20, 1000);
    assert.ok(c <= inPulsar.length, `committed ${c} while ${inPulsar.length} reached Pulsar`);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a msg delivered to a node instance a deploy closed is told apart from one a running node takes (no handler ran: its records are tried again)", async () => {
  const flow = (code: string) => [
    { id: "tab", type: "tab" },
    { id: "fn", z: "tab", type: "function", func: `${code}\nreturn msg;`, outputs: 1, wires: [["sw"]] },
    {
      id: "sw",
      z: "tab",
      type: "switch",
      property: "payload",
      rules: [{ t: "nnull" }],
      outputs: 1,
      wires: [[]],
    },
  ];
  await loadFlow(flow("// one"));
  try {
    const red = { nodes: { getNode: (id: string) => helper.getNode(id) } } as unknown as RED;
    const at = (id: string, node: unknown) => receipt(red, { msg: {}, destination: { id, node } } as never);
    const oldFn = helper.getNode("fn");
    const sw = helper.getNode("sw");
    assert.equal(at("fn", oldFn), "done", "a running function calls done");
    assert.equal(at("sw", sw), "no-done", "core switch takes no done callback");
    // a "nodes" deploy that changes only the function: Node-RED closes the old instance
    await helper.setFlows(flow("// two"), "nodes");
    assert.notEqual(helper.getNode("fn"), oldFn);
    assert.equal(at("fn", oldFn), "closed", "the closed instance runs nothing");
    assert.equal(at("fn", helper.getNode("fn")), "done", "its successor runs");
    assert.equal(at("sw", helper.getNode("sw")), "no-done", "the switch was not restarted");
  } finally {
    await unloadFlow();
  }
});

test("a rate-limiting delay slower than the settle deadline: its queue drains once, no record is retried behind its original (no duplicate), all commit", async () => {
  const s = await setup("slow-delay", 30);
  const between = [
    {
      id: "dl",
      type: "delay",
      pauseType: "rate",
      timeout: "5",
      timeoutUnits: "seconds",
      rate: "5",
      nbRateUnits: "1",
      rateUnits: "second",
      drop: false,
      allowrate: false,
      outputs: 1,
      wires: [["out"]],
    },
  ];
  // 30 records at 5 a second take 6 s; the deadline is 2 s
  await loadFlow(flow(s, between, { inWires: ["dl"], kafkaIn: { settleTimeoutMs: 2000 } }));
  try {
    const got = await drain(s.consumer, 60, 12_000);
    const values = got.map((m) => m.payload.toString());
    assert.equal(new Set(values).size, 30, "every record");
    assert.equal(values.length, 30, "each once: none expired and queued again behind its original");
    await waitFor("all committed", async () => (await committed(s.groupId, s.kafkaTopic)) === 30, 20_000);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a split in stream mode after kafka-in is named in a warning: it carries a record's end over to the next record", async () => {
  const s = await setup("split-stream", 1);
  const between = [
    { id: "fn", type: "function", func: "return msg;", outputs: 1, wires: [["sp"]] },
    { id: "sp", type: "split", name: "lines", splt: "\\n", spltType: "str", stream: true, wires: [["out"]] },
    {
      id: "sp2",
      type: "split",
      name: "not after kafka-in",
      splt: "\\n",
      spltType: "str",
      stream: true,
      wires: [[]],
    },
  ];
  await loadFlow(flow(s, between, { inWires: ["fn"] }));
  try {
    const spy = (helper as unknown as { log(): { args: unknown[][] } }).log();
    const warned = () =>
      spy.args.map((a) => JSON.stringify(a)).filter((line) => line.includes("stream mode"));
    await waitFor("the warning", () => warned().length > 0, 10_000);
    assert.equal(warned().length, 1, "one warning, for the split kafka-in reaches");
    assert.match(warned()[0] ?? "", /split \\"lines\\" is in stream mode/);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a split in stream mode inside a subflow or behind a link call is named too", async () => {
  const s = await setup("split-stream-nested", 1);
  const between = [
    { id: "sfi", type: "subflow:sf", wires: [["call"]] },
    {
      id: "sf",
      type: "subflow",
      name: "lines",
      in: [{ x: 50, y: 30, wires: [{ id: "inner" }] }],
      out: [{ x: 250, y: 30, wires: [{ id: "inner", port: 0 }] }],
    },
    {
      id: "inner",
      z: "sf",
      type: "split",
      name: "in the subflow",
      splt: "\\n",
      spltType: "str",
      stream: true,
      wires: [[]],
    },
    { id: "call", type: "link call", links: ["li"], linkType: "static", timeout: "30", wires: [["out"]] },
    { id: "li", type: "link in", links: [], wires: [["sp"]] },
    {
      id: "sp",
      type: "split",
      name: "behind the link call",
      splt: "\\n",
      spltType: "str",
      stream: true,
      wires: [["ret"]],
    },
    { id: "ret", type: "link out", mode: "return", links: [], wires: [] },
  ];
  await loadFlow(flow(s, between, { inWires: ["sfi"] }));
  try {
    const spy = (helper as unknown as { log(): { args: unknown[][] } }).log();
    const warned = () =>
      spy.args.map((a) => JSON.stringify(a)).filter((line) => line.includes("stream mode"));
    await waitFor("the warnings", () => warned().length >= 2, 10_000);
    const text = warned().join("\n");
    assert.match(text, /split \\"in the subflow\\" is in stream mode/);
    assert.match(text, /split \\"behind the link call\\" is in stream mode/);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});
