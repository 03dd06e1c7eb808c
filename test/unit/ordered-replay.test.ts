// kafka-in's ordered mode (effectively-once downstream), driven through the hooks Node-RED calls: a failure
// replays the partition from its lowest unsettled record, in offset order, under a new epoch; the
// partition is blocked meanwhile (nothing newer is emitted ahead of the replay); completions of the
// discarded pass are ignored; other partitions go on; a record error does not replay. With pulsar-out's
// side (EffectivelyOncePublisher): stale msgs, the fence after a failed send, producers closed on revoke.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KafkaMessage } from "kafkajs";
import { Delivery, type DeliveryRecord } from "../../src/bridge/delivery";
import { OffsetLedger } from "../../src/bridge/offsets";
import { BridgeError, ConfigurationError } from "../../src/common/errors";
import { TimeoutError } from "../../src/pulsar/errors";
import { EffectivelyOncePublisher, type StreamOwner } from "../../src/bridge/effectively-once";
import type { Reach } from "../../src/bridge/settlement";

type Sent = { _msgid: string; kafka: { offset: string; partition: number; attempt: number; epoch?: number } };

function harness(o: {
  ordered: boolean;
  deadLetter?: boolean;
  maxAttempts?: number;
  settled?: boolean;
  /** The node kafka-in is wired to (default "out", pulsar-out). */
  to?: string;
  /** Batch output: one msg per this many records. */
  batchSize?: number;
  /** The Kafka topics' identities (kafka-cluster's topicIdentity). */
  identity?: (topic: string, topicId?: string) => Promise<string>;
  /** What each node can do with a msg (flow-shape.ts reachOf). */
  reach?: (nodeId: string) => Reach;
}) {
  const ledger = new OffsetLedger();
  const sent: Sent[] = [];
  const control: string[] = [];
  const deadLettered: string[] = [];
  let id = 0;
  const d = new Delivery(
    {
      settled: o.settled ?? true,
      batchOutput: o.batchSize !== undefined,
      batchSize: o.batchSize ?? 1,
      settleTimeoutMs: 0,
      maxAttempts: o.maxAttempts ?? 5,
      retryBackoffMs: 20,
      groupId: "g",
      cluster: "c",
      decode: (r: DeliveryRecord) =>
        ({
          payload: r.message.value,
          topic: r.topic,
          key: null,
          kafka: { topic: r.topic, partition: r.partition, offset: r.message.offset },
        }) as never,
      nextMsgId: () => `m${++id}`,
      writeDeadLetter: o.deadLetter
        ? (r) => {
            deadLettered.push(`${r.partition}@${r.message.offset}`);
            return Promise.resolve();
          }
        : undefined,
      describeNode: (n) => n,
      ledger,
      ordered: o.ordered,
      sourceId: "kin",
      identity: o.identity,
      replayDrainMs: 150,
      reach: o.reach ? () => o.reach : undefined,
    },
    {
      send: (msg) => {
        sent.push(msg as unknown as Sent);
        // the msg reaches the next node (preDeliver)
        d.delivered(msg._msgid, "kin", o.to ?? "out");
      },
      decodeFailed: () => undefined,
      deadLettered: () => undefined,
      deadLetterFailed: () => undefined,
      blocked: () => undefined,
      expired: () => undefined,
      lost: () => undefined,
      changed: () => undefined,
    },
  );
  // pulsar-out, which drops what a replay discarded by itself
  if (o.ordered) d.requireOrdered("out");
  d.control = {
    settled: () => undefined,
    block: (_t, p) => control.push(`block ${p}`),
    unblock: (_t, p) => control.push(`unblock ${p}`),
  };
  const record = (partition: number, offset: number) => {
    ledger.add("t", partition, String(offset));
    d.onRecord("t", partition, { offset: String(offset), value: Buffer.from("v") } as KafkaMessage);
  };
  const find = (partition: number, offset: number, pass = 0) =>
    sent.filter((m) => m.kafka.partition === partition && m.kafka.offset === String(offset))[pass];
  const done = (m: Sent, err?: unknown) => d.completed(m._msgid, "out", err);
  return { d, ledger, sent, control, deadLettered, record, find, done };
}

