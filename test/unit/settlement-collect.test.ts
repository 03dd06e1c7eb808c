// The settlement tracker and nodes that send later what they made of msgs they finished without a send
// (SettlementOptions.collects: core trigger's second msg, core csv's rows of a sequence in one msg). Hook
// calls in the order Node-RED makes them (preDeliver on send, onComplete on done).
import assert from "node:assert/strict";
import { test } from "node:test";
import { SettlementTracker, type Collector } from "../../src/bridge/settlement";

type Msg = { _msgid: string; topic?: string; reset?: boolean; parts?: { index: number; count: number } };

/** A trigger by topic: kept per msg.topic, a reset msg gives its topic's pool up. */
const trigger: Collector = {
  finished: (m) => {
    const msg = m as Msg;
    return msg.reset ? { drop: msg.topic ?? "" } : { keep: msg.topic ?? "" };
  },
  takenBy: (m) => (m as Msg).topic ?? "",
};

/** A csv putting a sequence's rows in one msg: the last part closes. */
const csv: Collector = {
  closes: (m) => {
    const p = (m as Msg).parts;
    return p !== undefined && p.index + 1 === p.count;
  },
  finished: (m, closing) => (closing ? { drop: "" } : (m as Msg).parts ? { keep: "" } : undefined),
  takenBy: (_m, closing) => (closing ? "" : undefined),
};

function tracker(now = () => 0) {
  const settled: string[] = [];
  const failed: { r: string; cause: string; error: unknown }[] = [];
  let deferred: (() => void)[] = [];
  const t = new SettlementTracker<string>(
    {
      settled: (r) => settled.push(r),
      failed: (r, error, cause) => failed.push({ r, cause, error }),
    },
    {
      defer: (fn) => deferred.push(fn),
      now,
      collects: (id) => (id === "trig" ? trigger : id === "csv" ? csv : undefined),
    },
  );
  const endTurn = () => {
    const d = deferred;
    deferred = [];
    for (const fn of d) fn();
  };
  /** The source sends msg `id` (record `r`) to `to`, which gets it in a turn of its own. */
  const emit = (msg: Msg, r: string, to: string) => {
    t.track(msg._msgid, r);
    t.delivered(msg._msgid, "in", to, msg);
    endTurn();
  };
  return { t, settled, failed, endTurn, emit };
}

test("collect: a trigger's msgs finished without a send wait for its delayed msg, which holds them till it settles", () => {
  const { t, settled, endTurn, emit } = tracker();
  const m1: Msg = { _msgid: "m1", topic: "a" };
  const m2: Msg = { _msgid: "m2", topic: "a" };
  for (const [m, r] of [
    [m1, "r1"],
    [m2, "r2"],
  ] as const) {
    emit(m, r, "trig");
    t.completed(m._msgid, "trig", undefined, m);
    endTurn();
  }
  assert.deepEqual(settled, [], "finished without a send, but the trigger sends them later");
  // the timer: the latest msg (a clone, same id) goes out
  const late: Msg = { _msgid: "m2", topic: "a" };
  t.delivered("m2", "trig", "out", late);
  endTurn();
  assert.deepEqual(settled, []);
  t.completed("m2", "out", undefined, late);
  endTurn();
  assert.deepEqual(settled.sort(), ["r1", "r2"]);
  assert.equal(t.records, 0);
  assert.equal(t.size, 0, "the pool is gone with the msg that took it");
});

test("collect: pools are kept per key: a topic's delayed msg takes its own topic's records only", () => {
  const { t, settled, endTurn, emit } = tracker();
  const a: Msg = { _msgid: "a1", topic: "a" };
  const b: Msg = { _msgid: "b1", topic: "b" };
  emit(a, "ra", "trig");
  t.completed("a1", "trig", undefined, a);
  emit(b, "rb", "trig");
  t.completed("b1", "trig", undefined, b);
  endTurn();
  const outB: Msg = { _msgid: "b1", topic: "b" };
  t.delivered("b1", "trig", "out", outB);
  endTurn();
  t.completed("b1", "out", undefined, outB);
  endTurn();
  assert.deepEqual(settled, ["rb"], "topic a's record waits for topic a's msg");
  const outA: Msg = { _msgid: "a1", topic: "a" };
  t.delivered("a1", "trig", "out", outA);
  t.completed("a1", "out", undefined, outA);
  endTurn();
  assert.deepEqual(settled, ["rb", "ra"]);
});

