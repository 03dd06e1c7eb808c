// Which partitions new to a kafka-in are read from offset 0 rather than from the group's commit, after a
// topic of the name was deleted and created again (GroupConsumer's look at the topics' ids), and what the
// consumer seeks, commits and hands over around such a look.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { EachBatchPayload, Kafka } from "kafkajs";
import { OffsetLedger } from "../../src/bridge/offsets";
import { GroupConsumer, readAfresh, type TopicIds } from "../../src/kafka/group-consumer";

const NEW = "bmV3LXRvcGljLWlkLTAwMA";
const OLD = "b2xkLXRvcGljLWlkLTAwMA";
const known = (
  o: { lastId?: string; resetOwed?: boolean; groupRecreated?: boolean; fromStart?: boolean } = {},
) => ({
  lastId: o.lastId,
  resetOwed: o.resetOwed ?? false,
  groupRecreated: o.groupRecreated ?? false,
  fromStart: o.fromStart ?? false,
});

test("a commit made for another topic id is not trusted; one for this id, or one without an id, is", () => {
  assert.equal(readAfresh({ offset: "100", metadata: `topic-id:${OLD}` }, NEW, known()), true);
  assert.equal(
    readAfresh({ offset: "100", metadata: `topic-id:${NEW}` }, NEW, known({ lastId: OLD })),
    false,
  );
  // an older version of the node, auto-commit, or another tool of the group
  assert.equal(readAfresh({ offset: "100", metadata: null }, NEW, known({ lastId: OLD })), false);
  assert.equal(readAfresh({ offset: "100", metadata: "something else" }, NEW, known({ lastId: OLD })), false);
});

test("no commit: read from 0 where this member read the topic as another id (Kafka deleted the commits with it), or where the group commits other partitions of this topic id", () => {
  const none = { offset: "-1", metadata: null };
  assert.equal(readAfresh(none, NEW, known({ lastId: OLD })), true);
  assert.equal(readAfresh(undefined, NEW, known({ lastId: OLD })), true);
  assert.equal(
    readAfresh(none, NEW, known({ groupRecreated: true })),
    true,
    "the group read the old topic since",
  );
  // the same topic, or one this member never read, and no other partition committed: "start from"
  assert.equal(readAfresh(none, NEW, known({ lastId: NEW })), false);
  assert.equal(readAfresh(none, NEW, known()), false);
});

test("a reset to 0 still owed (its commit failed) is read from 0 again, whatever the group holds", () => {
  assert.equal(
    readAfresh({ offset: "100", metadata: `topic-id:${NEW}` }, NEW, known({ lastId: NEW, resetOwed: true })),
    true,
  );
  assert.equal(readAfresh(undefined, NEW, known({ resetOwed: true })), true);
});

// ---- GroupConsumer over a stand-in kafkajs consumer: what it seeks, commits and hands over ----

type Assignment = Record<string, number[]>;
interface Commit {
  topic: string;
  partition: number;
  offset: string;
  metadata: string | null;
}

