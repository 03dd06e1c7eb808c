// pulsar-in in a real Node-RED runtime against the real brokers: messages written by Pulsar's own tools
// (pulsar-perf, batched and compressed; pulsar-client, with keys and properties) reach the flow and, through
// kafka-out, Kafka (read back by Kafka's console consumer); a message is acknowledged only once settled
// (the subscription's backlog, read with the admin API, drains to zero only then); a failing message is
// delivered again after its delay and, after its last try, written to the dead-letter topic (read back by
// pulsar-client); a redeploy while a delay node holds messages loses none.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { consoleRecords, createTopic } from "../support/kafka";
import { kafkaBrokers, pulsarAdmin, pulsarUrl, runToolOk, uniqueName } from "../support/brokers";
import { waitFor } from "../support/wait";

after(() => stopHelper());

const pulsarTopic = (prefix: string) => `persistent://public/default/${uniqueName(prefix)}`;

/** The subscription's backlog (messages not acknowledged), as the broker's stats give it. */
async function backlog(topic: string, subscription: string): Promise<number> {
  const r = await pulsarAdmin("GET", `/admin/v2/persistent/${topic.replace("persistent://", "")}/stats`);
  const subs = (r.json as { subscriptions?: Record<string, { msgBacklog?: number }> }).subscriptions ?? {};
  return subs[subscription]?.msgBacklog ?? -1;
}

/** Creates the subscription at the earliest position, so that what is produced next is kept for it. */
async function subscription(topic: string, name: string): Promise<void> {
  const r = await pulsarAdmin(
    "PUT",
    `/admin/v2/persistent/${topic.replace("persistent://", "")}/subscription/${name}`,
    { entryId: -1, ledgerId: -1 },
  );
  assert.ok(r.status === 204 || r.status === 409, `subscription: ${r.status}`);
}

function nodes(o: {
  topic: string;
  sub: string;
  kafkaTopic?: string;
  middle?: Record<string, unknown>[];
  extra?: Record<string, unknown>;
}) {
  const first = o.middle?.[0]?.id as string | undefined;
  return [
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl },
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "pulsar-in-test" },
    {
      id: "in",
      type: "pulsar-in",
      cluster: "pc",
      topics: o.topic,
      subscription: o.sub,
      subscriptionType: "shared",
      initialPosition: "earliest",
      nackDelayMs: 200,
      ...o.extra,
      wires: [[first ?? (o.kafkaTopic ? "kout" : "sink")]],
    },
    ...(o.middle ?? []),
    o.kafkaTopic
      ? { id: "kout", type: "kafka-out", cluster: "kc", topic: o.kafkaTopic }
      : { id: "sink", type: "helper" },
  ];
}

test("messages from pulsar-perf (batched, LZ4) and pulsar-client (keys, properties) reach Kafka through kafka-out; each is acknowledged once Kafka has it (the backlog drains to zero)", async () => {
  const topic = pulsarTopic("pulsar-in-perf");
  const kafkaTopic = uniqueName("pulsar-in-copy");
  await createTopic(kafkaTopic, 1);
  await subscription(topic, "bridge");
  await runToolOk("pulsar-perf", ["produce", "-m", "500", "-r", "2000", "-s", "64", "-z", "LZ4", topic], {
    timeoutMs: 120_000,
  });
  await runToolOk("pulsar-client", ["produce", "-k", "device-7", "-p", "unit=C", "-m", "21.5", topic]);
  await loadFlow(nodes({ topic, sub: "bridge", kafkaTopic }));
  try {
    await waitFor("the backlog drained", async () => (await backlog(topic, "bridge")) === 0, 60_000, 500);
  } finally {
    await unloadFlow();
  }
  // pulsar-perf may write a few more than asked: what the topic got, as the broker counts it
  const stats = await pulsarAdmin("GET", `/admin/v2/persistent/${topic.replace("persistent://", "")}/stats`);
  const total = (stats.json as { msgInCounter: number }).msgInCounter;
  assert.ok(total >= 501, `${total} messages in the topic`);
  const read = await consoleRecords(kafkaTopic, total);
  assert.equal(read.length, total);
  const cli = read.find((r) => r.key === "device-7");
  assert.ok(cli, "the keyed message");
  assert.equal(cli.value, "21.5");
  assert.equal(cli.headers, "unit:C");
  assert.equal(read.filter((r) => r.value.length === 64).length, total - 1, "pulsar-perf's payloads, whole");
});