test("collect: a reset drops its topic's pool (the trigger never sends it); an error in Pulsar fails the pooled records", () => {
  const { t, settled, failed, endTurn, emit } = tracker();
  const m1: Msg = { _msgid: "m1", topic: "a" };
  emit(m1, "r1", "trig");
  t.completed("m1", "trig", undefined, m1);
  endTurn();
  const reset: Msg = { _msgid: "m2", topic: "a", reset: true };
  emit(reset, "r2", "trig");
  t.completed("m2", "trig", undefined, reset);
  endTurn();
  assert.deepEqual(settled.sort(), ["r1", "r2"]);

  const m3: Msg = { _msgid: "m3", topic: "a" };
  emit(m3, "r3", "trig");
  t.completed("m3", "trig", undefined, m3);
  endTurn();
  const out: Msg = { _msgid: "m3", topic: "a" };
  t.delivered("m3", "trig", "out", out);
  t.completed("m3", "out", new Error("pulsar refused"), out);
  endTurn();
  assert.deepEqual(
    failed.map((f) => f.r),
    ["r3"],
  );
});

test("collect: csv's parts wait for the msg its last part makes; a msg outside the sequence does not take them", () => {
  const { t, settled, endTurn, emit } = tracker();
  const parts: Msg[] = [0, 1, 2].map((i) => ({ _msgid: `p${i}`, parts: { index: i, count: 3 } }));
  emit(parts[0], "r0", "csv");
  t.completed("p0", "csv", undefined, parts[0]);
  endTurn();
  emit(parts[1], "r1", "csv");
  t.completed("p1", "csv", undefined, parts[1]);
  endTurn();
  // a msg that is no part passes through meanwhile
  const plain: Msg = { _msgid: "x", topic: "plain" };
  emit(plain, "rx", "csv");
  t.delivered("x", "csv", "out", plain);
  t.completed("x", "csv", undefined, plain);
  endTurn();
  t.completed("x", "out", undefined, plain);
  endTurn();
  assert.deepEqual(settled, ["rx"], "the parts are not in the msg that went by");
  // the last part: csv sends the rows in one msg (the same msg object, its parts deleted)
  emit(parts[2], "r2", "csv");
  delete parts[2].parts;
  t.delivered("p2", "csv", "out", parts[2]);
  t.completed("p2", "csv", undefined, parts[2]);
  endTurn();
  assert.deepEqual(settled, ["rx"]);
  t.completed("p2", "out", undefined, parts[2]);
  endTurn();
  assert.deepEqual(settled.sort(), ["r0", "r1", "r2", "rx"]);
  assert.equal(t.size, 0);
});

test("collect: csv's last part sent to nowhere gives the sequence up (the flow has no branch for it)", () => {
  const { t, settled, endTurn, emit } = tracker();
  const parts: Msg[] = [0, 1].map((i) => ({ _msgid: `p${i}`, parts: { index: i, count: 2 } }));
  emit(parts[0], "r0", "csv");
  t.completed("p0", "csv", undefined, parts[0]);
  endTurn();
  emit(parts[1], "r1", "csv");
  delete parts[1].parts;
  t.completed("p1", "csv", undefined, parts[1]);
  endTurn();
  assert.deepEqual(settled.sort(), ["r0", "r1"]);
  assert.equal(t.size, 0);
});

test("collect: a deploy that stops the collecting node interrupts what it kept; the deadline names it", () => {
  let now = 0;
  const { t, failed, endTurn, emit } = tracker(() => now);
  const m1: Msg = { _msgid: "m1", topic: "a" };
  emit(m1, "r1", "trig");
  t.completed("m1", "trig", undefined, m1);
  endTurn();
  now = 10_000;
  let holders: string[] = [];
  assert.equal(
    t.expire(5_000, (h) => {
      holders = h;
      return new Error("expired");
    }),
    1,
  );
  assert.deepEqual(holders, ["trig"]);

  const m2: Msg = { _msgid: "m2", topic: "a" };
  emit(m2, "r2", "trig");
  t.completed("m2", "trig", undefined, m2);
  endTurn();
  t.setStopping((id) => id === "trig");
  t.setStopping(undefined);
  assert.deepEqual(
    failed.map((f) => [f.r, f.cause]),
    [
      ["r1", "expired"],
      ["r2", "interrupted"],
    ],
  );
  assert.equal(t.records, 0);
});
