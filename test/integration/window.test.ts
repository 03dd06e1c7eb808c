// The window node in a real Node-RED runtime against the real brokers: kafka-in -> window -> a function
// shaping the result -> pulsar-out. Every result in Pulsar is compared with a reference computed from the
// records written to Kafka: none missing, none wrong; a result sent again (after a redeploy) is the same
// window with the same id and the same aggregate. Offsets are read with Kafka's consumer-groups tool.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { helper, loadFlow, unloadFlow, stopHelper } from "../support/flow";
import {
  committedOffsets,
  consoleRecords,
  createTopic,
  deleteTopic,
  produce,
  type TestRecord,
} from "../support/kafka";
import { kafkaBrokers, pulsarHttpUrl, pulsarUrl, ROOT, uniqueName } from "../support/brokers";
import { createClient } from "../../src/pulsar/client";
import type { Consumer, PulsarClient } from "../../src/pulsar/types";
import { waitFor } from "../support/wait";
import { makeUserDir, startNodeRed } from "../support/node-red-process";
import { dedupNamespace } from "../support/pulsar";
import { ownBrokers } from "../support/own-brokers";

const SIZE = 5000;
const T0 = 1_700_000_000_000;

let pulsar: PulsarClient;
before(() => {
  pulsar = createClient({ serviceUrl: pulsarUrl });
});
after(async () => {
  await pulsar.close();
  await stopHelper();
});

interface Result {
  key: string;
  start: number;
  id: string;
  n: number;
  total: number;
}

/** `n` records of 6 keys, 100 ms of event time apart, value i % 7. */
function records(from: number, n: number): TestRecord[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    return { key: `s${i % 6}`, value: String(i % 7), timestamp: String(T0 + i * 100) };
  });
}

/**
 * The reference of what the topic holds, computed from the records Kafka's own console consumer reads
 * (`n` of them: as many as were written).
 */
async function kafkaReference(
  topic: string,
  n: number,
  bootstrap = kafkaBrokers[0] ?? "",
): Promise<Map<string, { n: number; total: number }>> {
  const read = await consoleRecords(topic, n, bootstrap);
  assert.equal(read.length, n, "the console consumer read every record written");
  return reference(read.map((r) => ({ key: r.key, value: r.value, timestamp: String(r.timestamp) })));
}

/** Tumbling windows of SIZE ms per key: count and sum, as the window node must give them. */
function reference(rs: TestRecord[]): Map<string, { n: number; total: number }> {
  const out = new Map<string, { n: number; total: number }>();
  for (const r of rs) {
    const start = Math.floor(Number(r.timestamp) / SIZE) * SIZE;
    const k = `${String(r.key)}@${start}`;
    const w = out.get(k) ?? { n: 0, total: 0 };
    w.n++;
    w.total += Number(r.value);
    out.set(k, w);
  }
  return out;
}

/** Everything the consumer gets until nothing more came for `quietMs`. */
async function drain(consumer: Consumer, quietMs: number): Promise<Result[]> {
  const out: Result[] = [];
  for (;;) {
    try {
      const m = await consumer.receive(quietMs);
      out.push(JSON.parse(m.payload.toString("utf8")) as Result);
      await consumer.acknowledge(m);
    } catch {
      return out;
    }
  }
}

