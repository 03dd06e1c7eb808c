// The settlement tracker against the shapes of Node-RED flows: chains, fan-out, drops, disabled nodes,
// join and batch (N->1), split (1->N) then join, errors, deploys that stop nodes, deadlines, revokes.
// Hook calls are made in the order Node-RED's runtime makes them (preDeliver on send, onComplete on done).
import assert from "node:assert/strict";
import { test } from "node:test";
import { LEGACY_IDLE_MS, SettlementTracker } from "../../src/bridge/settlement";
import { FailurePolicy, FREE_RETRIES } from "../../src/bridge/failure-policy";
import { stoppingPredicate } from "../../src/nodes/deploy-watch";
import { BridgeError, ConfigurationError, failureScope } from "../../src/common/errors";
import {
  AlreadyClosedError,
  AuthorizationError,
  MessageTooBigError,
  TimeoutError,
  TopicNotFoundError,
} from "../../src/pulsar/errors";

function tracker(now = () => 0) {
  const settled: string[] = [];
  const failed: { r: string; cause: string; error: unknown }[] = [];
  let deferred: (() => void)[] = [];
  const t = new SettlementTracker<string>(
    {
      settled: (r) => settled.push(r),
      failed: (r, error, cause) => failed.push({ r, cause, error }),
    },
    { defer: (fn) => deferred.push(fn), now, groups: (id) => id === "join" },
  );
  /** The end of the turn (Node-RED's synchronous run): what the microtask would do. */
  const endTurn = () => {
    const d = deferred;
    deferred = [];
    for (const fn of d) fn();
  };
  return { t, settled, failed, endTurn };
}

test("settlement: a chain settles when the last node finishes; drops settle; fan-out waits for every branch", () => {
  const { t, settled, endTurn } = tracker();
  // in -> fn -> out
  t.track("m1", "r1");
  t.delivered("m1", "in", "fn");
  endTurn();
  t.delivered("m1", "fn", "out");
  t.completed("m1", "fn");
  endTurn();
  assert.deepEqual(settled, []);
  t.completed("m1", "out");
  endTurn();
  assert.deepEqual(settled, ["r1"]);

  // a filter drops: it finishes without sending
  t.track("m2", "r2");
  t.delivered("m2", "in", "filter");
  endTurn();
  t.completed("m2", "filter");
  assert.deepEqual(settled, ["r1"], "decided at the end of the turn, not before");
  endTurn();
  assert.deepEqual(settled, ["r1", "r2"]);

  // two branches
  t.track("m3", "r3");
  t.delivered("m3", "in", "a");
  t.delivered("m3", "in", "b");
  endTurn();
  t.completed("m3", "a");
  endTurn();
  assert.equal(settled.length, 2);
  t.completed("m3", "b");
  endTurn();
  assert.deepEqual(settled.slice(2), ["r3"]);
  assert.equal(t.size, 0);
  assert.equal(t.records, 0);
});

test("settlement: one msg held by several nodes at once, and by one node several times", () => {
  const { t, settled, failed, endTurn } = tracker();
  t.track("m", "r");
  t.delivered("m", "in", "a");
  t.delivered("m", "a", "a"); // a loop back to a: a holds it twice
  t.completed("m", "a");
  endTurn();
  assert.deepEqual(settled, [], "a still holds one delivery");
  t.delivered("m", "a", "b"); // a sends it on to b and c before it is done
  t.delivered("m", "a", "c");
  t.completed("m", "c");
  t.completed("m", "c"); // a second done() from c closes nothing
  t.completed("m", "a");
  endTurn();
  assert.deepEqual(settled, [], "b is still working");
  t.delivered("m", "b", "a");
  t.completed("m", "b");
  endTurn();
  assert.deepEqual(settled, [], "a got it again");
  t.completed("m", "a");
  endTurn();
  assert.deepEqual(settled, ["r"]);
  t.completed("m", "a");
  endTurn();
  assert.deepEqual(settled, ["r"], "nothing after settling");
  assert.deepEqual(failed, []);
  assert.equal(t.size, 0);
});

test("settlement: a wire to a disabled or missing node opens nothing (no preDeliver), so it cannot stall", () => {
  const { t, settled, endTurn } = tracker();
  // fn is wired to out and to a disabled debug node: Node-RED raises preDeliver for out only
  t.track("m", "r");
  t.delivered("m", "in", "fn");
  endTurn();
  t.delivered("m", "fn", "out");
  t.completed("m", "fn");
  endTurn();
  t.completed("m", "out");
  endTurn();
  assert.deepEqual(settled, ["r"]);
  // a kafka-in wired only to a disabled node: no delivery at all, settled at the end of the turn
  t.track("m2", "r2");
  endTurn();
  assert.deepEqual(settled, ["r", "r2"]);
});

test("settlement: core join keeps every part open until the merged msg settles downstream", () => {
  const { t, settled, failed, endTurn } = tracker();
  for (let i = 1; i <= 5; i++) {
    t.track(`m${i}`, `r${i}`);
    t.delivered(`m${i}`, "in", "join");
    endTurn();
  }
  // the 5th part completes the group: join sends the merged msg (it carries the last part's id),
  // then calls every part's done(), in one synchronous run
  t.delivered("m5", "join", "out");
  for (let i = 1; i <= 5; i++) t.completed(`m${i}`, "join");
  endTurn();
  assert.deepEqual(settled, [], "nothing settles before pulsar-out finished the merged msg");
  t.completed("m5", "out", new Error("pulsar is down"));
  endTurn();
  assert.deepEqual(failed.map((f) => f.r).sort(), ["r1", "r2", "r3", "r4", "r5"], "every part fails with it");
  assert.equal(t.records, 0);

  // and on success, every part settles
  const second = tracker();
  for (let i = 1; i <= 3; i++) {
    second.t.track(`m${i}`, `r${i}`);
    second.t.delivered(`m${i}`, "in", "join");
    second.endTurn();
  }
  second.t.delivered("m3", "join", "out");
  for (let i = 1; i <= 3; i++) second.t.completed(`m${i}`, "join");
  second.endTurn();
  second.t.completed("m3", "out");
  second.endTurn();
  assert.deepEqual(second.settled.sort(), ["r1", "r2", "r3"]);
});

