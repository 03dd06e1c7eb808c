// The bridge's pure logic: offsets, settlement, msg ids, topics, effectively-once naming (the msg mapping: mapping.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { OffsetLedger } from "../../src/bridge/offsets";
import { msgIdSource } from "../../src/bridge/record-to-msg";
import { TopicResolver } from "../../src/bridge/topic";
import { OrderedGate, producerNameFor } from "../../src/bridge/effectively-once";
import { parseTopics } from "../../src/nodes/kafka-in";
import { BridgeError, failureScope } from "../../src/common/errors";

test("offsets: the commit point never passes an unsettled record, whatever the settle order", () => {
  for (let round = 0; round < 200; round++) {
    const ledger = new OffsetLedger();
    const start = Math.floor(Math.random() * 1000);
    const n = 1 + Math.floor(Math.random() * 200);
    for (let i = 0; i < n; i++) ledger.add("t", 0, String(start + i));
    const order = Array.from({ length: n }, (_, i) => start + i).sort(() => Math.random() - 0.5);
    const settled = new Set<number>();
    let lastCommit = start;
    for (const o of order) {
      ledger.settle("t", 0, String(o));
      settled.add(o);
      const c = ledger.takeCommittable("t", 0);
      let expected = start;
      while (settled.has(expected)) expected++;
      if (c !== undefined) {
        assert.equal(Number(c), expected, "commit point is the first unsettled offset");
        assert.ok(Number(c) > lastCommit);
        lastCommit = Number(c);
      } else assert.equal(expected, lastCommit);
    }
    assert.equal(lastCommit, start + n);
    assert.equal(ledger.inFlight, 0);
  }
});

test("offsets: gaps in offsets (compaction, transactions) commit past the highest added; partitions are independent", () => {
  const ledger = new OffsetLedger();
  ledger.add("t", 0, "10");
  ledger.add("t", 0, "15");
  ledger.add("t", 1, "3");
  assert.equal(ledger.inFlight, 3);
  ledger.settle("t", 0, "15");
  assert.equal(ledger.takeCommittable("t", 0), undefined);
  ledger.settle("t", 0, "10");
  assert.equal(ledger.takeCommittable("t", 0), "16");
  assert.deepEqual(ledger.dirty(), []);
  ledger.retain([{ topic: "t", partition: 0 }]);
  assert.equal(ledger.inFlight, 0, "revoked partition forgotten");
  ledger.add("t", 2, "9007199254740993");
  ledger.settle("t", 2, "9007199254740993");
  assert.equal(ledger.takeCommittable("t", 2), "9007199254740994", "offsets beyond 2^53 stay exact");
});

test("offsets: a refused commit is handed out again; a confirmed one is not", () => {
  const ledger = new OffsetLedger();
  for (const o of ["0", "1", "2"]) ledger.add("t", 0, o);
  for (const o of ["0", "1", "2"]) ledger.settle("t", 0, o);
  assert.equal(ledger.takeCommittable("t", 0), "3");
  assert.deepEqual(ledger.dirty(), []);
  ledger.commitFailed("t", 0, "3");
  assert.deepEqual(ledger.dirty(), [{ topic: "t", partition: 0 }], "dirty again after a refused commit");
  assert.equal(ledger.takeCommittable("t", 0), "3");
  ledger.commitConfirmed("t", 0, "3");
  ledger.commitFailed("t", 0, "2"); // a stale failure report changes nothing
  assert.deepEqual(ledger.dirty(), []);
});