function standIn() {
  const handlers = new Map<string, (e: { payload: unknown }) => void>();
  const seeks: string[] = [];
  const commits: Commit[][] = [];
  let failCommits = 0;
  let eachBatch: ((payload: EachBatchPayload) => Promise<void>) | undefined;
  const pendingSeeks = new Set<string>();
  const consumer = {
    events: { CRASH: "crash", GROUP_JOIN: "join", REBALANCING: "rebalancing", DISCONNECT: "disconnect" },
    on: (event: string, fn: (e: { payload: unknown }) => void) => handlers.set(event, fn),
    connect: () => Promise.resolve(),
    subscribe: () => Promise.resolve(),
    run: (o: { eachBatch: (payload: EachBatchPayload) => Promise<void> }) => {
      eachBatch = o.eachBatch;
      return Promise.resolve();
    },
    disconnect: () => Promise.resolve(),
    pause: () => undefined,
    resume: () => undefined,
    seek: (s: { topic: string; partition: number; offset: string }) => {
      seeks.push(`${s.topic}/${s.partition}@${s.offset}`);
      pendingSeeks.add(`${s.topic}/${s.partition}`);
    },
    commitOffsets: (offsets: Commit[]) => {
      commits.push(offsets.map((o) => ({ ...o })));
      if (failCommits > 0) {
        failCommits--;
        return Promise.reject(new Error("REBALANCE_IN_PROGRESS"));
      }
      return Promise.resolve();
    },
  };
  const kafka = { consumer: () => consumer } as unknown as Kafka;
  return {
    kafka,
    seeks,
    commits,
    failNextCommits: (n: number) => (failCommits = n),
    join: (assignment: Assignment) => handlers.get("join")?.({ payload: { memberAssignment: assignment } }),
    /** Hands a batch to the consumer as kafkajs would; stale while a seek of its partition is pending. */
    batch: async (topic: string, partition: number, offsets: number[]) => {
      const key = `${topic}/${partition}`;
      const stale = pendingSeeks.has(key);
      if (!eachBatch) throw new Error("not running");
      await eachBatch({
        batch: { topic, partition, messages: offsets.map((o) => ({ offset: String(o), value: null })) },
        isRunning: () => true,
        // a seek during the batch makes it stale too (kafkajs marks the partition's batch stale)
        isStale: () => stale || pendingSeeks.has(key),
        resolveOffset: () => undefined,
        heartbeat: () => Promise.resolve(),
      } as unknown as EachBatchPayload);
    },
    /** The next fetch applies the pending seeks. */
    fetch: () => pendingSeeks.clear(),
  };
}

function consumerOf(
  kafka: Kafka,
  watch: TopicIds,
  o: {
    ordered?: boolean;
    onRecord?: (offset: string) => void;
    states?: string[];
    lastIds?: Map<string, string>;
    resets?: Map<string, { topic: string; partition: number }>;
    deletedAfterMs?: number;
  } = {},
) {
  const ledger = new OffsetLedger();
  const recreated: string[] = [];
  const gc = new GroupConsumer(kafka, {
    groupId: "g",
    topics: ["t"],
    fromBeginning: false,
    commitMode: "settled",
    maxInFlight: 100,
    ledger,
    onRecord: (topic, partition, m) => {
      o.onRecord?.(m.offset);
      ledger.settle(topic, partition, m.offset);
    },
    onState: (s) => o.states?.push(s.kind === "reconnecting" ? `${s.kind}: ${s.error}` : s.kind),
    onError: () => undefined,
    onTopicRecreated: (topic, partitions) => recreated.push(`${topic} ${partitions.join(",")}`),
    topicCheckEveryBatch: () => o.ordered === true,
    commitIntervalMs: 60_000,
    idWatch: watch,
    lastIds: o.lastIds,
    resets: o.resets,
    deletedAfterMs: o.deletedAfterMs,
  });
  return { gc, ledger, recreated };
}

const watchOf = (
  ids: () => Promise<Map<string, string>>,
  commits: () => Promise<Map<string, Map<number, { offset: string; metadata: string | null }>>>,
): TopicIds => ({ ids, commits, close: () => Promise.resolve() });

const settle = () => new Promise((r) => setTimeout(r, 20));

test("a partition given to this member with a commit made for the old topic is read from 0, and the reset to 0 is committed until Kafka confirms it", async (t) => {
  const k = standIn();
  const watch = watchOf(
    () => Promise.resolve(new Map([["t", NEW]])),
    () => Promise.resolve(new Map([["t", new Map([[0, { offset: "100", metadata: `topic-id:${OLD}` }]])]])),
  );
  const { gc, recreated } = consumerOf(k.kafka, watch);
  gc.start();
  t.after(() => gc.stop());
  await settle();
  k.failNextCommits(1);
  k.join({ t: [0] });
  await settle();
  assert.deepEqual(k.seeks, ["t/0@0"]);
  assert.deepEqual(recreated, ["t 0"]);
  assert.deepEqual(k.commits, [
    [{ topic: "t", partition: 0, offset: "0", metadata: `topic-id:${NEW};from-start` }],
  ]);
  // refused (a rebalance): owed, and sent again with the next commit
  await gc.commit();
  assert.equal(k.commits.length, 2);
  assert.deepEqual(k.commits[1], [
    { topic: "t", partition: 0, offset: "0", metadata: `topic-id:${NEW};from-start` },
  ]);
  await gc.commit();
  assert.equal(k.commits.length, 2, "paid once confirmed");
  // the new topic's records commit under its id
  k.fetch();
  await k.batch("t", 0, [0, 1, 2]);
  await gc.commit();
  assert.deepEqual(k.commits[2], [
    { topic: "t", partition: 0, offset: "3", metadata: `topic-id:${NEW};from-start` },
  ]);
});