test("settlement: a join (or sort, or batch) that fails its group calls done() for every part and done(error) for the last, sending nothing: every part fails, none is taken for a drop", () => {
  const { t, settled, failed, endTurn } = tracker();
  for (let i = 1; i <= 3; i++) {
    t.track(`m${i}`, `r${i}`);
    t.delivered(`m${i}`, "in", "join");
    endTurn();
  }
  // core join, reduce mode, the expression failed on the group: 17-split.js calls done() for the first
  // parts and done(err) for the last in one synchronous run
  t.completed("m1", "join");
  t.completed("m2", "join");
  t.completed("m3", "join", new Error("reduce: $number of abc"));
  endTurn();
  assert.deepEqual(settled, [], "not one part committed: none reached Pulsar");
  assert.deepEqual(
    failed.map((f) => `${f.r} ${String(f.error)}`).sort(),
    ["r1", "r2", "r3"].map((r) => `${r} Error: reduce: $number of abc`),
  );
  // a later turn of the same node: a drop is a drop again
  t.track("m4", "r4");
  t.delivered("m4", "in", "join");
  endTurn();
  t.completed("m4", "join");
  endTurn();
  assert.deepEqual(settled, ["r4"]);
});

test("settlement: what a node held when a deploy stopped it and never finished (a function whose close cleared its timer) is interrupted once the flows started again; what the new instance gets is not", () => {
  const { t, settled, failed, endTurn } = tracker();
  t.track("m1", "r1");
  t.delivered("m1", "in", "fn");
  endTurn();
  t.track("m2", "r2");
  t.delivered("m2", "in", "other");
  endTurn();
  t.setStopping((id) => id === "fn");
  // the old instance is closed: its setTimeout (send + done) never runs
  t.setStopping(undefined);
  assert.deepEqual(
    failed.map((f) => `${f.r} ${f.cause}`),
    ["r1 interrupted"],
  );
  t.track("m3", "r3");
  t.delivered("m3", "in", "fn");
  endTurn();
  t.setStopping((id) => id === "nothing-held");
  t.setStopping(undefined);
  t.completed("m3", "fn");
  t.completed("m2", "other");
  endTurn();
  assert.deepEqual(settled.sort(), ["r2", "r3"]);
  assert.equal(failed.length, 1);
});

test("settlement: a merging node that builds a fresh msg (new id) hands over every record it holds", () => {
  const { t, settled, endTurn } = tracker();
  t.track("a", "ra");
  t.delivered("a", "in", "agg");
  endTurn();
  t.track("b", "rb");
  t.delivered("b", "in", "agg");
  endTurn();
  // agg sends a new msg "x" while it still holds a and b, then finishes both
  t.delivered("x", "agg", "out");
  t.completed("a", "agg");
  t.completed("b", "agg");
  endTurn();
  assert.deepEqual(settled, []);
  t.completed("x", "out");
  endTurn();
  assert.deepEqual(settled.sort(), ["ra", "rb"]);
});

test("review 26: a node without done callback that merges two msgs into a fresh one: neither record settles before the fresh msg does, however long the node is idle", async () => {
  const { t, settled, endTurn } = tracker(Date.now);
  t.track("a", "ra");
  t.delivered("a", "in", "agg");
  endTurn();
  t.received("a", "agg");
  endTurn();
  t.track("b", "rb");
  t.delivered("b", "in", "agg");
  endTurn();
  // b's handler sends the merged msg, then returns
  t.delivered("x", "agg", "out");
  t.received("b", "agg");
  endTurn();
  await new Promise((r) => setTimeout(r, LEGACY_IDLE_MS + 300));
  endTurn();
  assert.deepEqual(settled, [], "the merged msg holds both");
  t.completed("x", "out");
  endTurn();
  assert.deepEqual(settled.sort(), ["ra", "rb"]);
});

test("settlement: a source of its own (the window node) settles what it holds itself: its fresh msgs hold none of it", () => {
  const settled: string[] = [];
  let deferred: (() => void)[] = [];
  const t = new SettlementTracker<string>(
    { settled: (r) => settled.push(r), failed: () => undefined },
    { defer: (fn) => deferred.push(fn), independent: (id) => id === "window" },
  );
  const endTurn = () => {
    const d = deferred;
    deferred = [];
    for (const fn of d) fn();
  };
  t.track("a", "ra");
  t.delivered("a", "in", "window");
  t.track("b", "rb");
  t.delivered("b", "in", "window");
  endTurn();
  // the window sends a result (a fresh msg) while it holds a and b, and finishes a in the same turn
  t.delivered("result", "window", "out");
  t.completed("a", "window");
  endTurn();
  assert.deepEqual(settled, ["ra"], "a settles when the window is done with it, not when the result is");
  assert.equal(t.has("result"), false, "the result is not tracked as holding records");
  // a msg it passes on as it is (a late record to its second output) is followed as usual
  t.delivered("b", "window", "late-out");
  t.completed("b", "window");
  endTurn();
  assert.deepEqual(settled, ["ra"]);
  t.completed("b", "late-out");
  endTurn();
  assert.deepEqual(settled, ["ra", "rb"]);
  // a late record sent in the turn the window finishes others (a checkpoint's done()s): they are not
  // handed to the late msg, and do not wait for (or fail with) the late branch
  t.track("c", "rc");
  t.delivered("c", "in", "window");
  t.track("d", "rd");
  t.delivered("d", "in", "window");
  endTurn();
  t.completed("c", "window");
  t.delivered("d", "window", "late-out");
  t.completed("d", "window");
  endTurn();
  assert.deepEqual(settled, ["ra", "rb", "rc"], "c settles with its checkpoint");
  t.completed("d", "late-out", new Error("late branch failed"));
  endTurn();
  assert.deepEqual(settled, ["ra", "rb", "rc"]);
});