test("offsets: a commit made before the partition was restarted (a recreated topic read from 0) leaves the new bookkeeping alone when it is confirmed or refused", () => {
  const ledger = new OffsetLedger();
  for (const o of ["0", "1", "2", "3", "4"]) ledger.add("t", 0, o);
  for (const o of ["0", "1", "2", "3", "4"]) ledger.settle("t", 0, o);
  const token = ledger.token("t", 0);
  assert.equal(ledger.takeCommittable("t", 0), "5");
  ledger.restart("t", 0);
  ledger.add("t", 0, "0");
  ledger.add("t", 0, "1");
  ledger.settle("t", 0, "0");
  ledger.commitConfirmed("t", 0, "5", token);
  assert.equal(ledger.takeCommittable("t", 0), "1");
  ledger.commitFailed("t", 0, "1");
  ledger.settle("t", 0, "1");
  assert.equal(ledger.takeCommittable("t", 0), "2", "not held back to the old topic's 5");
  ledger.commitFailed("t", 0, "2", token);
  assert.deepEqual(ledger.dirty(), [], "a stale refusal does not make it dirty");
});

test("offsets: a rewind (Kafka delivers again from an earlier offset) starts the partition afresh", () => {
  const ledger = new OffsetLedger();
  for (let o = 10; o < 20; o++) ledger.add("t", 0, String(o));
  for (let o = 10; o < 20; o++) ledger.settle("t", 0, String(o));
  assert.equal(ledger.takeCommittable("t", 0), "20");
  ledger.commitFailed("t", 0, "20");
  // the consumer restarts from the last confirmed commit (10) and delivers 10.. again
  ledger.add("t", 0, "10");
  ledger.add("t", 0, "11");
  assert.equal(ledger.inFlight, 2);
  assert.equal(ledger.takeCommittable("t", 0), undefined, "nothing settled since the rewind");
  ledger.settle("t", 0, "10");
  assert.equal(ledger.takeCommittable("t", 0), "11", "never past the unsettled 11");
  ledger.settle("t", 0, "11");
  for (let o = 12; o < 20; o++) {
    ledger.add("t", 0, String(o));
    ledger.settle("t", 0, String(o));
  }
  assert.equal(ledger.takeCommittable("t", 0), "20", "the redelivered records commit");
  assert.equal(ledger.inFlight, 0);
});

test("offsets: order across digit counts (9 -> 10, 99 -> 100) is no rewind; a rewind across them is one", () => {
  const ledger = new OffsetLedger();
  for (let o = 95; o < 105; o++) ledger.add("t", 0, String(o));
  assert.equal(ledger.inFlight, 10, "100.. after 99 continues the partition");
  for (let o = 95; o < 105; o++) ledger.settle("t", 0, String(o));
  assert.equal(ledger.takeCommittable("t", 0), "105");
  ledger.add("t", 0, "98");
  assert.equal(ledger.inFlight, 1, "98 after 104 is a rewind");
  assert.equal(ledger.isUnsettled("t", 0, "98"), true);
  ledger.settle("t", 0, "98");
  ledger.add("t", 0, "99");
  ledger.add("t", 0, "100");
  ledger.settle("t", 0, "100");
  assert.equal(ledger.takeCommittable("t", 0), "99", "the rewind restarted at 98; 99 is unsettled");
  ledger.settle("t", 0, "99");
  assert.equal(ledger.takeCommittable("t", 0), "101");
  ledger.retain([]);
  assert.equal(ledger.isUnsettled("t", 0, "99"), false, "revoked: forgotten");
  ledger.add("t", 0, "7");
  assert.equal(ledger.takeCommittable("t", 0), undefined, "a partition assigned again starts afresh");
  ledger.settle("t", 0, "7");
  assert.equal(ledger.takeCommittable("t", 0), "8");
});

test("msg ids: 16 hex digits like Node-RED's, distinct across pool refills and sources", () => {
  const seen = new Set<string>();
  for (const next of [msgIdSource(), msgIdSource()])
    for (let i = 0; i < 5000; i++) {
      const id = next();
      assert.match(id, /^[0-9a-f]{16}$/);
      seen.add(id);
    }
  assert.equal(seen.size, 10_000);
});