test("records of a partition no look has judged yet are not committed (a commit naming no topic id would be trusted and pay no reset); committed once a look has", async (t) => {
  const k = standIn();
  let failLooks = true;
  const watch = watchOf(
    () =>
      failLooks
        ? Promise.reject(new Error("Kafka gave no topic ids in 5 s"))
        : Promise.resolve(new Map([["t", NEW]])),
    () => Promise.resolve(new Map([["t", new Map([[0, { offset: "10", metadata: `topic-id:${NEW}` }]])]])),
  );
  const handed: string[] = [];
  const { gc } = consumerOf(k.kafka, watch, { onRecord: (o) => handed.push(o) });
  gc.start();
  t.after(() => gc.stop());
  await settle();
  k.join({ t: [0] });
  await settle();
  await k.batch("t", 0, [10, 11]);
  assert.deepEqual(handed, ["10", "11"], "outside ordered mode a failed look does not stop the stream");
  await gc.commit();
  assert.deepEqual(k.commits, [], "not committed unjudged");
  failLooks = false;
  await k.batch("t", 0, [12]);
  await gc.commit();
  assert.deepEqual(k.commits, [[{ topic: "t", partition: 0, offset: "13", metadata: `topic-id:${NEW}` }]]);
});

test("ordered mode: a batch waits for a look that answers and names its topic (the status says why), then goes", async (t) => {
  const k = standIn();
  let failures = 2;
  const watch = watchOf(
    () =>
      failures-- > 0
        ? Promise.reject(new Error("Kafka gave no topic ids in 5 s"))
        : Promise.resolve(new Map([["t", NEW]])),
    () => Promise.resolve(new Map([["t", new Map([[0, { offset: "5", metadata: `topic-id:${NEW}` }]])]])),
  );
  const handed: string[] = [];
  const states: string[] = [];
  const { gc } = consumerOf(k.kafka, watch, { ordered: true, onRecord: (o) => handed.push(o), states });
  gc.start();
  t.after(() => gc.stop());
  await settle();
  k.join({ t: [0] });
  const batch = k.batch("t", 0, [5, 6]);
  await settle();
  assert.deepEqual(handed, [], "not handed over while no look answered");
  await batch;
  assert.deepEqual(handed, ["5", "6"]);
  assert.ok(
    states.some((s) =>
      s.startsWith("reconnecting: cannot look at the Kafka topics' ids: Kafka gave no topic ids"),
    ),
    states.join(" | "),
  );
  assert.equal(states.at(-1), "consuming");
});

test("a look answered by a broker that still has the old topic id (its metadata lags) does not read the new topic again from 0", async (t) => {
  const k = standIn();
  const answers = [OLD, NEW, OLD, NEW];
  let asked = 0;
  const watch = watchOf(
    () => Promise.resolve(new Map([["t", answers[Math.min(asked++, answers.length - 1)]]])),
    () => Promise.resolve(new Map([["t", new Map([[0, { offset: "5", metadata: `topic-id:${OLD}` }]])]])),
  );
  const handed: string[] = [];
  const { gc, recreated } = consumerOf(k.kafka, watch, { ordered: true, onRecord: (o) => handed.push(o) });
  gc.start();
  t.after(() => gc.stop());
  await settle();
  k.join({ t: [0] });
  await settle();
  assert.deepEqual(k.seeks, [], "the commit names the topic id the first look gives");
  // the topic is deleted and created again: the next look finds the new id
  await k.batch("t", 0, [5]);
  assert.deepEqual(k.seeks, ["t/0@0"]);
  assert.deepEqual(recreated, ["t 0"]);
  k.fetch();
  // the look before the new topic's first batch asks a broker that still names the old id
  await k.batch("t", 0, [0, 1]);
  await k.batch("t", 0, [2]);
  assert.deepEqual(k.seeks, ["t/0@0"], "not sought to 0 again");
  assert.deepEqual(recreated, ["t 0"]);
  assert.deepEqual(handed, ["0", "1", "2"]);
  assert.ok(asked >= 4, `looks: ${asked}`);
});