test("settlement: split then join: parts are children of the record, the join's output settles it", () => {
  const { t, settled, endTurn } = tracker();
  t.track("m", "r");
  t.delivered("m", "in", "split");
  endTurn();
  // split sends three new msgs (it deletes _msgid), then finishes the input
  t.delivered("p1", "split", "join");
  t.delivered("p2", "split", "join");
  t.delivered("p3", "split", "join");
  t.completed("m", "split");
  endTurn();
  assert.deepEqual(settled, []);
  // join holds p1, p2; with p3 it sends the merged msg (id p3) and finishes the parts
  t.delivered("p3", "join", "out");
  t.completed("p1", "join");
  t.completed("p2", "join");
  t.completed("p3", "join");
  endTurn();
  assert.deepEqual(settled, []);
  t.completed("p3", "out");
  endTurn();
  assert.deepEqual(settled, ["r"]);
  assert.equal(t.size, 0);
});

test("settlement: a node that deletes or changes the _msgid of its input before done() (core split) is matched by the msg object", () => {
  const { t, settled, endTurn } = tracker();
  const m = { _msgid: "m" as string | undefined };
  t.track("m", "r");
  t.delivered("m", "in", "split", m);
  endTurn();
  delete m._msgid;
  t.delivered("p1", "split", "out", {});
  t.completed(undefined, "split", undefined, m);
  endTurn();
  t.completed("p1", "out");
  endTurn();
  assert.deepEqual(settled, ["r"]);
  // a node that re-identifies the msg it forwards: its done() still closes its own unit
  const n = { _msgid: "n" };
  t.track("n", "r2");
  t.delivered("n", "in", "a", n);
  endTurn();
  n._msgid = "n2";
  t.delivered("n2", "a", "out", n);
  t.completed("n2", "a", undefined, n);
  endTurn();
  assert.deepEqual(settled, ["r"], "held by out through the re-identified msg");
  t.completed("n2", "out", undefined, n);
  endTurn();
  assert.deepEqual(settled, ["r", "r2"]);
  assert.equal(t.size, 0);
});

test("settlement: batch output (one msg, many records) and core batch (sends each, then done) settle per record", () => {
  const { t, settled, endTurn } = tracker();
  t.track("b", ["r1", "r2", "r3"]);
  t.delivered("b", "in", "out");
  endTurn();
  t.completed("b", "out");
  endTurn();
  assert.deepEqual(settled, ["r1", "r2", "r3"]);

  const core = tracker();
  for (let i = 1; i <= 3; i++) {
    core.t.track(`m${i}`, `r${i}`);
    core.t.delivered(`m${i}`, "in", "batch");
    core.endTurn();
  }
  for (let i = 1; i <= 3; i++) core.t.delivered(`m${i}`, "batch", "out");
  for (let i = 1; i <= 3; i++) core.t.completed(`m${i}`, "batch");
  core.endTurn();
  core.t.completed("m1", "out");
  core.t.completed("m2", "out", new Error("refused"));
  core.endTurn();
  assert.deepEqual(core.settled, ["r1"]);
  assert.deepEqual(
    core.failed.map((f) => f.r),
    ["r2"],
    "a record that fails does not fail its neighbours",
  );
});

test("settlement: a node stopped by a deploy that finishes what it held interrupts it; pulsar-out's done still delivers", () => {
  const { t, settled, failed, endTurn } = tracker();
  for (let i = 1; i <= 3; i++) {
    t.track(`m${i}`, `r${i}`);
    t.delivered(`m${i}`, "in", "join");
    endTurn();
  }
  t.track("m4", "r4");
  t.delivered("m4", "in", "out");
  endTurn();
  t.setStopping((id) => id === "join");
  // join's close calls the held done()s
  for (let i = 1; i <= 3; i++) t.completed(`m${i}`, "join");
  t.completed("m4", "out");
  endTurn();
  assert.deepEqual(
    failed.map((f) => [f.r, f.cause]),
    [
      ["r1", "interrupted"],
      ["r2", "interrupted"],
      ["r3", "interrupted"],
    ],
  );
  assert.deepEqual(settled, ["r4"]);
  t.setStopping(undefined);
});

test("settlement: an error fails at once; completions from nodes holding nothing are ignored", () => {
  const { t, settled, failed, endTurn } = tracker();
  t.track("m", "r");
  t.delivered("m", "in", "a");
  t.delivered("m", "in", "b");
  endTurn();
  t.completed("m", "catch");
  t.completed("m", "a", new Error("boom"));
  assert.deepEqual(
    failed.map((f) => f.r),
    ["r"],
  );
  t.completed("m", "b");
  endTurn();
  assert.deepEqual(settled, [], "a failed record does not settle later");
});