function flow(o: {
  kafkaTopic: string;
  pulsarTopic: string;
  groupId: string;
  changelog: string;
  tag: string;
  idleTimeoutMs?: number;
  /** The group key (default: the Kafka key). */
  key?: { key: string; keyType: string };
  /** The Kafka (default: the shared one). */
  brokers?: string[];
}) {
  return [
    {
      id: "kc",
      type: "kafka-cluster",
      brokers: (o.brokers ?? kafkaBrokers).join(","),
      clientId: "window-test",
    },
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl },
    {
      id: "in",
      type: "kafka-in",
      cluster: "kc",
      topics: o.kafkaTopic,
      groupId: o.groupId,
      startFrom: "earliest",
      retryBackoffMs: 200,
      wires: [["win"]],
    },
    {
      id: "win",
      type: "kafka-window",
      cluster: "kc",
      changelogTopic: o.changelog,
      windowType: "tumbling",
      by: "time",
      size: SIZE,
      aggregations: "n:count, total:sum",
      idleTimeoutMs: o.idleTimeoutMs ?? 3000,
      checkpointMs: 100,
      ...(o.key ?? {}),
      wires: [["fmt"], ["late"]],
    },
    {
      id: "fmt",
      type: "function",
      name: o.tag,
      func: "msg.payload = { key: msg.key, start: msg.window.start, id: msg.window.id, n: msg.payload.n, total: msg.payload.total }; return msg;",
      outputs: 1,
      wires: [["out"]],
    },
    { id: "late", type: "helper" },
    { id: "out", type: "pulsar-out", cluster: "pc", topic: o.pulsarTopic, wires: [] },
  ];
}

async function setup(prefix: string, namespace = "default", brokers = kafkaBrokers) {
  const names = {
    kafkaTopic: uniqueName(prefix),
    pulsarTopic: `persistent://public/${namespace}/${uniqueName(prefix)}`,
    groupId: uniqueName("group"),
    changelog: uniqueName(`${prefix}-state`),
  };
  await createTopic(names.kafkaTopic, 2, brokers);
  const consumer = await pulsar.subscribe({
    topic: names.pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });
  return { ...names, consumer };
}

/** Every window of the reference came, each copy equal to it; nothing else came. */
function compare(got: Result[], want: Map<string, { n: number; total: number }>) {
  const seen = new Map<string, Result>();
  for (const r of got) {
    const k = `${r.key}@${r.start}`;
    const before = seen.get(k);
    if (before) assert.deepEqual(r, before, `a result sent again is the same (${k})`);
    seen.set(k, r);
  }
  const missing = [...want.keys()].filter((k) => !seen.has(k));
  const extra = [...seen.keys()].filter((k) => !want.has(k));
  const wrong = [...want].filter(([k, w]) => {
    const r = seen.get(k);
    return r && (r.n !== w.n || r.total !== w.total);
  });
  assert.deepEqual({ missing, extra, wrong }, { missing: [], extra: [], wrong: [] });
}

async function committedAll(
  groupId: string,
  topic: string,
  total: number,
  bootstrap?: string,
): Promise<boolean> {
  const offsets = await committedOffsets(groupId, topic, bootstrap);
  let sum = 0;
  for (const p of offsets.values()) sum += Math.max(0, p.committed);
  return sum === total;
}