test("topics: fixed, template without HTML escaping, msg.topic, and invalid results", () => {
  assert.equal(new TopicResolver("orders", "str").resolve({}), "persistent://public/default/orders");
  const tpl = new TopicResolver("persistent://public/default/{{kafka.topic}}-x", "str");
  assert.equal(
    tpl.resolve({ kafka: { topic: "a&b" } }),
    "persistent://public/default/a&b-x",
    "no HTML escaping",
  );
  assert.throws(
    () => new TopicResolver("persistent://public/default/{{kafka.topic}}", "str").resolve({}),
    (e: unknown) =>
      e instanceof BridgeError &&
      e.key === "pulsar-out.errors.invalid-topic" &&
      /rendered from/.test(e.message),
  );
  assert.throws(
    () => new TopicResolver("{{#unclosed}}", "str"),
    (e: unknown) => e instanceof BridgeError && e.key === "pulsar-out.errors.template",
  );
  assert.throws(() => new TopicResolver("a/b/c/d", "str"), /not a valid Pulsar topic/);
  const fromMsg = new TopicResolver("", "msg");
  assert.equal(fromMsg.resolve({ topic: "t/n/x" }), "persistent://t/n/x");
  assert.throws(() => fromMsg.resolve({}), /msg.topic is not set/);
  assert.throws(() => fromMsg.resolve({ topic: "bad topic" }), /not a valid Pulsar topic/);
});

test("effectively-once: stable, distinct producer names; the ordered gate refuses split records, fences a failed pass until its replay, drops stale msgs", () => {
  const a = producerNameFor(
    { cluster: "k:9092", topic: "orders", partition: 0 },
    "persistent://public/default/o",
  );
  assert.equal(
    a,
    producerNameFor({ cluster: "k:9092", topic: "orders", partition: 0 }, "persistent://public/default/o"),
  );
  const names = new Set<string>();
  for (let p = 0; p < 100; p++)
    names.add(
      producerNameFor({ cluster: "k:9092", topic: "orders", partition: p }, "persistent://public/default/o"),
    );
  names.add(
    producerNameFor(
      { cluster: "other:9092", topic: "orders", partition: 0 },
      "persistent://public/default/o",
    ),
  );
  names.add(
    producerNameFor({ cluster: "k:9092", topic: "orders", partition: 0 }, "persistent://public/default/p"),
  );
  // two pulsar-out nodes writing one topic: a producer each (they would fight over one name)
  names.add(
    producerNameFor(
      { cluster: "k:9092", topic: "orders", partition: 0 },
      "persistent://public/default/o",
      "out2",
    ),
  );
  assert.equal(names.size, 103);
  // The ordered gate: one stream per producer name; a split record is refused.
  const gate = new OrderedGate();
  assert.equal(gate.admit(a, "5", 1, 1, 1), "send");
  assert.equal(gate.admit(a, "6", 1, 1, 1), "send");
  assert.throws(
    () => gate.admit(a, "6", 1, 1, 1),
    (e: unknown) => e instanceof BridgeError && e.key === "pulsar-out.errors.split-record",
  );
  // the last record again on a later try is sent: Pulsar's receipt decides
  assert.equal(gate.admit(a, "6", 2, 1, 1), "send");
  // a lower offset after a higher one of the pass is refused (Pulsar would drop it), never sent
  assert.throws(
    () => gate.admit(a, "5", 2, 1, 1),
    (e: unknown) =>
      e instanceof BridgeError && e.key === "pulsar-out.errors.out-of-order" && failureScope(e) === "record",
  );
  // without a pass (msg.kafka not from a replaying kafka-in) it is sent: the receipt decides
  const b = producerNameFor(
    { cluster: "k:9092", topic: "other", partition: 0 },
    "persistent://public/default/p",
  );
  assert.equal(gate.admit(b, "6", 1, undefined, undefined), "send");
  assert.equal(gate.admit(b, "5", 1, undefined, undefined), "send");
  // A failed send fences the epoch: nothing later of it is sent until kafka-in's replay (a new epoch).
  gate.failed(a, "7", 1);
  gate.failed(a, "9", 1); // the lowest failure is the fence
  for (const o of ["8", "10", "7"])
    assert.throws(
      () => gate.admit(a, o, 1, 1, 1),
      (e: unknown) => e instanceof BridgeError && e.key === "pulsar-out.errors.replaying" && e.retriable,
    );
  assert.equal(failureScope(new BridgeError("pulsar-out.errors.replaying", "x", true)), "transient");
  // the replay starts the stream afresh, from a lower offset too
  assert.equal(gate.admit(a, "5", 3, 2, 2), "send");
  assert.equal(gate.admit(a, "7", 3, 2, 2), "send");
  // a msg of the discarded pass still in the flow is stale, whether the gate or kafka-in says so
  assert.equal(gate.admit(a, "8", 1, 1, 2), "stale");
  assert.equal(gate.admit("b", "8", 1, 1, 2), "stale");
  assert.equal(gate.admit(a, "9", 3, 2, undefined), "send");
  // a failure reported for an older epoch changes nothing
  gate.failed(a, "9", 1);
  assert.equal(gate.admit(a, "10", 3, 2, 2), "send");
  // A source without replay (no epoch) reopens the stream with its retry of the failed record; such a msg
  // is never stale (it may have been emitted before kafka-in learnt it must replay).
  const plain = new OrderedGate();
  plain.admit(a, "20", 1, undefined, undefined);
  plain.admit(a, "21", 1, undefined, 7);
  plain.failed(a, "21", undefined);
  assert.throws(() => plain.admit(a, "22", 1, undefined, undefined), /waits for the replay/);
  assert.equal(plain.admit(a, "21", 2, undefined, undefined), "send");
  assert.equal(plain.admit(a, "22", 1, undefined, 9), "send");
  assert.equal(plain.admit("another-partition", "5", 1, undefined, undefined), "send"); // streams are independent
});