test("settlement: expire fails the oldest records first and names the nodes holding them; forget drops revoked ones", () => {
  let clock = 0;
  const { t, failed, settled, endTurn } = tracker(() => clock);
  t.track("m1", "p0:1");
  t.delivered("m1", "in", "slow");
  endTurn();
  clock = 100;
  t.track("m2", "p0:2");
  t.delivered("m2", "in", "out");
  endTurn();
  clock = 150;
  t.track("m3", "p1:3");
  t.delivered("m3", "in", "held");
  endTurn();
  const n = t.expire(50, (holders) => new Error(`held by ${holders.join(",")}`));
  assert.equal(n, 1);
  assert.deepEqual(
    failed.map((f) => [f.r, f.cause, (f.error as Error).message]),
    [["p0:1", "expired", "held by slow"]],
  );
  t.completed("m1", "slow");
  endTurn();
  assert.deepEqual(settled, [], "an expired record does not settle when its old copy finishes");
  t.forget((r) => r.startsWith("p1:"));
  t.completed("m3", "held");
  endTurn();
  assert.deepEqual(settled, [], "a forgotten record neither settles nor fails");
  assert.equal(t.records, 1);
  t.completed("m2", "out");
  endTurn();
  assert.deepEqual(settled, ["p0:2"]);
});

test("failure policy: interrupted is retried uncounted; record errors dead-letter at once; destination errors block, never dead-letter; transient ones are bounded", () => {
  const dl = new FailurePolicy({ maxAttempts: 3, retryBackoffMs: 100, deadLetter: true });
  const no = { interrupted: false };
  assert.equal(dl.decide(1, { scope: "record", ...no }).kind, "dead-letter");
  assert.deepEqual(dl.decide(1, { scope: "destination", ...no }), { kind: "block", retryInMs: 1000 });
  assert.deepEqual(dl.decide(9, { scope: "destination", ...no }), { kind: "block", retryInMs: 25_600 });
  assert.deepEqual(dl.decide(1, { scope: "transient", ...no }), {
    kind: "retry",
    delayMs: 100,
    counted: true,
  });
  assert.deepEqual(dl.decide(2, { scope: "transient", ...no }), {
    kind: "retry",
    delayMs: 200,
    counted: true,
  });
  assert.equal(dl.decide(3, { scope: "transient", ...no }).kind, "dead-letter");
  assert.equal(dl.decide(9, { scope: "transient", interrupted: true }).kind, "retry");
  const block = new FailurePolicy({ maxAttempts: 2, retryBackoffMs: 100, deadLetter: false });
  assert.deepEqual(block.decide(1, { scope: "record", ...no }), { kind: "block", retryInMs: 60_000 });
  assert.deepEqual(block.decide(2, { scope: "transient", ...no }), { kind: "block", retryInMs: 60_000 });
  const forever = new FailurePolicy({ maxAttempts: 0, retryBackoffMs: 1000, deadLetter: true });
  assert.deepEqual(forever.decide(FREE_RETRIES - 1, { scope: "transient", ...no }), {
    kind: "retry",
    delayMs: 2 ** (FREE_RETRIES - 2) * 1000,
    counted: true,
  });
  // then its partition stops behind it (the ledger would grow with every later offset), still tried
  assert.deepEqual(forever.decide(FREE_RETRIES, { scope: "transient", ...no }), {
    kind: "block",
    retryInMs: 2 ** (FREE_RETRIES - 1) * 1000,
  });
  assert.deepEqual(forever.decide(1000, { scope: "transient", ...no }), { kind: "block", retryInMs: 60_000 });
});

test("failure scope: what the error is about decides dead-letter or wait", () => {
  assert.equal(failureScope(new BridgeError("kafka-in.errors.json", "bad json", false)), "record");
  assert.equal(failureScope(new BridgeError("pulsar-out.errors.payload", "x", false)), "record");
  assert.equal(failureScope(new MessageTooBigError("too big")), "record");
  assert.equal(failureScope(new BridgeError("pulsar-out.errors.dedup-off", "off", false)), "destination");
  assert.equal(
    failureScope(new ConfigurationError("pulsar-out.errors.invalid-topic", "bad fixed topic")),
    "destination",
  );
  assert.equal(failureScope(new AuthorizationError("not allowed")), "destination");
  assert.equal(failureScope(new TopicNotFoundError("Namespace not found")), "destination");
  assert.equal(failureScope(new AlreadyClosedError("closed by a redeploy")), "transient");
  assert.equal(failureScope(new TimeoutError("slow")), "transient");
  assert.equal(failureScope(new Error("a function threw")), "transient");
  assert.equal(failureScope("a string"), "transient");
});

test("settlement: a msg routed to a node a deploy is stopping interrupts its records (it would settle as 'no branch')", () => {
  const { t, settled, failed, endTurn } = tracker();
  t.track("m", "r");
  t.delivered("m", "in", "fn");
  endTurn();
  // fn (still running) sends on to out, which a deploy is replacing: Node-RED finds no node, no preDeliver
  t.routed("m", "out");
  t.completed("m", "fn");
  endTurn();
  assert.deepEqual(settled, []);
  assert.deepEqual(
    failed.map((f) => [f.r, f.cause]),
    [["r", "interrupted"]],
  );
});