test("a reset to 0 still owed (its commit refused) on a partition this member keeps through a rebalance: read from 0 again after it (kafkajs resumes kept partitions from the group's commit)", async (t) => {
  const k = standIn();
  let id = OLD;
  const watch = watchOf(
    () => Promise.resolve(new Map([["t", id]])),
    () => Promise.resolve(new Map([["t", new Map([[0, { offset: "100", metadata: `topic-id:${OLD}` }]])]])),
  );
  const handed: string[] = [];
  const { gc, recreated } = consumerOf(k.kafka, watch, { ordered: true, onRecord: (o) => handed.push(o) });
  gc.start();
  t.after(() => gc.stop());
  await settle();
  k.join({ t: [0] });
  await settle();
  await k.batch("t", 0, [100, 101]);
  await gc.commit();
  // the topic is deleted and created again; the commit of the reset is refused
  id = NEW;
  k.failNextCommits(10);
  await k.batch("t", 0, [102]);
  assert.deepEqual(recreated, ["t 0"]);
  assert.deepEqual(k.seeks, ["t/0@0"]);
  k.fetch();
  // the rebalance keeps the partition; kafkajs resumes it from the group's commit (102, the old topic's)
  k.failNextCommits(0);
  k.join({ t: [0] });
  await settle();
  await k.batch("t", 0, [102, 103]);
  assert.deepEqual(k.seeks, ["t/0@0", "t/0@0"], "sought to 0 again");
  k.fetch();
  await k.batch("t", 0, [0, 1]);
  await gc.commit();
  assert.deepEqual(handed, ["100", "101", "0", "1"], "the new topic from its start, nothing of it skipped");
  assert.deepEqual(k.commits.at(-1), [
    { topic: "t", partition: 0, offset: "2", metadata: `topic-id:${NEW};from-start` },
  ]);
});

test("a kafka-in new to the group during a recreate, given a partition without a commit: read from 0 where its predecessor in this process read the topic as the old id, or where the group commits another partition under any id", async (t) => {
  const none = () =>
    Promise.resolve(new Map<string, Map<number, { offset: string; metadata: string | null }>>());
  // a redeployed node: the instance before it (this process) read the topic as the old id
  const k1 = standIn();
  const first = consumerOf(
    k1.kafka,
    watchOf(() => Promise.resolve(new Map([["t", NEW]])), none),
    {
      lastIds: new Map([["t", OLD]]),
    },
  );
  first.gc.start();
  t.after(() => first.gc.stop());
  await settle();
  k1.join({ t: [0] });
  await settle();
  assert.deepEqual(k1.seeks, ["t/0@0"]);
  // a new member: another one still at its old place committed partition 1 under the old id
  const k2 = standIn();
  const second = consumerOf(
    k2.kafka,
    watchOf(
      () => Promise.resolve(new Map([["t", NEW]])),
      () => Promise.resolve(new Map([["t", new Map([[1, { offset: "80", metadata: `topic-id:${OLD}` }]])]])),
    ),
  );
  second.gc.start();
  t.after(() => second.gc.stop());
  await settle();
  k2.join({ t: [0] });
  await settle();
  assert.deepEqual(k2.seeks, ["t/0@0"]);
});