test("kafka-in topics: a list or one /regex/, bad names refused", () => {
  assert.deepEqual(parseTopics(" a, b.c ,d-e "), ["a", "b.c", "d-e"]);
  const [re] = parseTopics("/^sensors-.*/");
  assert.ok(re instanceof RegExp && re.test("sensors-1"));
  assert.throws(() => parseTopics(""), /no Kafka topic/);
  assert.throws(() => parseTopics("a b"), /not a valid Kafka topic/);
  assert.throws(() => parseTopics("/(/"), /invalid topic pattern/);
});

test("offsets: openBetween passes over passive offsets until they settle, and a rewind forgets the marks", () => {
  const ledger = new OffsetLedger();
  for (let o = 0; o < 5; o++) ledger.add("t", 0, String(o));
  assert.equal(ledger.openBetween("t", 0, "0", "4"), true, "1, 2 and 3 are open");
  for (const o of ["1", "2", "3"]) ledger.setPassive("t", 0, o, true);
  assert.equal(ledger.openBetween("t", 0, "0", "4"), false, "only passive offsets between");
  assert.equal(ledger.openBetween("t", 0, undefined, "4"), true, "0 is open and not passive");
  ledger.setPassive("t", 0, "2", false);
  assert.equal(ledger.openBetween("t", 0, "0", "4"), true, "2 is active again");
  assert.equal(ledger.openBetween("t", 0, "0", "4", new Set(["2"])), false, "except still counts");
  ledger.setPassive("t", 0, "9", true); // not open: no mark
  ledger.add("t", 0, "9");
  assert.equal(ledger.openBetween("t", 0, "4", "10"), true, "9 was never marked");
  ledger.settle("t", 0, "3");
  ledger.add("t", 0, "3"); // a rewind to 3
  ledger.add("t", 0, "4");
  assert.equal(ledger.openBetween("t", 0, undefined, "4"), true, "the rewind's 3 is open, not passive");
  ledger.setPassive("t", 0, "3", true);
  ledger.clearPassive();
  assert.equal(ledger.openBetween("t", 0, undefined, "4"), true, "clearPassive forgets the mark");
});