test("deploys: the stopping set is decided when flows:stopping is raised (Node-RED's event shape), with subflow instances and pulsar-out spared", () => {
  // as flows/index.js raises it: config is { flows: [every tab and node], rev }; a changed node's tab is
  // listed in diff.changed too
  const flows = [
    { id: "f1", type: "tab" },
    { id: "f3", type: "tab" },
    { id: "in", type: "kafka-in", z: "f1" },
    { id: "j", type: "join", z: "f1" },
    { id: "fn", type: "function", z: "f1" },
    { id: "out", type: "pulsar-out", z: "f1" },
    { id: "sf", type: "subflow:abc", z: "f1" },
    { id: "other", type: "delay", z: "f3" },
  ];
  const config = { flows, rev: "x" };
  const full = stoppingPredicate({ type: "full", config });
  assert.equal(full("j"), true);
  assert.equal(full("out"), false, "pulsar-out's done means delivered");
  const nodes = stoppingPredicate({
    type: "nodes",
    diff: { changed: ["j", "sf", "out", "f1"], removed: [], added: [], linked: ["fn"], flowChanged: [] },
    config,
  });
  assert.equal(nodes("j"), true);
  assert.equal(nodes("in"), false, "the tab id in diff.changed does not stop the whole tab");
  assert.equal(nodes("fn"), false, "linked nodes keep running in a nodes deploy");
  assert.equal(nodes("other"), false);
  assert.equal(nodes("out"), false);
  assert.equal(nodes("sf-inner1"), true, "a node inside a changed subflow instance stops with it");
  const tabEnv = stoppingPredicate({
    type: "flows",
    diff: { changed: [], removed: [], added: [], linked: [], rewired: [], flowChanged: ["f1"] },
    config,
  });
  assert.equal(tabEnv("j"), true, "every node of a tab whose settings changed (its env, say)");
  assert.equal(tabEnv("sf-inner1"), true);
  assert.equal(tabEnv("other"), false);
  assert.equal(tabEnv("out"), false);
  const linked = stoppingPredicate({
    type: "flows",
    diff: { changed: ["j"], removed: [], added: [], linked: ["fn"], rewired: [], flowChanged: [] },
    config,
  });
  assert.equal(linked("fn"), true, "a flows deploy also stops the linked nodes");
});

test("settlement: a node without done callback (core switch) that queues msgs while busy: a queued msg is done when a later one is sent, or when the node is idle", async () => {
  const { t, settled, endTurn } = tracker(Date.now);
  // handled in its own turn: sent on before the handler returns
  t.track("a", "ra");
  t.delivered("a", "in", "sw");
  endTurn();
  t.delivered("a", "sw", "out");
  t.received("a", "sw");
  endTurn();
  // b and c arrive while the switch is busy: queued, nothing sent yet
  for (const id of ["b", "c", "d"]) {
    t.track(id, `r${id}`);
    t.delivered(id, "in", "sw");
    endTurn();
    t.received(id, "sw");
    endTurn();
  }
  assert.deepEqual(settled, [], "queued msgs do not settle when the handler returns");
  // later the switch drops b and sends c on
  t.delivered("c", "sw", "out");
  endTurn();
  assert.deepEqual(
    settled,
    ["rb"],
    "b, queued before the sent c, was dropped: it settles, c does not carry it",
  );
  assert.deepEqual(t.carried("c")?.alone, ["rc"]);
  t.completed("c", "out");
  t.completed("a", "out");
  endTurn();
  assert.deepEqual(settled.sort(), ["ra", "rb", "rc"]);
  // d is never sent: it counts as dropped once the switch has been idle
  await new Promise((r) => setTimeout(r, LEGACY_IDLE_MS + 300));
  endTurn();
  assert.deepEqual(settled.sort(), ["ra", "rb", "rc", "rd"]);
});

test("settlement: a switch that drops a msg while steady traffic goes on: the dropped one settles with the next msg it passes, not after an idle second that never comes", () => {
  const { t, settled, endTurn } = tracker(() => 0);
  // x0 matches no rule: the handler returns without sending
  t.track("x0", "r0");
  t.delivered("x0", "in", "sw");
  endTurn();
  t.received("x0", "sw");
  endTurn();
  for (let i = 1; i <= 3; i++) {
    const id = `x${i}`;
    t.track(id, `r${i}`);
    t.delivered(id, "in", "sw");
    endTurn();
    // matched: sent on from its own input handler, before postReceive
    t.delivered(id, "sw", "out");
    t.received(id, "sw");
    endTurn();
    t.completed(id, "out");
    endTurn();
  }
  // the clock never moves: only the order of receipt can have settled x0
  assert.deepEqual(settled.sort(), ["r0", "r1", "r2", "r3"]);
});

test("settlement: what a switch dropped settles as a drop; the msg it sends next carries its own record only (effectively-once refuses a msg holding two partitions' records)", () => {
  const { t, settled, failed, endTurn } = tracker(() => 0);
  // p0 (partition 0) is dropped: the handler returns without sending
  t.track("p0", "r-p0");
  t.delivered("p0", "in", "sw");
  endTurn();
  t.received("p0", "sw");
  endTurn();
  // p1 (partition 1) matches and is sent on from its own handler, before postReceive
  t.track("p1", "r-p1");
  t.delivered("p1", "in", "sw");
  endTurn();
  t.delivered("p1", "sw", "out");
  assert.deepEqual(t.carried("p1")?.alone, ["r-p1"], "p1 does not carry the dropped p0");
  t.received("p1", "sw");
  endTurn();
  assert.deepEqual(settled, ["r-p0"], "the drop settles at once");
  // p1 fails at pulsar-out: only its own record fails
  t.completed("p1", "out", new Error("refused"));
  endTurn();
  assert.deepEqual(
    failed.map((f) => f.r),
    ["r-p1"],
  );
});

test("settlement: a deploy stops a node without done callback: a msg it gets as it stops, or had queued, is interrupted, never settled by the idle release after the deploy", async () => {
  const { t, settled, failed, endTurn } = tracker(Date.now);
  // queued while the switch was busy, then the deploy stops it
  t.track("q", "rq");
  t.delivered("q", "in", "sw");
  endTurn();
  t.received("q", "sw");
  endTurn();
  t.setStopping((id) => id === "sw");
  // delivered to the closed instance: no handler runs, postReceive is raised all the same
  t.track("m", "rm");
  t.delivered("m", "in", "sw");
  endTurn();
  t.received("m", "sw");
  endTurn();
  t.setStopping(undefined); // flows:started
  endTurn();
  assert.deepEqual(failed.map((f) => `${f.r}:${f.cause}`).sort(), ["rm:interrupted", "rq:interrupted"]);
  // the new instance (the same id) queues a msg of its own: that one is not counted as stopped
  t.track("n", "rn");
  t.delivered("n", "in", "sw");
  endTurn();
  t.received("n", "sw");
  endTurn();
  await new Promise((r) => setTimeout(r, LEGACY_IDLE_MS + 300));
  endTurn();
  assert.deepEqual(settled, ["rn"], "dropped by the new instance: settles");
  assert.equal(failed.length, 2);
});