test("ordered mode, a topic deleted: its batches wait for it once, not each for as long again (the wait is the topic's, not the batch's)", async (t) => {
  const k = standIn();
  let gone = false;
  const watch = watchOf(
    () => Promise.resolve(new Map(gone ? [] : [["t", NEW]])),
    () =>
      Promise.resolve(
        new Map([
          [
            "t",
            new Map([
              [0, { offset: "5", metadata: `topic-id:${NEW}` }],
              [1, { offset: "5", metadata: `topic-id:${NEW}` }],
            ]),
          ],
        ]),
      ),
  );
  const handed: string[] = [];
  const states: string[] = [];
  const { gc } = consumerOf(k.kafka, watch, {
    ordered: true,
    onRecord: (o) => handed.push(o),
    states,
    deletedAfterMs: 300,
  });
  gc.start();
  t.after(() => gc.stop());
  await settle();
  k.join({ t: [0, 1] });
  await settle();
  gone = true;
  await k.batch("t", 0, [5]);
  const waits = states.filter((s) => s.startsWith("reconnecting")).length;
  assert.ok(waits > 0, "the first batch waited for the topic");
  await k.batch("t", 1, [5]);
  assert.equal(
    states.filter((s) => s.startsWith("reconnecting")).length,
    waits,
    "the second did not wait again",
  );
  assert.deepEqual(handed, ["5", "5"]);
});

test("review 27 N1: a partition without a commit in a group that commits others under the topic's current id (no record reached it since the group began at latest) starts where 'start from' says, not at 0", async (t) => {
  const k = standIn();
  const { gc } = consumerOf(
    k.kafka,
    watchOf(
      () => Promise.resolve(new Map([["t", NEW]])),
      () => Promise.resolve(new Map([["t", new Map([[0, { offset: "6", metadata: `topic-id:${NEW}` }]])]])),
    ),
  );
  gc.start();
  t.after(() => gc.stop());
  await settle();
  k.join({ t: [0, 1] });
  await settle();
  assert.deepEqual(k.seeks, [], "neither partition read again from its start");
});

test("review 27 N3: a kafka-in redeployed while the reset to 0 it owed was never confirmed: its successor in the process pays it, reading the partition from 0", async (t) => {
  const lastIds = new Map<string, string>();
  const resets = new Map<string, { topic: string; partition: number }>();
  let id = OLD;
  let commits = new Map([["t", new Map([[0, { offset: "100", metadata: `topic-id:${OLD}` }]])]]);
  const watch = () =>
    watchOf(
      () => Promise.resolve(new Map([["t", id]])),
      () => Promise.resolve(commits),
    );
  const k1 = standIn();
  const first = consumerOf(k1.kafka, watch(), { ordered: true, lastIds, resets });
  first.gc.start();
  await settle();
  k1.join({ t: [0] });
  await settle();
  // the topic is recreated; every commit of the reset is refused (the group rebalances)
  id = NEW;
  k1.failNextCommits(100);
  await k1.batch("t", 0, [100]);
  assert.deepEqual(k1.seeks, ["t/0@0"]);
  await first.gc.stop();
  // Kafka deleted the group's commit with the topic
  commits = new Map();
  const k2 = standIn();
  const second = consumerOf(k2.kafka, watch(), { ordered: true, lastIds, resets });
  second.gc.start();
  t.after(() => second.gc.stop());
  await settle();
  k2.join({ t: [0] });
  await settle();
  assert.deepEqual(k2.seeks, ["t/0@0"], "read from 0, not from where 'start from' says");
  assert.deepEqual(k2.commits.at(-1), [
    { topic: "t", partition: 0, offset: "0", metadata: `topic-id:${NEW};from-start` },
  ]);
});