test("tumbling windows per key: every result in Pulsar equals the reference computed from the Kafka records; offsets commit to the end", async () => {
  const s = await setup("window");
  const input = records(0, 600);
  await produce(s.kafkaTopic, input);
  await loadFlow(flow({ ...s, tag: "a" }));
  try {
    const want = await kafkaReference(s.kafkaTopic, input.length);
    let got: Result[] = [];
    await waitFor(
      "every window's result",
      async () => {
        got.push(...(await drain(s.consumer, 1000)));
        return new Set(got.map((r) => `${r.key}@${r.start}`)).size >= want.size;
      },
      90_000,
    );
    got = [...got, ...(await drain(s.consumer, 2000))];
    compare(got, want);
    assert.equal(got.length, want.size, "each result once when nothing failed");
    await waitFor("every offset committed", () => committedAll(s.groupId, s.kafkaTopic, 600), 30_000);
    const w = helper.getNode("win") as { status?: unknown } | null;
    assert.ok(w, "the window node is deployed");
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a redeploy in the middle of the windows: the new instance restores their state from the changelog; no window is lost, none is wrong, a result sent again is the same", async () => {
  const s = await setup("window-redeploy");
  const first = records(0, 400);
  const second = records(400, 400);
  await produce(s.kafkaTopic, first);
  await loadFlow(flow({ ...s, tag: "a" }));
  const got: Result[] = [];
  try {
    await waitFor(
      "some results before the redeploy",
      async () => {
        got.push(...(await drain(s.consumer, 500)));
        return got.length >= 5;
      },
      60_000,
    );
    // the whole flow is stopped and started again while windows are open (and records in flight)
    await helper.setFlows(flow({ ...s, tag: "b" }), "full");
    await produce(s.kafkaTopic, second);
    const want = await kafkaReference(s.kafkaTopic, first.length + second.length);
    await waitFor(
      "every window's result",
      async () => {
        got.push(...(await drain(s.consumer, 1000)));
        return new Set(got.map((r) => `${r.key}@${r.start}`)).size >= want.size;
      },
      120_000,
    );
    got.push(...(await drain(s.consumer, 3000)));
    compare(got, want);
    await waitFor("every offset committed", () => committedAll(s.groupId, s.kafkaTopic, 800), 30_000);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("issue 14 audit F1: a redeploy after every record is committed, with windows still open and no record to come: the new instance restores the quiet partitions at once and their last windows close at the idle timeout", async () => {
  const s = await setup("window-quiet");
  const input = records(0, 300);
  await produce(s.kafkaTopic, input);
  await loadFlow(flow({ ...s, tag: "a", idleTimeoutMs: 8000 }));
  const got: Result[] = [];
  try {
    const want = await kafkaReference(s.kafkaTopic, input.length);
    // committed (the state is durable) long before the idle timeout would close the last windows
    await waitFor("every offset committed", () => committedAll(s.groupId, s.kafkaTopic, 300), 30_000, 200);
    got.push(...(await drain(s.consumer, 200)));
    assert.ok(
      new Set(got.map((r) => `${r.key}@${r.start}`)).size < want.size,
      "the last windows are still open at the redeploy",
    );
    await helper.setFlows(flow({ ...s, tag: "b", idleTimeoutMs: 8000 }), "full");
    await waitFor(
      "every window's result, with no record after the redeploy",
      async () => {
        got.push(...(await drain(s.consumer, 1000)));
        return new Set(got.map((r) => `${r.key}@${r.start}`)).size >= want.size;
      },
      60_000,
    );
    got.push(...(await drain(s.consumer, 2000)));
    compare(got, want);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("issue 14 audit F3: a group key whose records are in several Kafka partitions: one result per partition, each with an id of its own (no two 'final' results under one id)", async () => {
  const s = await setup("window-spread");
  // keys s0..s5 over 2 partitions; one group for all of them
  const input = records(0, 120);
  await produce(s.kafkaTopic, input);
  await loadFlow(flow({ ...s, tag: "a", key: { key: "all", keyType: "str" } }));
  try {
    const got: Result[] = [];
    await waitFor("every offset committed", () => committedAll(s.groupId, s.kafkaTopic, 120), 60_000, 200);
    await waitFor(
      "the results of both partitions",
      async () => {
        got.push(...(await drain(s.consumer, 1000)));
        return got.length > 0 && got.reduce((n, r) => n + r.n, 0) >= 120;
      },
      60_000,
    );
    got.push(...(await drain(s.consumer, 2000)));
    const byId = new Map<string, Result[]>();
    for (const r of got) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);
    const twice = [...byId].filter(([, rs]) => rs.length > 1);
    assert.deepEqual(twice, [], "each result id once");
    const starts = new Map<number, number>();
    for (const r of got) starts.set(r.start, (starts.get(r.start) ?? 0) + 1);
    assert.ok(
      [...starts.values()].some((n) => n === 2),
      "a window has a result per partition",
    );
    assert.equal(
      got.reduce((n, r) => n + r.n, 0),
      120,
      "every record counted once over the partitions",
    );
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("issue 14: Kafka restarted in the middle of the windows (the source and the changelog go away and come back): no window lost, none wrong, every offset commits", async (t) => {
  const own = await ownBrokers();
  t.after(() => own.dispose());
  await own.brokers("start", "kafka");
  const bootstrap = [own.kafkaBootstrap];
  const { consumer, ...names } = await setup("window-kafka-restart", "default", bootstrap);
  await produce(names.kafkaTopic, records(0, 300), 500, bootstrap);
  await loadFlow(flow({ ...names, tag: "a", brokers: bootstrap }));
  const got: Result[] = [];
  try {
    await waitFor(
      "some results before the restart",
      async () => {
        got.push(...(await drain(consumer, 500)));
        return got.length >= 5;
      },
      60_000,
    );
    await own.restart("kafka");
    await produce(names.kafkaTopic, records(300, 300), 500, bootstrap);
    const want = await kafkaReference(names.kafkaTopic, 600, own.kafkaBootstrap);
    await waitFor(
      "every window's result",
      async () => {
        got.push(...(await drain(consumer, 1000)));
        return new Set(got.map((r) => `${r.key}@${r.start}`)).size >= want.size;
      },
      120_000,
    ).catch((err: unknown) => {
      const log = (helper as unknown as { log(): { args: unknown[][] } }).log();
      const lines = log.args
        .map((a) => JSON.stringify(a))
        .filter((l) => /error|warn/.test(l) && !/ECONNREFUSED|Connection error|Failed to connect/.test(l));
      const seen = new Set(got.map((r) => `${r.key}@${r.start}`));
      return committedOffsets(names.groupId, names.kafkaTopic, own.kafkaBootstrap).then((o) => {
        throw new Error(
          `${String(err)}; ${seen.size} of ${want.size}; committed ${JSON.stringify([...o])}; log: ${lines.slice(-8).join(" | ")}`,
        );
      });
    });
    got.push(...(await drain(consumer, 3000)));
    compare(got, want);
    await waitFor(
      "every offset committed",
      () => committedAll(names.groupId, names.kafkaTopic, 600, own.kafkaBootstrap),
      60_000,
    );
  } finally {
    await unloadFlow();
    await consumer.close();
  }
});

test("20 redeploys while records stream in: every window's result equals the reference, each offset commits", async () => {
  const s = await setup("window-redeploys");
  const all: TestRecord[] = [];
  await loadFlow(flow({ ...s, tag: "a" }));
  const got: Result[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const chunk = records(i * 40, 40);
      all.push(...chunk);
      await produce(s.kafkaTopic, chunk);
      // some of the chunk is in the windows (and some in flight) when the flow is stopped and started again
      await new Promise((r) => setTimeout(r, 300));
      got.push(...(await drain(s.consumer, 50)));
      await helper.setFlows(flow({ ...s, tag: i % 2 === 0 ? "b" : "a" }), "full");
    }
    const want = await kafkaReference(s.kafkaTopic, all.length);
    await waitFor(
      "every window's result",
      async () => {
        got.push(...(await drain(s.consumer, 1000)));
        return new Set(got.map((r) => `${r.key}@${r.start}`)).size >= want.size;
      },
      120_000,
    );
    got.push(...(await drain(s.consumer, 3000)));
    compare(got, want);
    await waitFor("every offset committed", () => committedAll(s.groupId, s.kafkaTopic, all.length), 30_000);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("the source topic deleted and created again while the windows are open: the new topic's records are counted from its offset 0 (not taken for records the state holds), and every window equals the reference", async () => {
  const s = await setup("window-recreated");
  const first = records(0, 400);
  const second = records(400, 400);
  await produce(s.kafkaTopic, first);
  await loadFlow(flow({ ...s, tag: "a" }));
  const got: Result[] = [];
  try {
    const before = await kafkaReference(s.kafkaTopic, first.length);
    await waitFor(
      "every window of the first topic (the last ones closed as idle)",
      async () => {
        got.push(...(await drain(s.consumer, 1000)));
        return new Set(got.map((r) => `${r.key}@${r.start}`)).size >= before.size;
      },
      90_000,
    );
    await waitFor("the first topic committed", () => committedAll(s.groupId, s.kafkaTopic, 400), 30_000);
    await deleteTopic(s.kafkaTopic);
    await createTopic(s.kafkaTopic, 2);
    await produce(s.kafkaTopic, second);
    // the second topic's windows start where the first's end (8 windows of 5 s each): the union
    const want = new Map([...before, ...(await kafkaReference(s.kafkaTopic, second.length))]);
    assert.equal(want.size, reference([...first, ...second]).size);
    await waitFor(
      "every window's result",
      async () => {
        got.push(...(await drain(s.consumer, 1000)));
        return new Set(got.map((r) => `${r.key}@${r.start}`)).size >= want.size;
      },
      120_000,
    );
    got.push(...(await drain(s.consumer, 4000)));
    compare(got, want);
    await waitFor("the new topic committed", () => committedAll(s.groupId, s.kafkaTopic, 400), 30_000);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("two window nodes on one changelog topic are refused with the reason (they would fence each other and read each other's state)", async () => {
  const s = await setup("window-shared");
  const base = flow({ ...s, tag: "a" });
  const win = base.find((n) => n.id === "win") as Record<string, unknown>;
  await loadFlow([...base, { ...win, id: "win2", wires: [[], []] }]);
  try {
    const log = (helper as unknown as { log(): { args: unknown[][] } }).log();
    await waitFor(
      "the refusal",
      () => log.args.some((a) => /keeps its state in the changelog topic .* too/.test(JSON.stringify(a))),
      10_000,
    );
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test("a msg that is not a Kafka record reaches Catch with the reason; the node goes on", async () => {
  const s = await setup("window-bad");
  await loadFlow([
    ...flow({ ...s, tag: "a" }),
    { id: "c", type: "catch", scope: ["win"], wires: [["caught"]] },
    { id: "caught", type: "helper" },
  ]);
  try {
    const caught: { error?: { message?: string } }[] = [];
    helper.getNode("caught")?.on("input", (m: never) => caught.push(m));
    helper.getNode("win")?.receive({ payload: 1 });
    await waitFor("Catch got it", () => caught.length > 0, 10_000);
    assert.match(caught[0]?.error?.message ?? "", /takes the msgs kafka-in emits/);
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

test('the example "Sensor averages per minute", as shipped: per sensor and minute of event time, the mean, lowest and highest temperature and the number of readings reach Pulsar', async () => {
  const s = await setup("window-example");
  const example = JSON.parse(
    fs.readFileSync(path.join(ROOT, "examples", "04 - Sensor averages per minute.json"), "utf8"),
  ) as Record<string, unknown>[];
  // the same flow, pointed at the test brokers and this test's topics
  const local: Record<string, Record<string, unknown>> = {
    "kafka-cluster": { brokers: kafkaBrokers.join(",") },
    "pulsar-cluster": { serviceUrl: pulsarUrl },
    "kafka-in": { topics: s.kafkaTopic, groupId: s.groupId },
    "kafka-window": { changelogTopic: s.changelog },
    "pulsar-out": { topic: s.pulsarTopic },
  };
  const flowOf = example.map((n) => ({ ...n, ...local[String(n.type)] }));
  const minute = 60_000;
  const base = Math.floor(T0 / minute) * minute;
  const sensors = ["boiler-1", "pump-7", "fan-3"];
  const readings: TestRecord[] = [];
  // three minutes of readings, one every 2 s per sensor; then one reading in minute 4 closes minute 3
  for (let t = 0; t < 3 * minute; t += 2000)
    for (const [k, sensor] of sensors.entries())
      readings.push({
        key: sensor,
        value: JSON.stringify({ sensor, temperature: 20 + k + ((t / 2000) % 10) / 10 }),
        timestamp: String(base + t),
      });
  const closer = sensors.map((sensor) => ({
    key: sensor,
    value: JSON.stringify({ sensor, temperature: 0 }),
    timestamp: String(base + 3 * minute + 1000),
  }));
  await produce(s.kafkaTopic, [...readings, ...closer]);
  await loadFlow(flowOf);
  try {
    const want = new Map<string, { mean: number; low: number; high: number; readings: number }>();
    for (const r of readings) {
      const k = `${String(r.key)}@${new Date(Math.floor(Number(r.timestamp) / minute) * minute).toISOString()}`;
      const v = (JSON.parse(String(r.value)) as { temperature: number }).temperature;
      const w = want.get(k) ?? { mean: 0, low: Infinity, high: -Infinity, readings: 0 };
      w.mean += v;
      w.low = Math.min(w.low, v);
      w.high = Math.max(w.high, v);
      w.readings++;
      want.set(k, w);
    }
    for (const w of want.values()) w.mean = Math.round((w.mean / w.readings) * 100) / 100;
    const got = new Map<string, unknown>();
    await waitFor(
      "a result per sensor and minute",
      async () => {
        for (const r of (await drain(s.consumer, 1000)) as unknown as Record<string, unknown>[])
          got.set(`${String(r.sensor)}@${String(r.minute)}`, r);
        return got.size >= want.size;
      },
      90_000,
    ).catch((err: unknown) => {
      const log = (helper as unknown as { log(): { args: unknown[][] } }).log();
      const lines = log.args.map((a) => JSON.stringify(a)).filter((l) => /error|warn/.test(l));
      throw new Error(
        `${String(err)}; got ${[...got.keys()].join(" ")}; log: ${lines.slice(-5).join(" | ")}`,
      );
    });
    assert.equal(got.size, want.size);
    for (const [k, w] of want) {
      const [sensor, at] = k.split("@");
      assert.deepEqual(got.get(k), { sensor, minute: at, ...w }, k);
    }
  } finally {
    await unloadFlow();
    await s.consumer.close();
  }
});

/**
 * The flow for a node-red process (helper-free): on a tab, the late output to a disabled debug node;
 * with `eo`, pulsar-out effectively-once and the cluster's admin URL (it checks deduplication).
 */
function processFlow(s: Omit<Parameters<typeof flow>[0], "tag">, eo: boolean): Record<string, unknown>[] {
  const tab = { id: "tab", type: "tab", label: "window" };
  return [tab, ...flow({ ...s, tag: "a" }).map((n) => ({ ...n, z: "tab" }))].map((n) =>
    n.type === "helper"
      ? { id: n.id, type: "debug", z: "tab", active: false, wires: [] }
      : eo && n.type === "pulsar-out"
        ? { ...n, effectivelyOnce: true }
        : eo && n.type === "pulsar-cluster"
          ? { ...n, adminUrl: pulsarHttpUrl }
          : n,
  );
}

/** The SIGKILL case, plain or with an effectively-once pulsar-out (a namespace with deduplication). */
async function killMidWindow(t: TestContext, eo: boolean) {
  let ns: string | undefined;
  if (eo) {
    ns = await dedupNamespace("window-eo");
  }
  const s = await setup("window-kill", ns);
  const userDir = makeUserDir();
  t.after(() => fs.rmSync(userDir, { recursive: true, force: true }));
  const first = records(0, 500);
  const second = records(500, 300);
  await produce(s.kafkaTopic, first);
  const flowOnTab = processFlow(s, eo);
  let red = await startNodeRed({ userDir });
  const got: Result[] = [];
  try {
    await red.deploy(flowOnTab);
    await waitFor(
      "the first results before the kill",
      async () => {
        got.push(...(await drain(s.consumer, 300)));
        // after the first results and kafka-in's first commit
        if (got.length < 8) return false;
        for (const p of (await committedOffsets(s.groupId, s.kafkaTopic)).values())
          if (p.committed > 0) return true;
        return false;
      },
      60_000,
    );
    // no close, no last checkpoint, no commit: whatever was in flight is only in Kafka and the changelog,
    // and results sent but not yet settled are sent again by the next process
    await red.stop("SIGKILL");
    red = await startNodeRed({ userDir });
    await produce(s.kafkaTopic, second);
    const want = await kafkaReference(s.kafkaTopic, first.length + second.length);
    await waitFor(
      "every window's result",
      async () => {
        got.push(...(await drain(s.consumer, 1000)));
        return new Set(got.map((r) => `${r.key}@${r.start}`)).size >= want.size;
      },
      120_000,
    ).catch(async (err: unknown) => {
      const seen = new Set(got.map((r) => `${r.key}@${r.start}`));
      const missing = [...want.keys()].filter((k) => !seen.has(k));
      const statuses = JSON.stringify(Object.fromEntries(await red.statuses().catch(() => new Map())));
      const offsets = JSON.stringify([...(await committedOffsets(s.groupId, s.kafkaTopic))]);
      throw new Error(
        `${String(err)}: ${missing.length} missing (${missing.slice(0, 8).join(" ")}); statuses ${statuses}; offsets ${offsets}; node-red: ${red.output().slice(-1500)}`,
      );
    });
    got.push(...(await drain(s.consumer, 3000)));
    compare(got, want);
    if (eo) assert.equal(got.length, want.size, "effectively-once: each result stored once");
    await waitFor("every offset committed", () => committedAll(s.groupId, s.kafkaTopic, 800), 30_000);
    t.diagnostic(`${got.length} results for ${want.size} windows`);
    assert.doesNotMatch(red.output(), /Unhandled|uncaught/i);
  } finally {
    await red.stop();
    await s.consumer.close();
  }
}

test("a node-red process killed with SIGKILL in the middle of the windows and started again: no window lost, none wrong, a result sent again is the same, every offset commits", (t) =>
  killMidWindow(t, false));

test("the same with an effectively-once pulsar-out: every window's result is stored exactly once (the result's number is its sequence id; Pulsar drops what a restart sends again)", (t) =>
  killMidWindow(t, true));

test("two node-red processes in one consumer group, one joining mid-stream and one killed: the partitions move with their window state (the new owner restores it and fences the old); every window's result equals the reference", async (t) => {
  const s = await setup("window-rebalance");
  const dirs = [makeUserDir(), makeUserDir()];
  t.after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const flowOnTab = processFlow(s, false);
  const parts = [records(0, 300), records(300, 300), records(600, 300)];
  const got: Result[] = [];
  const collect = async (until: () => boolean, what: string, ms: number) =>
    waitFor(
      what,
      async () => {
        got.push(...(await drain(s.consumer, 500)));
        return until();
      },
      ms,
    );
  const first = await startNodeRed({ userDir: dirs[0] });
  let second: Awaited<ReturnType<typeof startNodeRed>> | undefined;
  try {
    await produce(s.kafkaTopic, parts[0] ?? []);
    await first.deploy(flowOnTab);
    await collect(() => got.length >= 5, "results from the first instance", 60_000);
    // a second instance joins: one partition moves to it, with its open windows
    second = await startNodeRed({ userDir: dirs[1] });
    await second.deploy(flowOnTab);
    await produce(s.kafkaTopic, parts[1] ?? []);
    await collect(() => got.length >= 20, "results while both run", 90_000);
    // the first is killed: its partition moves to the second once its session times out
    await first.stop("SIGKILL");
    await produce(s.kafkaTopic, parts[2] ?? []);
    const want = await kafkaReference(s.kafkaTopic, parts.flat().length);
    await collect(
      () => new Set(got.map((r) => `${r.key}@${r.start}`)).size >= want.size,
      "every window's result",
      150_000,
    );
    got.push(...(await drain(s.consumer, 3000)));
    compare(got, want);
    await waitFor("every offset committed", () => committedAll(s.groupId, s.kafkaTopic, 900), 60_000);
    t.diagnostic(`${got.length} results for ${want.size} windows`);
  } finally {
    await first.stop().catch(() => undefined);
    await second?.stop();
    await s.consumer.close();
  }
});