test("settlement: a msg that reached a node instance a deploy had closed (no handler ran) is interrupted at once, not held to the settle deadline", () => {
  const { t, settled, failed, endTurn } = tracker();
  t.track("m", "r41");
  t.delivered("m", "in", "fn");
  endTurn();
  t.unhandled("m", "fn");
  endTurn();
  assert.deepEqual(settled, []);
  assert.deepEqual(
    failed.map((f) => `${f.r}:${f.cause}`),
    ["r41:interrupted"],
  );
  assert.equal(t.records, 0, "nothing left open");
});

test("settlement: the settle deadline spares a record whose holder keeps sending (a rate-limiting delay working through its queue), not one whose holder is stuck", () => {
  let clock = 0;
  const { t, failed, settled, endTurn } = tracker(() => clock);
  // a delay queues q1..q3 and sends one a tick; "stuck" holds s1 and sends nothing
  for (const id of ["q1", "q2", "q3"]) {
    t.track(id, `r-${id}`);
    t.delivered(id, "in", "delay");
    endTurn();
  }
  t.track("s1", "r-s1");
  t.delivered("s1", "in", "stuck");
  endTurn();
  const deadline = 100;
  const expire = () => t.expire(clock - deadline, (h) => new Error(`held by ${h.join(",")}`));
  for (const [i, id] of ["q1", "q2", "q3"].entries()) {
    clock = 80 * (i + 1);
    t.delivered(id, "delay", "out");
    t.completed(id, "delay");
    endTurn();
    expire();
    t.completed(id, "out");
    endTurn();
  }
  // at 240 the queued msgs were all older than the deadline, yet none failed: the delay sent one every 80
  assert.deepEqual(
    failed.map((f) => f.r),
    ["r-s1"],
    "only the record of the node that sent nothing",
  );
  assert.deepEqual(settled.sort(), ["r-q1", "r-q2", "r-q3"]);
  // once the delay has been quiet for a deadline, what it still holds expires too
  t.track("q4", "r-q4");
  t.delivered("q4", "in", "delay");
  endTurn();
  clock += 2 * deadline;
  assert.equal(expire(), 1);
});

test("settlement: the settle deadline is not escaped by a stuck holder that traffic passes through (a function that lost one done, a join group that never completes)", () => {
  let clock = 0;
  const { t, failed, settled, endTurn } = tracker(() => clock);
  const deadline = 100;
  const expire = () => t.expire(clock - deadline, (h) => new Error(`held by ${h.join(",")}`));
  // fn never calls done for "lost"; every later msg it handles and finishes within 10 ms
  t.track("lost", "r-lost");
  t.delivered("lost", "in", "fn");
  endTurn();
  for (let i = 1; i <= 30; i++) {
    clock = 10 * i;
    const id = `x${i}`;
    t.track(id, `r-${id}`);
    t.delivered(id, "in", "fn");
    endTurn();
    t.delivered(id, "fn", "out");
    t.completed(id, "fn");
    endTurn();
    t.completed(id, "out");
    endTurn();
    expire();
  }
  assert.deepEqual(
    failed.map((f) => `${f.r}:${f.cause}`),
    ["r-lost:expired"],
    "the overtaken record expires although fn keeps sending",
  );
  assert.match(String(failed[0].error), /held by fn/);
  assert.equal(settled.length, 30);
  assert.equal(t.records, 0);
});

test("settlement: the settle deadline spares a join still filling its group (given msgs, nothing sent) and a queue fed out of record order, but not a join group overtaken by later groups", () => {
  let clock = 0;
  const { t, failed, settled, endTurn } = tracker(() => clock);
  const deadline = 100;
  const expire = () => t.expire(clock - deadline, (h) => new Error(`held by ${h.join(",")}`));
  // a join of 5 on a quiet topic: one part every 40, so the group takes 160 (longer than the deadline)
  const parts: string[] = [];
  for (let i = 0; i < 5; i++) {
    clock = 40 * i;
    const id = `p${i}`;
    parts.push(id);
    t.track(id, `r-${id}`);
    t.delivered(id, "in", "join");
    endTurn();
    expire();
  }
  t.delivered("p4", "join", "out");
  for (const p of parts) t.completed(p, "join");
  endTurn();
  t.completed("p4", "out");
  endTurn();
  assert.equal(failed.length, 0, "the filling join expired nothing");
  assert.equal(settled.length, 5);

  // a rate limiter whose queue gets an older record behind newer ones (it came the long way round): it
  // works through the queue in the order msgs reached it
  clock = 1000;
  t.track("old", "r-old"); // tracked first, held elsewhere for a while
  t.delivered("old", "in", "slow-branch");
  endTurn();
  const queued = ["n1", "n2", "n3"];
  for (const id of queued) {
    t.track(id, `r-${id}`);
    t.delivered(id, "in", "limiter");
    endTurn();
  }
  clock = 1050;
  t.delivered("old", "slow-branch", "limiter");
  t.completed("old", "slow-branch");
  endTurn();
  for (const [i, id] of [...queued, "old"].entries()) {
    clock = 1100 + 60 * i;
    t.delivered(id, "limiter", "out");
    t.completed(id, "limiter");
    endTurn();
    expire();
    t.completed(id, "out");
    endTurn();
  }
  assert.equal(failed.length, 0, "in arrival order at the limiter: nothing overtook the older record there");

  // a keyed join: group A never completes, groups B.. complete one after the other
  clock = 2000;
  t.track("a1", "r-a1");
  t.delivered("a1", "in", "kjoin");
  endTurn();
  for (let g = 0; g < 20; g++) {
    clock = 2000 + 20 * (g + 1);
    const id = `b${g}`;
    t.track(id, `r-${id}`);
    t.delivered(id, "in", "kjoin");
    t.delivered(id, "kjoin", "out");
    t.completed(id, "kjoin");
    endTurn();
    t.completed(id, "out");
    endTurn();
    expire();
  }
  assert.deepEqual(
    failed.map((f) => f.r),
    ["r-a1"],
    "the group later groups overtook expires, naming the join",
  );
  assert.match(String(failed[0]?.error), /held by kjoin/);
});