test("issue 13 audit L1: a reset to 0 owed for a partition the rebalance takes away is kept: given back with no commit, it is read from 0", async (t) => {
  let id = OLD;
  let commits = new Map([["t", new Map([[0, { offset: "100", metadata: `topic-id:${OLD}` }]])]]);
  const k = standIn();
  const { gc } = consumerOf(
    k.kafka,
    watchOf(
      () => Promise.resolve(new Map([["t", id]])),
      () => Promise.resolve(commits),
    ),
    { ordered: true },
  );
  gc.start();
  t.after(() => gc.stop());
  await settle();
  k.join({ t: [0] });
  await settle();
  // the topic is recreated; the commit of the reset is refused (the group rebalances)
  id = NEW;
  k.failNextCommits(100);
  await k.batch("t", 0, [100]);
  assert.deepEqual(k.seeks, ["t/0@0"]);
  // the partition goes away for a while (the topic briefly unassigned), Kafka deleted its commit
  k.join({ t: [] });
  await settle();
  commits = new Map();
  k.failNextCommits(0);
  k.join({ t: [0] });
  await settle();
  assert.deepEqual(k.seeks, ["t/0@0", "t/0@0"], "read from 0 again, not from 'latest'");
});

test("issue 13 audit L1: a member in another process given a partition of a recreated topic without a commit reads it from 0 when a commit of the group says it reads that topic id from its start", async (t) => {
  // member A restarted both partitions; Kafka confirmed partition 0's commit (with the mark), refused 1's
  const fromA = new Map([["t", new Map([[0, { offset: "5", metadata: `topic-id:${NEW};from-start` }]])]]);
  const k = standIn();
  const b = consumerOf(
    k.kafka,
    watchOf(
      () => Promise.resolve(new Map([["t", NEW]])),
      () => Promise.resolve(fromA),
    ),
  );
  b.gc.start();
  t.after(() => b.gc.stop());
  await settle();
  k.join({ t: [1] });
  await settle();
  assert.deepEqual(k.seeks, ["t/1@0"], "from its start: the group reads this topic id from its start");
  assert.deepEqual(b.recreated, ["t 1"]);
  // its own commits carry the mark on
  k.fetch();
  await k.batch("t", 1, [0, 1]);
  await b.gc.commit();
  assert.deepEqual(k.commits.at(-1), [
    { topic: "t", partition: 1, offset: "2", metadata: `topic-id:${NEW};from-start` },
  ]);

  // without the mark (a group that began at "latest" on this topic), "start from" holds
  const k2 = standIn();
  const c = consumerOf(
    k2.kafka,
    watchOf(
      () => Promise.resolve(new Map([["t", NEW]])),
      () => Promise.resolve(new Map([["t", new Map([[0, { offset: "5", metadata: `topic-id:${NEW}` }]])]])),
    ),
  );
  c.gc.start();
  t.after(() => c.gc.stop());
  await settle();
  k2.join({ t: [1] });
  await settle();
  assert.deepEqual(k2.seeks, []);
});

test("issue 13 audit L1: readAfresh with the group reading the topic id from its start; an owed reset paid by a marked commit of the new topic", async (t) => {
  assert.equal(readAfresh(undefined, NEW, known({ fromStart: true })), true);
  assert.equal(readAfresh({ offset: "-1", metadata: null }, NEW, known({ fromStart: true })), true);
  assert.equal(
    readAfresh({ offset: "7", metadata: `topic-id:${NEW};from-start` }, NEW, known({ fromStart: true })),
    false,
    "a commit of this id is where to go on",
  );
  assert.equal(readAfresh({ offset: "7", metadata: `topic-id:${OLD};from-start` }, NEW, known()), true);
  // a reset owed here; another member read the partition from its start since and committed 7
  const resets = new Map([["0\u0000t", { topic: "t", partition: 0 }]]);
  const k = standIn();
  const { gc } = consumerOf(
    k.kafka,
    watchOf(
      () => Promise.resolve(new Map([["t", NEW]])),
      () =>
        Promise.resolve(
          new Map([["t", new Map([[0, { offset: "7", metadata: `topic-id:${NEW};from-start` }]])]]),
        ),
    ),
    { resets },
  );
  gc.start();
  t.after(() => gc.stop());
  await settle();
  k.join({ t: [0] });
  await settle();
  assert.deepEqual(k.seeks, [], "paid: read on from the commit");
  assert.equal(resets.size, 0);
});
