// The changelog of stateful nodes (src/kafka/changelog.ts) on the real Kafka: checkpoints are
// transactions, a restore sees committed checkpoints only, a new owner of a partition fences the old one,
// and Kafka's console consumer (read_committed) sees the same records.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Changelog, isFencedError } from "../../src/kafka/changelog";
import { failureScope } from "../../src/common/errors";
import { kafkaBrokers, runToolOk, uniqueName } from "../support/brokers";
import { createTopic, testKafka } from "../support/kafka";

const kafka = testKafka("changelog-test");
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers) await c().catch(() => undefined);
});

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const plain = (m: Map<string, Buffer>) =>
  Object.fromEntries([...m].map(([k, v]) => [k, JSON.parse(v.toString()) as unknown]));

/** The changelog's records as Kafka's console consumer reads them with read_committed: "key\tvalue" lines. */
async function committedRecords(topic: string, partition: number, n: number): Promise<string[]> {
  const r = await runToolOk("kafka-tool", [
    "console-consumer",
    "--bootstrap-server",
    kafkaBrokers[0] ?? "",
    "--topic",
    topic,
    "--partition",
    String(partition),
    "--offset",
    "earliest",
    "--isolation-level",
    "read_committed",
    "--max-messages",
    String(n),
    "--timeout-ms",
    "15000",
    "--property",
    "print.key=true",
  ]);
  return r.stdout
    .split("\n")
    .filter((l) => l.includes("\t"))
    .map((l) => l.replaceAll("\u0000", "|"));
}

test("checkpoints: what was committed is restored, the latest value per name, a null value removes it; the topic is compacted", async () => {
  const topic = uniqueName("changelog");
  const log = new Changelog({ kafka, topic, owner: uniqueName("owner") });
  await log.ensureTopic(3);
  const first = await log.open("src", 1);
  closers.push(() => first.close());
  assert.deepEqual(plain(first.restored), {});
  await first.write([
    { name: "a", value: json({ n: 1 }) },
    { name: "b", value: json({ n: 2 }) },
  ]);
  await first.write([
    { name: "a", value: json({ n: 3 }) },
    { name: "b", value: null },
  ]);
  await first.close();
  const again = await log.open("src", 1);
  closers.push(() => again.close());
  assert.deepEqual(plain(again.restored), { a: { n: 3 } });
  // another source partition's state is its own
  const other = await log.open("src", 2);
  closers.push(() => other.close());
  assert.deepEqual(plain(other.restored), {});

  const admin = kafka.admin();
  await admin.connect();
  try {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    assert.equal(meta.topics[0]?.partitions.length, 3);
    const configs = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, name: topic, configNames: ["cleanup.policy"] }],
    });
    assert.equal(configs.resources[0]?.configEntries[0]?.configValue, "compact");
  } finally {
    await admin.disconnect();
  }
  const lines = await committedRecords(topic, 1, 6);
  assert.deepEqual(
    lines.filter((l) => !l.startsWith("src|open")),
    ['src|a\t{"n":1}', 'src|b\t{"n":2}', 'src|a\t{"n":3}', "src|b\tnull"],
  );
});

test("a checkpoint cut off in the middle (its writer killed before the commit) is not restored, and the writer is fenced", async () => {
  const topic = uniqueName("changelog-cut");
  const owner = uniqueName("owner");
  const log = new Changelog({ kafka, topic, owner });
  await log.ensureTopic(1);
  const first = await log.open("src", 0);
  await first.write([{ name: "a", value: json(1) }]);
  await first.close();
  // a writer with the same transactional id, as the killed process left it: records sent, no commit
  const killed = kafka.producer({
    transactionalId: `${owner}-src-0`,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await killed.connect();
  closers.push(() => killed.disconnect());
  const t = await killed.transaction();
  await t.send({ topic, messages: [{ key: "src\u0000a", value: json(2), partition: 0 }] });
  const next = await log.open("src", 0);
  closers.push(() => next.close());
  assert.deepEqual(plain(next.restored), { a: 1 }, "only the committed checkpoint");
  await assert.rejects(t.commit(), "the cut-off writer cannot commit any more");
  const lines = await committedRecords(topic, 0, 3);
  assert.deepEqual(
    lines.filter((l) => !l.startsWith("src|open")),
    ["src|a\t1"],
  );
});

test("a partition opened by a new owner fences the old one: its next checkpoint fails, the new owner restores what the old committed", async () => {
  const topic = uniqueName("changelog-fence");
  const owner = uniqueName("owner");
  const log = new Changelog({ kafka, topic, owner });
  await log.ensureTopic(2);
  const old = await log.open("src", 0);
  closers.push(() => old.close());
  await old.write([{ name: "k", value: json("old") }]);
  const taker = await new Changelog({ kafka, topic, owner }).open("src", 0);
  closers.push(() => taker.close());
  assert.deepEqual(plain(taker.restored), { k: "old" });
  await assert.rejects(old.write([{ name: "k", value: json("zombie") }]), (e: unknown) => isFencedError(e));
  await taker.write([{ name: "k", value: json("new") }]);
  const last = await log.open("src", 0);
  closers.push(() => last.close());
  assert.deepEqual(plain(last.restored), { k: "new" });
});

test("a changelog topic with fewer partitions than its source is refused with the reason", async () => {
  const topic = uniqueName("changelog-small");
  await createTopic(topic, 1);
  const log = new Changelog({ kafka, topic, owner: uniqueName("owner") });
  await assert.rejects(log.ensureTopic(3), /has 1 partitions, fewer than the 3 of its source topic/);
});

test("a changelog checked for a source of 1 partition is checked again for one of 3 (another source topic, or partitions added): refused when it has fewer", async () => {
  const topic = uniqueName("changelog-grow");
  const log = new Changelog({ kafka, topic, owner: uniqueName("owner") });
  await log.ensureTopic(1);
  await log.ensureTopic(1);
  await assert.rejects(log.ensureTopic(3), /has 1 partitions, fewer than the 3 of its source topic/);
});

test("issue 14 audit F2: a checkpoint larger than Kafka takes in one request (3 MiB of keys) is written in parts of one transaction and restored whole; one value larger than the topic takes is refused with a record error, not tried for ever", async () => {
  const topic = uniqueName("changelog-big");
  const log = new Changelog({ kafka, topic, owner: uniqueName("owner") });
  await log.ensureTopic(1);
  const first = await log.open("src", 0);
  closers.push(() => first.close());
  const value = Buffer.alloc(1024, 0x61);
  const names = Array.from({ length: 3000 }, (_, i) => `k${i}`);
  await first.write(names.map((name) => ({ name, value })));
  await assert.rejects(
    first.write([{ name: "huge", value: Buffer.alloc(2 * 1024 * 1024, 0x62) }]),
    (err: unknown) => {
      assert.equal((err as { key?: unknown }).key, "kafka-window.errors.state-too-large");
      assert.equal(failureScope(err), "record");
      assert.match(String((err as Error).message), /"huge" is 2097152 bytes/);
      return true;
    },
  );
  await first.close();
  const second = await log.open("src", 0);
  closers.push(() => second.close());
  assert.equal(second.restored.size, 3000, "every key of the big checkpoint, nothing of the refused one");
  assert.ok([...second.restored.values()].every((v) => v.equals(value)));
});