test("settlement: a switch recreating message sequences holds a sequence's parts until its last one came, whatever else it passes meanwhile: then the parts it did not send were dropped", async () => {
  const settled: string[] = [];
  let deferred: (() => void)[] = [];
  const t = new SettlementTracker<string>(
    { settled: (r) => settled.push(r), failed: () => undefined },
    { defer: (fn) => deferred.push(fn), now: Date.now, sequences: (id) => id === "sw" },
  );
  const endTurn = () => {
    const d = deferred;
    deferred = [];
    for (const fn of d) fn();
  };
  const part = (index: number) => ({ parts: { id: "seq-1", index, count: 3 } });
  const msgs = new Map<string, object>();
  for (const [id, index] of [
    ["p0", 0],
    ["p1", 1],
  ] as const) {
    const m = part(index);
    msgs.set(id, m);
    t.track(id, `r${id}`);
    t.delivered(id, "in", "sw", m);
    endTurn();
    t.received(id, "sw", m);
    endTurn();
  }
  // a msg that is no part of a sequence passes straight through meanwhile
  t.track("m", "rm");
  t.delivered("m", "in", "sw", {});
  endTurn();
  t.delivered("m", "sw", "out");
  t.received("m", "sw", {});
  endTurn();
  // the sequence's last part is slow to come (a rate-limiting delay before the switch)
  await new Promise((r) => setTimeout(r, LEGACY_IDLE_MS + 300));
  endTurn();
  assert.deepEqual(settled, [], "the parts are held, neither by the msg passed nor by an idle second");
  t.completed("m", "out");
  endTurn();
  assert.deepEqual(settled, ["rm"]);
  // the last part comes: core switch handles the parts one per event-loop iteration and sends the parts
  // that match (p0 and p2; p1 is dropped) together when it handled the last, iterations later
  const last = part(2);
  t.track("p2", "rp2");
  t.delivered("p2", "in", "sw", last);
  endTurn();
  t.received("p2", "sw", last);
  for (let i = 0; i < 3; i++) endTurn();
  assert.deepEqual(settled, ["rm"], "the switch is still handling the sequence: nothing dropped");
  t.delivered("p0", "sw", "out");
  t.delivered("p2", "sw", "out");
  endTurn();
  assert.deepEqual(settled, ["rm", "rp1"], "p1, not sent with its completed sequence, was dropped");
  t.completed("p0", "out");
  t.completed("p2", "out");
  endTurn();
  assert.deepEqual(settled.sort(), ["rm", "rp0", "rp1", "rp2"]);
});

test("settlement: a switch recreating message sequences that drops every part of one: the parts are dropped once it sends a msg that came later, or once it had the iterations to handle them and was idle a second", async () => {
  const { t, settled, endTurn, iteration, give } = sequenceHarness();
  // seq-a: both parts fail the rules; then a msg that is no part of a sequence passes
  give("a0", { parts: { id: "seq-a", index: 0, count: 2 } });
  give("a1", { parts: { id: "seq-a", index: 1, count: 2 } });
  iteration();
  assert.deepEqual(settled, []);
  const m = {};
  t.track("m", "rm");
  t.delivered("m", "in", "sw", m);
  t.delivered("m", "sw", "out");
  t.received("m", "sw", m);
  endTurn();
  assert.deepEqual(settled.sort(), ["ra0", "ra1"], "it handled seq-a before the msg it sent after");
  t.completed("m", "out");
  endTurn();
  // seq-b: both parts fail, nothing comes after
  give("b0", { parts: { id: "seq-b", index: 0, count: 2 } });
  give("b1", { parts: { id: "seq-b", index: 1, count: 2 } });
  // a slow event loop: a second passes before the switch had the iterations to handle the parts
  await new Promise((r) => setTimeout(r, LEGACY_IDLE_MS + 300));
  endTurn();
  assert.deepEqual(settled.sort(), ["ra0", "ra1", "rm"], "held while the switch may still handle them");
  for (let i = 0; i < 12; i++) iteration();
  assert.deepEqual(settled.sort(), ["ra0", "ra1", "rm"], "not before it was idle a second after that");
  await new Promise((r) => setTimeout(r, LEGACY_IDLE_MS + 300));
  endTurn();
  assert.deepEqual(settled.sort(), ["ra0", "ra1", "rb0", "rb1", "rm"]);
});