test("a message a function fails is delivered again after its delay, and after its last try written to the dead-letter topic with the reason; the others are acknowledged", async () => {
  const topic = pulsarTopic("pulsar-in-fail");
  const dlq = pulsarTopic("pulsar-in-dlq");
  await subscription(topic, "bridge");
  await subscription(dlq, "check");
  await runToolOk("pulsar-client", ["produce", "-m", "good-1,bad,good-2", "-db", topic]);
  await loadFlow(
    nodes({
      topic,
      sub: "bridge",
      extra: { maxTries: 3, deadLetterTopic: dlq },
      middle: [
        {
          id: "fn",
          type: "function",
          func: 'if (msg.payload === "bad") throw new Error("refused " + msg.pulsar.redeliveryCount); return msg;',
          wires: [["sink"]],
        },
      ],
    }),
  );
  const seen: string[] = [];
  helper.getNode("sink")?.on("input", (m: { payload: string }) => seen.push(m.payload));
  try {
    await waitFor("the backlog drained", async () => (await backlog(topic, "bridge")) === 0, 60_000, 300);
  } finally {
    await unloadFlow();
  }
  assert.deepEqual(seen.sort(), ["good-1", "good-2"]);
  const consumed = await runToolOk("pulsar-client", [
    "consume",
    "-s",
    "check",
    "-n",
    "1",
    "-p",
    "Earliest",
    dlq,
  ]);
  assert.match(consumed.stdout, /bad/);
  assert.match(consumed.stdout, /dlq\.error=?.*refused/);
  assert.match(consumed.stdout, /REAL_TOPIC/);
  assert.equal(await backlog(dlq, "check"), 0);
});

test("a redeploy while a delay node holds messages loses none: what was not settled is delivered again", async () => {
  const topic = pulsarTopic("pulsar-in-redeploy");
  await subscription(topic, "bridge");
  const sent = Array.from({ length: 30 }, (_, i) => `m${i}`);
  await runToolOk("pulsar-client", ["produce", "-m", sent.join(","), "-db", topic]);
  const flow = nodes({
    topic,
    sub: "bridge",
    middle: [
      {
        id: "slow",
        type: "delay",
        pauseType: "rate",
        rate: "10",
        nbRateUnits: "1",
        rateUnits: "second",
        wires: [["sink"]],
      },
    ],
  });
  await loadFlow(flow);
  await new Promise((r) => setTimeout(r, 800));
  await unloadFlow();
  const before = await backlog(topic, "bridge");
  assert.ok(before > 0, `some were still held at the redeploy (backlog ${before})`);
  await loadFlow(flow);
  const seen = new Set<string>();
  helper.getNode("sink")?.on("input", (m: { payload: string }) => seen.add(m.payload));
  try {
    await waitFor("the backlog drained", async () => (await backlog(topic, "bridge")) === 0, 60_000, 300);
  } finally {
    await unloadFlow();
  }
  assert.ok(seen.size >= before, `after the redeploy ${seen.size} arrived, ${before} were not acknowledged`);
});

test("a topic pattern subscribes every topic of the namespace it matches (a partitioned one on each partition), and a topic created after the deploy once the namespace is listed again; others are left alone", async () => {
  const stem = uniqueName("rx");
  const ns = "persistent://public/default";
  const plain = `${ns}/${stem}-plain`;
  const parted = `${ns}/${stem}-parted`;
  const later = `${ns}/${stem}-later`;
  const other = `${ns}/other-${stem}`;
  const created = await pulsarAdmin(
    "PUT",
    `/admin/v2/persistent/public/default/${stem}-parted/partitions`,
    2,
  );
  assert.equal(created.status, 204, `partitioned topic: ${created.status}`);
  for (const t of [plain, parted, other]) await subscription(t, "bridge");
  await runToolOk("pulsar-client", ["produce", "-m", "p1,p2", "-db", plain]);
  // keys spread the messages over both partitions
  for (const k of ["a", "b", "c", "d"])
    await runToolOk("pulsar-client", ["produce", "-k", k, "-m", `q-${k}`, parted]);
  await runToolOk("pulsar-client", ["produce", "-m", "not-me", other]);
  await loadFlow(
    nodes({
      topic: `${ns}/${stem}-.*`,
      sub: "bridge",
      extra: { topicMode: "pattern", discoverySeconds: 2 },
    }),
  );
  const seen: string[] = [];
  helper.getNode("sink")?.on("input", (m: { payload: string }) => seen.push(m.payload));
  try {
    await waitFor("the matching topics read", () => seen.length >= 6, 60_000, 200);
    // a topic made now: the next listing finds it
    await subscription(later, "bridge");
    await runToolOk("pulsar-client", ["produce", "-m", "l1", "-db", later]);
    await waitFor("the later topic read", () => seen.includes("l1"), 60_000, 200);
    await waitFor("acknowledged", async () => (await backlog(later, "bridge")) === 0, 30_000, 300);
  } finally {
    await unloadFlow();
  }
  assert.deepEqual(seen.sort(), ["l1", "p1", "p2", "q-a", "q-b", "q-c", "q-d"]);
  assert.equal(await backlog(other, "bridge"), 1, "the topic the pattern does not match is not read");
  const parts = await pulsarAdmin(
    "GET",
    `/admin/v2/persistent/public/default/${stem}-parted/partitioned-stats`,
  );
  const partitions = (parts.json as { partitions: Record<string, { msgInCounter: number }> }).partitions;
  assert.ok(
    Object.values(partitions).every((p) => p.msgInCounter > 0),
    "the keys went to both partitions (so both were read)",
  );
});