/** pulsar-out's side over `source` (kafka-in "kin"): closing producers picks from `owners`, noting their partitions. */
function publisher(source: Delivery, owners: StreamOwner[], closed: number[]) {
  return new EffectivelyOncePublisher({
    findSource: (id) => (id === "kin" ? source : undefined),
    closeProducers: (select) => {
      const picked = owners.filter(select);
      closed.push(...picked.map((o) => o.partition));
      return picked;
    },
  });
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits until `ready` holds (a loaded machine may run a 20 ms back-off late), 5 s at most. */
async function until(ready: () => boolean): Promise<void> {
  for (let waited = 0; !ready() && waited < 5000; waited += 10) await wait(10);
}

test("ordered: a failure replays the partition's unsettled records in offset order, under a new epoch", async () => {
  const h = harness({ ordered: true });
  for (let o = 0; o < 6; o++) h.record(0, o);
  h.record(1, 0);
  await tick();
  const first = h.find(0, 0);
  assert.equal(first.kafka.epoch !== undefined, true);
  assert.equal((first as unknown as { kafka: { source: string } }).kafka.source, "kin");
  // 0 and 2 are stored; 1 times out (and with it 3, its neighbour on the same Pulsar partition)
  h.done(h.find(0, 0));
  h.done(h.find(0, 2));
  await tick();
  const epoch1 = h.d.epochOf("t", 0);
  h.done(h.find(0, 1), new TimeoutError("no receipt"));
  await tick();
  assert.deepEqual(
    h.control,
    ["block 0"],
    "the partition stops at once: nothing newer goes ahead of the replay",
  );
  assert.ok(
    (h.d.epochOf("t", 0) as number) > (epoch1 as number),
    "a new epoch: what the flow holds is stale",
  );
  assert.equal(h.d.epochOf("t", 1), h.find(1, 0).kafka.epoch, "other partitions keep theirs");
  assert.equal(h.d.retrying.length, 1);
  // completions of the discarded pass change nothing (they are neither settled nor failed)
  h.done(h.find(0, 3), new TimeoutError("no receipt"));
  h.done(h.find(0, 4));
  await tick();
  assert.equal(h.ledger.isUnsettled("t", 0, "4"), true);
  const before = h.sent.length;
  await until(() => h.sent.length >= before + 4);
  await wait(20); // nothing more comes
  const replayed = h.sent.slice(before);
  assert.deepEqual(
    replayed.map((m) => `${m.kafka.partition}@${m.kafka.offset}#${m.kafka.attempt}`),
    ["0@1#2", "0@3#2", "0@4#2", "0@5#2"],
    "every unsettled record, lowest first; settled ones (0, 2) are not sent again",
  );
  assert.ok(replayed.every((m) => m.kafka.epoch === h.d.epochOf("t", 0)));
  assert.deepEqual(h.control, ["block 0", "unblock 0"]);
  for (const m of replayed) h.done(m);
  h.done(h.find(1, 0));
  await tick();
  assert.equal(h.ledger.inFlight, 0);
  assert.equal(h.ledger.takeCommittable("t", 0), "6");
  assert.equal(h.d.retrying.length, 0);
  h.d.close();
});

test("ordered: a failure of a record the flow still holds an earlier one of replays from the earlier one; tries are bounded", async () => {
  const h = harness({ ordered: true, deadLetter: true, maxAttempts: 2 });
  for (let o = 10; o < 13; o++) h.record(0, o);
  await tick();
  // 12 fails first (a throwing function on another branch), 10 and 11 are still held
  h.done(h.find(0, 12), new Error("boom"));
  await wait(40);
  assert.deepEqual(
    h.sent.slice(3).map((m) => m.kafka.offset),
    ["10", "11", "12"],
  );
  // its second try fails too: maxAttempts 2 -> dead letter; the rest is replayed at once, without it
  h.done(h.find(0, 10, 1));
  await tick();
  h.done(h.find(0, 12, 1), new Error("boom"));
  await wait(10);
  assert.deepEqual(h.deadLettered, ["0@12"]);
  assert.deepEqual(
    h.sent.slice(6).map((m) => `${m.kafka.offset}#${m.kafka.attempt}`),
    ["11#3"],
  );
  h.done(h.find(0, 11, 2));
  await tick();
  assert.equal(h.ledger.takeCommittable("t", 0), "13");
  h.d.close();
});

test("ordered: a record error goes to the dead letter alone (it stored nothing); not ordered: a retry is per record", async () => {
  const h = harness({ ordered: true, deadLetter: true });
  for (let o = 0; o < 3; o++) h.record(0, o);
  await tick();
  h.done(h.find(0, 1), new BridgeError("pulsar-out.errors.payload", "not a payload", false));
  await tick();
  assert.deepEqual(h.deadLettered, ["0@1"]);
  assert.deepEqual(h.control, []);
  h.done(h.find(0, 0));
  h.done(h.find(0, 2));
  await tick();
  assert.equal(h.ledger.takeCommittable("t", 0), "3");
  assert.equal(h.sent.length, 3);
  h.d.close();

  const p = harness({ ordered: false });
  for (let o = 0; o < 3; o++) p.record(0, o);
  await tick();
  assert.equal(p.find(0, 0).kafka.epoch, undefined, "no epoch without an effectively-once pulsar-out");
  p.done(p.find(0, 1), new Error("boom"));
  await wait(40);
  assert.deepEqual(
    p.sent.slice(3).map((m) => m.kafka.offset),
    ["1"],
  );
  // asked at run time (a pulsar-out reached through a link): ordered from then on
  p.d.requireOrdered();
  p.record(0, 3);
  assert.equal(typeof p.find(0, 3).kafka.epoch, "number");
  p.d.close();
});

test("pulsar-out's side: msgs of a discarded pass are stale, a failed send fences its stream, a revoke closes the partition's producers", async () => {
  const h = harness({ ordered: true });
  const closed: number[] = [];
  const owners: StreamOwner[] = [];
  const eo = publisher(h.d, owners, closed);
  const topic = "persistent://public/default/t";
  const prepare = (m: Sent) => eo.prepare(m, topic);
  for (let o = 0; o < 4; o++) h.record(0, o);
  h.record(1, 0);
  await tick();
  const p0 = await prepare(h.find(0, 0));
  assert.notEqual(p0, "stale");
  if (p0 === "stale") return;
  assert.equal(p0.sequenceId, 0);
  owners.push(p0.owner);
  const p1 = await prepare(h.find(0, 1));
  if (p1 === "stale") return assert.fail("record 1 is of the current pass");
  // record 1's send times out: record 2 of the same pass is refused until the replay
  const timeout = new TimeoutError("no receipt");
  eo.failed(p1);
  await assert.rejects(prepare(h.find(0, 2)), /waits for the replay/);
  h.done(h.find(0, 1), timeout);
  await tick();
  // record 3 of the discarded pass reaches pulsar-out after kafka-in started the replay: stale
  assert.equal(await prepare(h.find(0, 3)), "stale");
  await wait(60);
  const replayed = h.find(0, 1, 1);
  assert.equal(replayed.kafka.attempt, 2);
  // the replay holds record 0 too (unsettled): offset 1 of the new pass waits until 0 of it is admitted
  let admitted = false;
  const waiting = prepare(replayed).then((r) => {
    admitted = true;
    return r;
  });
  await wait(30);
  assert.equal(admitted, false, "offset 1 of the new pass waits for offset 0");
  assert.notEqual(await prepare(h.find(0, 0, 1)), "stale");
  const again = await waiting;
  assert.notEqual(again, "stale");
  // a duplicate receipt stands for a stored record only when the producer can prove it
  if (again !== "stale") {
    eo.received(again, { duplicate: true, duplicateProven: true });
    assert.throws(() => eo.received(again, { duplicate: true, duplicateProven: false }), /never stored it/);
  }
  // partition 1 goes to another instance: its producers close, its msgs still in the flow are stale
  const q = await prepare(h.find(1, 0));
  if (q === "stale") return assert.fail("partition 1 is ours");
  owners.push(q.owner);
  h.d.onAssignment([{ topic: "t", partition: 0 }]);
  assert.deepEqual(
    closed,
    [1, 0],
    "1 for its new owner; 0, kept and read again from its commit, opens afresh (the broker's last id proves what it stored)",
  );
  assert.equal(await prepare(h.find(1, 0)), "stale");
  eo.close();
  h.d.close();
});

test("review fixes: a blocked record error replays; a send after a failure since admission is refused; auto commit and a gone kafka-in are refused; closing revokes every partition", async () => {
  // a record error without dead-letter target blocks: later records of the partition are replayed with it
  const h = harness({ ordered: true });
  for (let o = 0; o < 3; o++) h.record(0, o);
  await tick();
  h.done(h.find(0, 0), new BridgeError("pulsar-out.errors.payload", "too big", false));
  await tick();
  assert.deepEqual(h.control, ["block 0"]);
  assert.equal(h.d.blocked.length, 1);
  assert.equal(h.d.epochOf("t", 0) !== h.find(0, 1).kafka.epoch, true, "what the flow holds is stale");

  const closed: number[] = [];
  const owners: StreamOwner[] = [];
  const eo = publisher(h.d, owners, closed);
  const topic = "persistent://public/default/t";
  // a msg admitted before its pass was discarded is refused just before the send
  const h2 = harness({ ordered: true });
  const eo2 = new EffectivelyOncePublisher({ findSource: () => h2.d, closeProducers: () => [] });
  for (let o = 0; o < 3; o++) h2.record(0, o);
  await tick();
  assert.notEqual(await eo2.prepare(h2.find(0, 0), topic), "stale");
  const a = await eo2.prepare(h2.find(0, 1), topic);
  const b = await eo2.prepare(h2.find(0, 2), topic);
  if (a === "stale" || b === "stale") return assert.fail("current pass");
  eo2.failed(a);
  assert.throws(() => eo2.recheck(b), /waits for the replay/);
  h2.done(h2.find(0, 0), new Error("boom"));
  await tick();
  assert.throws(() => eo2.recheck(a), /discarded pass/);
  // msgs whose kafka-in is gone fail (not settled), and auto commit is refused
  await assert.rejects(
    eo.prepare({ kafka: { topic: "t", partition: 0, offset: "1", source: "other", epoch: 1 } }, topic),
    /is gone/,
  );
  const auto = harness({ ordered: true, settled: false });
  const eo3 = new EffectivelyOncePublisher({ findSource: () => auto.d, closeProducers: () => [] });
  await assert.rejects(
    eo3.prepare({ kafka: { topic: "t", partition: 0, offset: "1", source: "kin", epoch: 1 } }, topic),
    /settled offsets/,
  );
  // closing kafka-in revokes every partition: their producers are closed for the next owner
  const h3 = harness({ ordered: true });
  const eo4 = publisher(h3.d, owners, closed);
  h3.record(0, 0);
  h3.record(2, 0);
  await tick();
  for (const p of [0, 2]) {
    const x = await eo4.prepare(h3.find(p, 0), topic);
    if (x !== "stale") owners.push(x.owner);
  }
  h3.d.close();
  assert.deepEqual(closed.sort(), [0, 2]);
  for (const x of [h, h2, auto]) x.d.close();
  for (const x of [eo, eo2, eo3, eo4]) x.close();
});

/**
 * Core join "j" between kafka-in and pulsar-out, as Node-RED runs it: the joined msg is the last part's
 * (its _msgid and msg.kafka), sent on, then the parts' done() in the same turn.
 */
function join(h: ReturnType<typeof harness>, parts: Sent[]): Sent {
  const last = parts[parts.length - 1];
  h.d.delivered(last._msgid, "j", "out");
  for (const p of parts) h.d.completed(p._msgid, "j");
  return last;
}

test("review 23 F2: two merges of one partition's records that cross (a join per key: 0,2,4 and 1,3,5) wait for each other; refused as a configuration error, not a stall", async (t) => {
  const h = harness({ ordered: true, to: "j" });
  const eo = publisher(h.d, [], []);
  t.after(() => {
    h.d.close();
    eo.close();
  });
  const topic = "persistent://public/default/out";
  for (let o = 0; o < 6; o++) h.record(0, o);
  await tick();
  const a = join(h, [h.find(0, 0), h.find(0, 2), h.find(0, 4)]);
  await tick();
  const pa = eo.prepare(a, topic);
  const b = join(h, [h.find(0, 1), h.find(0, 3), h.find(0, 5)]);
  await tick();
  const pb = eo.prepare(b, topic);
  pb.catch(() => undefined);
  const outcome = await Promise.race([
    pa.then(
      () => "published",
      (err: Error) => err,
    ),
    wait(3000).then(() => "still waiting"),
  ]);
  assert.ok(outcome instanceof ConfigurationError, String(outcome));
  assert.match(outcome.message, /offset 4 waits for offset 1, which a msg of offset 5 carries/);
});

test("merged msgs (core join): published under the highest offset they settle; two partitions are refused; a part of a discarded pass taints the msg", async () => {
  const h = harness({ ordered: true, to: "j" });
  const owners: StreamOwner[] = [];
  const eo = publisher(h.d, owners, []);
  const topic = "persistent://public/default/out";
  for (let o = 0; o < 3; o++) h.record(0, o);
  h.record(1, 0);
  await tick();
  // a join whose last part is not its highest offset (a node before it reordered them)
  const m = join(h, [h.find(0, 0), h.find(0, 2), h.find(0, 1)]);
  await tick();
  const p = await eo.prepare(m, topic);
  assert.ok(p !== "stale");
  assert.equal(p.sequenceId, 2, "the highest offset it settles, not its msg.kafka's 1");
  h.done(m);
  await tick();
  assert.equal(h.ledger.takeCommittable("t", 0), "3", "the three parts settle with the joined msg");

  // a join over partitions: one Pulsar message cannot be deduplicated for two producers
  for (let o = 3; o < 5; o++) h.record(0, o);
  await tick();
  const mixed = join(h, [h.find(0, 3), h.find(1, 0)]);
  await tick();
  await assert.rejects(eo.prepare(mixed, topic), (err: Error) => {
    assert.equal(err instanceof ConfigurationError, true);
    assert.match(err.message, /t partition 1 and t partition 0/);
    return true;
  });

  // a join still holding parts when their partition is replayed: they are of a discarded pass, and the
  // replay waits for the join to let go of them (its timeout), at most replayDrainMs
  const h2 = harness({ ordered: true, to: "j" });
  const eo2 = publisher(h2.d, [], []);
  for (let o = 0; o < 4; o++) h2.record(0, o);
  await tick();
  const before = h2.d.epochOf("t", 0);
  h2.d.completed(h2.find(0, 3)._msgid, "j", new TimeoutError("no receipt")); // a node in the join's place failed
  await wait(60);
  assert.ok((h2.d.epochOf("t", 0) as number) > (before as number));
  assert.equal(h2.find(0, 0, 1), undefined, "the replay waits while the join holds parts of the old pass");
  // the join lets go of two (its timeout): only parts of the discarded pass, stale, dropped quietly
  const old = join(h2, [h2.find(0, 0), h2.find(0, 1)]);
  await tick();
  assert.equal(await eo2.prepare(old, topic), "stale");
  h2.done(old);
  await wait(150);
  const replayed0 = h2.find(0, 0, 1);
  assert.ok(replayed0, "past replayDrainMs the replay goes on, although the join still holds 2");
  // the join merges the old 2 with the replayed 0: published (a refusal would replay the partition while
  // the join holds parts again), and marked
  const tainted = join(h2, [h2.find(0, 2), replayed0]);
  await tick();
  const published = await eo2.prepare(tainted, topic);
  assert.ok(published !== "stale");
  assert.equal(published.tainted, true);
  assert.equal(published.sequenceId, 0);

  // once the join let go of every old part, the replay starts at once; a msg of the old pass on its way
  // is dropped before it reaches a node (Node-RED's onReceive)
  const h3 = harness({ ordered: true, to: "j" });
  for (let o = 0; o < 3; o++) h3.record(0, o);
  await tick();
  h3.d.completed(h3.find(0, 2)._msgid, "j", new TimeoutError("no receipt"));
  assert.equal(h3.d.receiving(h3.find(0, 1)._msgid, "j"), false, "an old msg is dropped on arrival");
  h3.d.completed(h3.find(0, 0)._msgid, "j");
  await wait(40);
  assert.ok(h3.find(0, 0, 1), "nothing of the old pass held: the replay did not wait for replayDrainMs");
  assert.equal(h3.d.receiving(h3.find(0, 0, 1)._msgid, "j"), true);
});

test("batch output in ordered mode: a batch msg is published under its highest offset", async () => {
  const h = harness({ ordered: true, batchSize: 3 });
  for (let o = 0; o < 3; o++) h.record(0, o);
  await tick();
  assert.equal(h.sent.length, 1);
  const eo = publisher(h.d, [], []);
  const p = await eo.prepare(h.sent[0], "persistent://public/default/out");
  assert.ok(p !== "stale");
  assert.equal(p.sequenceId, 2);
  assert.equal(p.owner.partition, 0);
  assert.deepEqual(p.covers, [0, 1], "the records it stores besides 2: proven stored with it");
});

test("ordered: after a rebalance the partitions kept start a new pass (the consumer fetches them again from the commit); a pending replay of one is dropped", async () => {
  const h = harness({ ordered: true });
  const eo = publisher(h.d, [], []);
  const topic = "persistent://public/default/out";
  for (let o = 0; o < 3; o++) h.record(0, o);
  h.record(1, 0);
  await tick();
  h.done(h.find(1, 0), new TimeoutError("no receipt")); // partition 1 waits for its replay
  await tick();
  assert.deepEqual(h.control, ["block 1"]);
  const before = h.d.epochOf("t", 0) as number;
  h.d.onAssignment([
    { topic: "t", partition: 0 },
    { topic: "t", partition: 1 },
  ]);
  assert.ok((h.d.epochOf("t", 0) as number) > before, "a new pass for the partition kept");
  assert.equal(await eo.prepare(h.find(0, 1), topic), "stale", "the copy still in the flow is stale");
  assert.deepEqual(h.control, ["block 1", "unblock 1"], "the refetch replaces the replay");
  await wait(60);
  assert.equal(h.find(1, 0, 1), undefined, "no replay of its own on top of the refetch");
  // the refetched copy is published
  h.ledger.add("t", 0, "1");
  h.d.onRecord("t", 0, { offset: "1", value: Buffer.from("v") } as KafkaMessage);
  await tick();
  const again = await eo.prepare(h.find(0, 1, 1), topic);
  assert.ok(again !== "stale" && again.sequenceId === 1);
});

test("review: a join's msg sent under a discarded part's id but holding a live part reaches pulsar-out (not dropped: the live part would settle unpublished); a split piece shared with another msg is not stale; a msg.parts member is never dropped; a rebalance frees the in-flight window of kept partitions", async () => {
  const topic = "persistent://public/default/out";
  // a join over partitions 0 and 1; partition 0 replays while the join holds 0@0
  const h = harness({ ordered: true, to: "j" });
  const eo = publisher(h.d, [], []);
  h.record(1, 0);
  h.record(0, 0);
  h.record(0, 1);
  await tick();
  h.d.completed(h.find(0, 1)._msgid, "j", new TimeoutError("no receipt"));
  await tick();
  const merged = join(h, [h.find(1, 0), h.find(0, 0)]); // sent under 0@0's id, discarded
  await tick();
  assert.equal(h.d.receiving(merged._msgid, "out", merged), true, "it carries 1@0, live: not dropped");
  await assert.rejects(eo.prepare(merged, topic), ConfigurationError);
  assert.equal(h.ledger.takeCommittable("t", 1), undefined, "1@0 is not settled");

  // split: a record in two pieces; after a replay a join merges an old part with one piece
  const h2 = harness({ ordered: true, to: "s" });
  const eo2 = publisher(h2.d, [], []);
  h2.record(0, 0);
  h2.record(0, 1);
  await tick();
  h2.d.completed(h2.find(0, 1)._msgid, "s", new TimeoutError("no receipt")); // 0@0 and 0@1 replay
  await wait(200);
  const again = h2.find(0, 0, 1);
  // the split node sends two pieces of the replayed 0@0, then finishes it
  const piece = (id: string) => ({ _msgid: id, kafka: again.kafka });
  h2.d.delivered("c1", "s", "j");
  h2.d.delivered("c2", "s", "out");
  h2.d.completed(again._msgid, "s");
  await tick();
  // the join (the split node passed it the old 0@0 before the replay) merges it with piece c1
  const old0 = h2.find(0, 0)._msgid;
  h2.d.delivered(old0, "s", "j");
  h2.d.completed(old0, "s");
  h2.d.delivered("c1", "j", "out");
  h2.d.completed(old0, "j");
  h2.d.completed("c1", "j");
  await tick();
  const p = await eo2.prepare(piece("c1"), topic);
  assert.ok(p !== "stale", "the piece's record is live (c2 holds it too): published, not dropped");
  assert.equal(p.tainted, true);

  // a member of a msg.parts sequence is never dropped (a join in automatic mode waits for every index)
  const h3 = harness({ ordered: true, to: "b" });
  h3.record(0, 0);
  h3.record(0, 1);
  await tick();
  h3.d.completed(h3.find(0, 1)._msgid, "b", new TimeoutError("no receipt"));
  const old = h3.find(0, 0);
  assert.equal(h3.d.receiving(old._msgid, "j", { ...old, parts: { id: "x", index: 0, count: 2 } }), true);
  assert.equal(h3.d.receiving(old._msgid, "j", old), false);

  // a rebalance keeps partition 0: its records in flight no longer count against the window
  const h4 = harness({ ordered: true });
  for (let o = 0; o < 5; o++) h4.record(0, o);
  await tick();
  assert.equal(h4.ledger.inFlight, 5);
  h4.d.onAssignment([{ topic: "t", partition: 0 }]);
  assert.equal(h4.ledger.inFlight, 0, "the refetch brings them again");
});

test("ordered: after a rebalance a kept partition stays paused while a node (a join) holds msgs of its old pass, and resumes once it lets go", async () => {
  const h = harness({ ordered: true, to: "j" });
  h.record(0, 0);
  h.record(0, 1);
  await tick();
  h.d.onAssignment([{ topic: "t", partition: 0 }]);
  assert.deepEqual(h.control, ["block 0"], "the join holds 0 and 1 of the old pass");
  await wait(60);
  assert.deepEqual(h.control, ["block 0"]);
  // the join's timeout: it sends them (stale) and lets go
  const old = join(h, [h.find(0, 0), h.find(0, 1)]);
  h.done(old);
  await wait(80);
  assert.deepEqual(h.control, ["block 0", "unblock 0"]);
});

test("ordered: a second rebalance while a kept partition drains, after the join let go, resumes it", async () => {
  const h = harness({ ordered: true, to: "j" });
  h.record(0, 0);
  await tick();
  h.d.onAssignment([{ topic: "t", partition: 0 }]);
  assert.deepEqual(h.control, ["block 0"]);
  const old = join(h, [h.find(0, 0)]);
  h.done(old); // the join let go, before the drain's next look
  h.d.onAssignment([{ topic: "t", partition: 0 }]); // a second rebalance keeps it again
  assert.deepEqual(h.control, ["block 0", "unblock 0"]);
  await wait(80);
  assert.deepEqual(h.control, ["block 0", "unblock 0"]);
});

test("review 13: msgs the flow reorders (an http request, branches of unequal length) are admitted in offset order; a later msg of a settled record is refused, not dropped; a revoke while waiting makes it stale", async () => {
  const h = harness({ ordered: true });
  const eo = new EffectivelyOncePublisher({ findSource: () => h.d, closeProducers: () => [] });
  const topic = "persistent://public/default/t";
  for (let o = 0; o < 4; o++) h.record(0, o);
  h.record(1, 0);
  await tick();
  const order: string[] = [];
  const admit = (m: Sent) =>
    eo.prepare(m, topic).then((p) => {
      if (p !== "stale") order.push(p.offset);
      return p;
    });
  // 2 and 1 reach pulsar-out before 0 (held by a slow node): they wait for it
  const two = admit(h.find(0, 2));
  const one = admit(h.find(0, 1));
  await wait(30);
  assert.deepEqual(order, [], "nothing before offset 0");
  await admit(h.find(0, 0));
  await Promise.all([one, two]);
  assert.deepEqual(order, ["0", "1", "2"]);
  // record 3 is dropped by a filter: it settles without reaching pulsar-out, which does not wait for it
  h.done(h.find(0, 3));
  await tick();
  // a second msg of record 1 after 2 was published (a node sent it again): refused with the reason
  await assert.rejects(eo.prepare(h.find(0, 1), topic), /after offset 2 of its partition was published/);
  // a msg waiting for an earlier record when its partition is revoked is stale
  h.record(1, 1);
  await tick();
  const waiting = eo.prepare(h.find(1, 1), topic);
  await wait(20);
  h.d.onAssignment([{ topic: "t", partition: 0 }]);
  assert.equal(await waiting, "stale");
  eo.close();
  h.d.close();
});

test("a send refused because pulsar-out is closing (a redeploy) is not counted as a try: redeploys never dead-letter a good record", async () => {
  const h = harness({ ordered: false, deadLetter: true, maxAttempts: 2 });
  h.record(0, 0);
  await tick();
  const closing = () => new BridgeError("pulsar-out.errors.closing", "pulsar-out is closing", true);
  for (let pass = 0; pass < 4; pass++) {
    h.done(h.find(0, 0, pass), closing());
    await wait(200);
  }
  assert.deepEqual(h.deadLettered, [], "four redeploys, maxAttempts 2: still not dead-lettered");
  assert.equal(h.sent.length, 5, "sent again after each refusal");
  h.done(h.find(0, 0, 4));
  await tick();
  assert.equal(h.ledger.takeCommittable("t", 0), "1");
  h.d.close();
});

test("a send refused because Pulsar still has the producer's name on another connection (ProducerBusy) is never counted as a try, however often: the record waits, it is not dead-lettered", async () => {
  const h = harness({ ordered: false, deadLetter: true, maxAttempts: 2 });
  h.record(0, 0);
  await tick();
  const busy = () => new BridgeError("pulsar-out.errors.producer-busy", "Waiting for the producer x", true);
  for (let pass = 0; pass < 14; pass++) {
    h.done(h.find(0, 0, pass), busy());
    await wait(120);
  }
  assert.deepEqual(h.deadLettered, [], "14 refusals (past the 10 free interruptions), maxAttempts 2");
  assert.equal(h.sent.length, 15, "sent again after each refusal");
  h.done(h.find(0, 0, 14));
  await tick();
  assert.equal(h.ledger.takeCommittable("t", 0), "1");
  h.d.close();
});

test("a window result is published under a producer of its node's changelog, partition and state incarnation: a state begun afresh (results from seq 0 again) gets another name, a restore the same", async () => {
  const eo = new EffectivelyOncePublisher({ findSource: () => undefined, closeProducers: () => [] });
  const result = (seq: number, incarnation?: string) => ({
    payload: 1,
    window: { source: "changelog", topic: "t", partition: 0, seq, attempt: 1, incarnation },
  });
  const name = async (m: Record<string, unknown>) => {
    const p = await eo.prepare(m, "persistent://public/default/out");
    assert.notEqual(p, "stale");
    return p === "stale" ? "" : p.owner.producerName;
  };
  const a = await name(result(0, "one"));
  assert.equal(await name(result(1, "one")), a, "the same state: one producer");
  const b = await name(result(0, "two"));
  assert.notEqual(b, a, "a state begun afresh: its seq 0 is not a duplicate of the old one's");
  assert.notEqual(await name(result(0)), a, "a state saved before incarnations: the name it had");
});

test("a window result names the kafka-in its records came from: when a rebalance takes that source partition away, its producer is closed (the partition's new owner can open it)", async () => {
  const h = harness({ ordered: true });
  h.d.onAssignment([
    { topic: "t", partition: 0 },
    { topic: "t", partition: 1 },
  ]);
  // the window's records (kafka-in emitted them)
  h.record(0, 0);
  h.record(1, 0);
  await tick();
  const closed: number[] = [];
  const owners: StreamOwner[] = [];
  const eo = publisher(h.d, owners, closed);
  for (const partition of [0, 1]) {
    const p = await eo.prepare(
      {
        payload: 1,
        window: { source: "changelog", kafkaSource: "kin", topic: "t", partition, seq: 0, attempt: 1 },
      },
      "persistent://public/default/out",
    );
    if (p === "stale") return assert.fail("a result is never stale");
    owners.push(p.owner);
  }
  h.d.onAssignment([{ topic: "t", partition: 1 }]);
  assert.ok(closed.includes(0), `closed: ${closed.join(",")}`);
  h.d.close();
});

test("an offset reset (kafka-in: a topic deleted and created again without a rebalance) makes the topic's identity be asked again, so that effectively-once names new producers", async () => {
  const ids = ["id-1", "id-2"];
  let asked = 0;
  const h = harness({ ordered: true, identity: () => Promise.resolve(ids[asked++] ?? "more") });
  assert.equal(await h.d.identityOf("t", 0), "id-1");
  assert.equal(await h.d.identityOf("t", 0), "id-1", "kept while nothing happens");
  h.d.forgetIdentity("t");
  assert.equal(await h.d.identityOf("t", 0), "id-2");
  h.d.close();
});

test("review 21 F4: a partition the consumer reads as a topic id is named by that id, not by the one Kafka gives the topic when the first msg reaches pulsar-out (recreated meanwhile)", async () => {
  const asked: string[] = [];
  const h = harness({
    ordered: true,
    identity: (topic, topicId) => {
      asked.push(`${topic} ${topicId ?? "?"}`);
      return Promise.resolve(`cluster/${topicId ?? "now-new"}`);
    },
  });
  const readAs = new Map([[0, "old"]]);
  h.d.control = { ...h.d.control!, topicIdOf: (_t, p) => readAs.get(p) };
  assert.equal(await h.d.identityOf("t", 0), "cluster/old");
  assert.equal(await h.d.identityOf("t", 1), "cluster/now-new", "a partition not looked at yet");
  readAs.set(0, "new");
  assert.equal(await h.d.identityOf("t", 0), "cluster/new", "read afresh as the new topic");
  assert.equal(await h.d.identityOf("t", 0), "cluster/new");
  assert.deepEqual(asked, ["t old", "t ?", "t new"], "asked once per topic id");
  h.d.close();
});

test("review 13 F2: a record admitted at one Pulsar topic does not hold its partition's next record to another topic back while its receipt is out; a record a node after pulsar-out holds (a join) holds nothing back; one not yet admitted does", async () => {
  // kafka-in → pulsar-out "out" (effectively-once, a topic per record) → join "j" (inert: leads to no sink)
  const reach = (id: string): Reach => (id === "out" ? "sink" : id === "j" ? "inert" : "opaque");
  const topics = ["persistent://public/default/a", "persistent://public/default/b"];
  const run = async (withReach: boolean) => {
    const h = harness({ ordered: true, reach: withReach ? reach : undefined });
    const eo = new EffectivelyOncePublisher({
      nodeId: "out",
      findSource: () => h.d,
      closeProducers: () => [],
    });
    for (let o = 0; o < 7; o++) h.record(0, o);
    await tick();
    const order: string[] = [];
    const admit = (o: number) =>
      eo.prepare(h.find(0, o), topics[o % 2]).then((p) => {
        if (p !== "stale") order.push(p.offset);
      });
    const pending = [admit(0), admit(1), admit(2), admit(3)];
    await Promise.race([Promise.all(pending), wait(200)]);
    return { h, eo, order, admit, pending };
  };
  // without knowing the flow's shape, each record waits for the receipt of the one before it on the other topic
  const blind = await run(false);
  assert.deepEqual(blind.order, ["0"]);
  for (let o = 0; o < 4; o++) blind.h.done(blind.h.find(0, o));
  await Promise.all(blind.pending);
  blind.eo.close();
  blind.h.d.close();

  const { h, eo, order, admit } = await run(true);
  assert.deepEqual(order, ["0", "1", "2", "3"], "all four go out at once, receipts outstanding");
  // 0's receipt: pulsar-out passes it on to the join, which keeps it; 4 goes at once all the same
  h.d.delivered(h.find(0, 0)._msgid, "out", "j");
  h.done(h.find(0, 0));
  await admit(4);
  // 6 (topic a) waits while 5 is at pulsar-out and not yet admitted (it may go to topic a yet)
  const six = admit(6);
  await wait(50);
  assert.deepEqual(order, ["0", "1", "2", "3", "4"]);
  await admit(5);
  await six;
  assert.deepEqual(order, ["0", "1", "2", "3", "4", "5", "6"]);
  // nothing commits past 0 while the join holds it, and everything once all is done
  for (let o = 1; o < 7; o++) h.done(h.find(0, o));
  await tick();
  assert.equal(h.ledger.takeCommittable("t", 0), undefined, "0 is still held by the join");
  h.d.completed(h.find(0, 0)._msgid, "j");
  await tick();
  assert.equal(h.ledger.takeCommittable("t", 0), "7");
  eo.close();
  h.d.close();
});

test("issue 14 review S1: the partitions the group assigned are told to onAssigned listeners, and told revoked when they go, also those no record of which came (a window node restored them)", () => {
  const { d, record } = harness({ ordered: true });
  const assigned: string[][] = [];
  const revoked: string[] = [];
  d.onAssignment([
    { topic: "t", partition: 0 },
    { topic: "t", partition: 1 },
  ]);
  const stopAssigned = d.onAssigned((list) => assigned.push(list.map((a) => `${a.topic}/${a.partition}`)));
  d.onRevoked((list, closing) =>
    revoked.push(...list.map((a) => `${a.topic}/${a.partition}${closing ? " closing" : ""}`)),
  );
  assert.deepEqual(assigned, [["t/0", "t/1"]], "a listener that comes late is told the current assignment");
  record(0, 0);
  // partition 1 goes: no record of it came
  d.onAssignment([{ topic: "t", partition: 0 }]);
  assert.ok(revoked.includes("t/1"), `told revoked: ${revoked.join(", ")}`);
  assert.deepEqual(assigned.at(-1), ["t/0"]);
  stopAssigned();
  d.onAssignment([
    { topic: "t", partition: 0 },
    { topic: "t", partition: 2 },
  ]);
  assert.equal(assigned.length, 2, "a listener that stopped is told nothing more");
  revoked.length = 0;
  d.close();
  assert.deepEqual(revoked.sort(), ["t/0 closing", "t/2 closing"]);
});