/** A tracker whose turns and event-loop iterations the test runs by hand; "sw" holds sequences in `mode`. */
function sequenceHarness(mode: boolean | "tail" = true) {
  const settled: string[] = [];
  let deferred: (() => void)[] = [];
  let loops: (() => void)[] = [];
  let scheduled = 0;
  const t = new SettlementTracker<string>(
    { settled: (r) => settled.push(r), failed: () => undefined },
    {
      defer: (fn) => deferred.push(fn),
      nextLoop: (fn) => {
        scheduled++;
        loops.push(fn);
      },
      now: Date.now,
      sequences: (id) => (id === "sw" ? mode : false),
    },
  );
  const endTurn = () => {
    const d = deferred;
    deferred = [];
    for (const fn of d) fn();
  };
  const iteration = () => {
    const l = loops;
    loops = [];
    for (const fn of l) fn();
    endTurn();
  };
  /** A tracked msg `id` (record `r<id>`) reaches the switch, which queues it. */
  const give = (id: string, m: object) => {
    t.track(id, `r${id}`);
    t.delivered(id, "in", "sw", m);
    endTurn();
    t.received(id, "sw", m);
    endTurn();
  };
  return { t, settled, endTurn, iteration, give, scheduled: () => scheduled, waiting: () => loops.length };
}

test("review 29 F1: a switch with a 'tail' rule and no recreating sends the parts it passes one by one: the record waits for the last", () => {
  const { t, settled, endTurn, iteration } = sequenceHarness("tail");
  const r = {};
  t.track("r", "R");
  t.delivered("r", "in", "sp", r);
  endTurn();
  const m = [0, 1, 2, 3].map((i) => ({ parts: { id: "s", index: i, count: 4 } }));
  m.forEach((x, i) => t.delivered(`p${i}`, "sp", "sw", x));
  t.completed("r", "sp", undefined, r);
  endTurn();
  m.forEach((x, i) => {
    t.received(`p${i}`, "sw", x);
    endTurn();
  });
  iteration();
  iteration();
  t.delivered("p2", "sw", "out", m[2]);
  endTurn();
  iteration();
  t.delivered("p3", "sw", "out", m[3]);
  endTurn();
  t.completed("p2", "out", undefined, m[2]);
  endTurn();
  assert.deepEqual(settled, [], "p3 is on its way");
  t.completed("p3", "out", undefined, m[3]);
  endTurn();
  assert.deepEqual(settled, ["R"]);
});

test("review 29 F3, F6: parts this tracker does not track (an inject's, another kafka-in's) complete a sequence and count in the switch's backlog", async () => {
  const { t, settled, endTurn, iteration, give } = sequenceHarness();
  const k0 = { parts: { id: "b", index: 0, count: 3 } };
  const k1 = { parts: { id: "b", index: 1, count: 3 } };
  // another source's long sequence reaches the switch first
  for (let i = 0; i < 10_000; i++) t.received(`x${i}`, "sw", { parts: { id: "X", index: i, count: 10_000 } });
  give("k0", k0);
  give("k1", k1);
  t.received("u2", "sw", { parts: { id: "b", index: 2, count: 3 } });
  // a slow loop: fewer iterations than the switch needs for X, and a second passes
  for (let i = 0; i < 300; i++) iteration();
  await new Promise((r) => setTimeout(r, LEGACY_IDLE_MS + 300));
  endTurn();
  assert.deepEqual(settled, [], "the switch may still be working through X");
  // it reaches b, drops k0 and sends k1
  t.delivered("k1", "sw", "join");
  endTurn();
  assert.deepEqual(settled, ["rk0"]);
  t.completed("k1", "join");
  endTurn();
  assert.deepEqual(settled.sort(), ["rk0", "rk1"]);
});

test("review 29 F2: the event-loop iterations counted for drain marks are one ticker, not one chain per sequence", () => {
  const { t, endTurn, iteration, scheduled, waiting } = sequenceHarness();
  const sequences = 300;
  const parts = 60;
  for (let s = 0; s < sequences; s++)
    for (let i = 0; i < parts; i++) {
      const id = `s${s}p${i}`;
      const x = { parts: { id: `s${s}`, index: i, count: parts } };
      t.track(id, id);
      t.delivered(id, "sp", "sw", x);
      t.received(id, "sw", x);
    }
  endTurn();
  let iterations = 0;
  while (waiting() > 0) {
    iteration();
    iterations++;
  }
  // the longest budget: two iterations per msg the switch got, and one callback per iteration
  assert.ok(iterations <= 2 * sequences * parts + 2, `${iterations} iterations`);
  assert.equal(scheduled(), iterations);
});

test("review 29 F4: what a switch queued of sequences that never complete goes when the records expire", () => {
  const { t, endTurn } = sequenceHarness();
  for (let s = 0; s < 100; s++) {
    const x = { parts: { id: `s${s}`, index: 0, count: 2 } };
    t.track(`m${s}`, `r${s}`);
    t.delivered(`m${s}`, "in", "sw", x);
    endTurn();
    t.received(`m${s}`, "sw", x);
    endTurn();
  }
  t.expire(Date.now() + 10_000, () => new Error("expired"));
  assert.equal(t.size, 0);
  assert.equal(
    (t as unknown as { legacy: Map<string, unknown> }).legacy.size,
    0,
    "the switch's queue is forgotten",
  );
});

test("review 29 F5: a sequence a switch dropped whole goes a second after it was handled, though msgs keep coming", async () => {
  const { settled, iteration, give } = sequenceHarness();
  give("a0", { parts: { id: "A", index: 0, count: 2 } });
  give("a1", { parts: { id: "A", index: 1, count: 2 } });
  for (let i = 0; i < 20; i++) iteration();
  for (let k = 0; k < 12; k++) {
    await new Promise((r) => setTimeout(r, 250));
    give(`b${k}`, { parts: { id: `B${k}`, index: 0, count: 2 } });
    for (let i = 0; i < 4; i++) iteration();
  }
  assert.ok(settled.includes("ra0") && settled.includes("ra1"), JSON.stringify(settled));
});
