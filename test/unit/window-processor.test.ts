// The window node's delivery (src/bridge/window-processor.ts) over an in-memory changelog with Kafka's
// rules (atomic transactions, a new owner fences the old one): crashes at random points, each followed by
// Kafka's redelivery from the committed offset, must give every result of the uninterrupted run, each one
// whole every time it is sent, and commit every record.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Aggregator } from "../../src/bridge/aggregate";
import {
  PartitionWindows,
  type WindowRecord,
  type WindowResult,
  type WindowSpec,
} from "../../src/bridge/window";
import { WindowProcessor, type PendingResult, type StateLog } from "../../src/bridge/window-processor";
import { BridgeError, failureScope } from "../../src/common/errors";

class Fenced extends Error {}

/** A changelog partition as Kafka keeps it: committed transactions only, one owner at a time. */
class MemoryChangelog {
  readonly committed: { name: string; value: Buffer | null }[] = [];
  epoch = 0;
  failNext = 0;
  writes = 0;
  /** A value larger than this is refused as Kafka refuses one past max.message.bytes (changelog.ts). */
  maxValueBytes = Infinity;

  open(): StateLog {
    const mine = ++this.epoch;
    const restored = new Map<string, Buffer>();
    for (const r of this.committed) {
      if (r.value === null) restored.delete(r.name);
      else restored.set(r.name, r.value);
    }
    return {
      restored,
      write: async (records) => {
        await new Promise((r) => setImmediate(r));
        if (mine !== this.epoch) throw new Fenced("fenced");
        if (this.failNext > 0) {
          this.failNext--;
          throw new Error("broker not reachable");
        }
        if (records.some((r) => (r.value?.length ?? 0) > this.maxValueBytes))
          throw new BridgeError(
            "kafka-window.errors.state-too-large",
            "the changelog refused the state",
            false,
          );
        this.writes++;
        this.committed.push(...records.map((r) => ({ ...r })));
      },
      close: () => Promise.resolve(),
    };
  }
}

function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Tumbling windows of `size` ms by event time, final results, the partition's watermark. */
const tumbling = (size: number): WindowSpec => ({
  type: "tumbling",
  by: "time",
  size,
  graceMs: 0,
  emit: "final",
  watermark: "partition",
  maxOpenWindows: 10,
});

const aggregator = new Aggregator([
  { name: "count", kind: "count" },
  { name: "sum", kind: "sum" },
  { name: "some", kind: "collect", limit: 4 },
]);

/** What the engine alone gives for the stream (windows closed by the watermark, none by the end). */
async function uninterrupted(
  spec: WindowSpec,
  records: WindowRecord[],
): Promise<{ results: Map<string, WindowResult>; late: string[] }> {
  const engine = new PartitionWindows(spec, aggregator);
  const results = new Map<string, WindowResult>();
  const late: string[] = [];
  for (const r of records) {
    const o = await engine.add(r);
    for (const res of o.results) results.set(res.id, res);
    if (o.late) late.push(String(r.offset));
  }
  return { results, late };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Tumbling windows of a second of event time, the partition's watermark. */
const SECOND_WINDOWS: WindowSpec = {
  type: "tumbling",
  by: "time",
  size: 1000,
  graceMs: 0,
  emit: "final",
  watermark: "partition",
  maxOpenWindows: 1000,
};

/**
 * kafka-in, the flow and Pulsar around the processor: records are delivered from the committed offset,
 * the results "published" and settled; `crashes` times the processor is dropped mid-stream and a new one
 * takes over from what the changelog holds.
 */
async function runWithCrashes(seed: number, spec: WindowSpec, records: WindowRecord[], crashes: number) {
  const rand = random(seed);
  const log = new MemoryChangelog();
  const done = new Array<boolean>(records.length).fill(false);
  const published: PendingResult[] = [];
  /** Late records the flow got (and kept: those before the last commit when a crash comes). */
  const lateSent: string[] = [];
  let incarnation = 0;
  let processor: WindowProcessor | undefined;
  const start = () => {
    const mine = ++incarnation;
    const p: WindowProcessor = new WindowProcessor(
      {
        spec,
        aggregator,
        openLog: () => Promise.resolve(log.open()),
        checkpointMs: 1,
        retryMs: 1,
        isFenced: (e) => e instanceof Fenced,
      },
      {
        result: (r) => {
          if (mine !== incarnation) return;
          published.push(structuredClone(r));
          // the flow settles it a little later, or fails it now and then
          setTimeout(
            () => {
              if (mine !== incarnation) return;
              if (rand() < 0.1) p.resultFailed(r.topic, r.partition, r.seq);
              else p.resultSettled(r.topic, r.partition, r.seq);
            },
            Math.floor(rand() * 3),
          );
        },
        changed: () => undefined,
        checkpointFailed: () => undefined,
      },
    );
    return p;
  };
  const committed = () => {
    let i = 0;
    while (i < done.length && done[i]) i++;
    return i;
  };
  const deliverFrom = (from: number, to: number) => {
    const mine = incarnation;
    const p = processor as WindowProcessor;
    for (let i = from; i < to; i++) {
      const r = records[i];
      p.input(
        { topic: "t", partition: 0, offset: String(r.offset), key: r.key, time: r.time, value: r.value },
        {
          done: (err) => {
            if (mine === incarnation && err === undefined) done[i] = true;
          },
          late: () => {
            if (mine === incarnation) lateSent.push(String(r.offset));
          },
        },
      );
    }
  };
  const crashAt = new Set(Array.from({ length: crashes }, () => Math.floor(rand() * records.length)));
  processor = start();
  let next = 0;
  // kafka-in commits now and then (its commit interval): a crash goes back to the last commit
  let lastCommit = 0;
  while (next < records.length) {
    if (rand() < 0.3) lastCommit = committed();
    const to = Math.min(records.length, next + 1 + Math.floor(rand() * 8));
    deliverFrom(next, to);
    next = to;
    if (rand() < 0.3) log.failNext++;
    await sleep(Math.floor(rand() * 3));
    if ([...crashAt].some((c) => c < next)) {
      for (const c of [...crashAt]) if (c < next) crashAt.delete(c);
      // the process dies: nothing more of it counts; Kafka delivers again from the committed offset
      void processor.close();
      processor = start();
      next = lastCommit;
      done.fill(false, lastCommit);
      // what the flow did with late records past the commit may be lost with the process
      for (let i = lateSent.length - 1; i >= 0; i--)
        if (Number(lateSent[i]) >= lastCommit) lateSent.splice(i, 1);
    }
  }
  // the rest settles
  for (let i = 0; i < 400 && committed() < records.length; i++) await sleep(5);
  for (let i = 0; i < 50 && (processor.pendingResults > 0 || log.failNext > 0); i++) await sleep(5);
  await sleep(20);
  await processor.close();
  return { published, committed: committed(), lateSent, log };
}

function records(rand: () => number, n: number): WindowRecord[] {
  const out: WindowRecord[] = [];
  let t = 10_000;
  for (let i = 0; i < n; i++) {
    t += Math.floor(rand() * 6);
    out.push({
      key: `k${Math.floor(rand() * 4)}`,
      time: t - Math.floor(rand() * 25),
      offset: BigInt(i),
      value: Math.floor(rand() * 50),
    });
  }
  return out;
}

test("crashes at random points: every result of the uninterrupted run is sent, whole each time; every record commits; late ones reach the late output", async () => {
  let crashesSeen = 0;
  let latesSeen = 0;
  for (let seed = 1; seed <= 25; seed++) {
    const rand = random(seed * 7919);
    const input = records(rand, 120);
    const base = {
      graceMs: 5,
      emit: "final" as const,
      watermark: "partition" as const,
      maxOpenWindows: 10_000,
    };
    const specs: WindowSpec[] = [
      { ...base, type: "tumbling", by: "time", size: 20 },
      { ...base, type: "hopping", by: "time", size: 30, advance: 10 },
      { ...base, type: "sliding", by: "time", size: 15 },
      { ...base, type: "tumbling", by: "count", size: 5 },
    ];
    for (const spec of specs) {
      const { results: want, late } = await uninterrupted(spec, input);
      latesSeen += late.length;
      const crashes = 1 + Math.floor(rand() * 3);
      crashesSeen += crashes;
      const got = await runWithCrashes(seed, spec, input, crashes);
      const where = `seed ${seed}, ${spec.type} by ${spec.by}`;
      assert.equal(got.committed, input.length, `every record committed, ${where}`);
      const byId = new Map<string, WindowResult>();
      for (const p of got.published) {
        const expected = want.get(p.result.id);
        assert.ok(expected, `${p.result.id} is a result of the uninterrupted run, ${where}`);
        assert.deepEqual(p.result, expected, `${p.result.id} whole, ${where}`);
        byId.set(p.result.id, p.result);
      }
      assert.deepEqual([...byId.keys()].sort(), [...want.keys()].sort(), `no result missing, ${where}`);
      for (const o of late)
        assert.ok(got.lateSent.includes(o), `late record ${o} sent to the late output, ${where}`);
    }
  }
  assert.ok(crashesSeen > 50);
  assert.ok(latesSeen > 0, "some records were late");
});

test("a record is done only once a checkpoint holding it is committed; a failed checkpoint is tried again", async () => {
  const log = new MemoryChangelog();
  const spec = tumbling(100);
  const results: PendingResult[] = [];
  const failures: unknown[] = [];
  const p = new WindowProcessor(
    { spec, aggregator, openLog: () => Promise.resolve(log.open()), checkpointMs: 5, retryMs: 5 },
    {
      result: (r) => results.push(r),
      changed: () => undefined,
      checkpointFailed: (_t, _p, e) => failures.push(e),
    },
  );
  let doneAt = -1;
  log.failNext = 2;
  p.input(
    { topic: "t", partition: 0, offset: "0", key: "a", time: 1, value: 3 },
    { done: () => (doneAt = log.writes), late: () => undefined },
  );
  await sleep(2);
  assert.equal(doneAt, -1, "not done before its checkpoint");
  for (let i = 0; i < 100 && doneAt < 0; i++) await sleep(5);
  assert.equal(doneAt, 1, "done after the first committed checkpoint");
  assert.equal(failures.length, 2, "the two failed checkpoints were reported");
  // the next window's record closes the first: its result comes after the checkpoint that holds it
  p.input(
    { topic: "t", partition: 0, offset: "1", key: "a", time: 150, value: 4 },
    { done: () => undefined, late: () => undefined },
  );
  for (let i = 0; i < 100 && results.length === 0; i++) await sleep(5);
  assert.equal(results.length, 1);
  assert.deepEqual(results[0]?.result.payload, { count: 1, sum: 3, some: [3] });
  assert.ok(
    log.committed.some((r) => r.name === "r:0" && r.value !== null),
    "the result is in the changelog",
  );
  p.resultSettled("t", 0, 0);
  for (let i = 0; i < 100 && !log.committed.some((r) => r.name === "r:0" && r.value === null); i++)
    await sleep(5);
  assert.ok(
    log.committed.some((r) => r.name === "r:0" && r.value === null),
    "a settled result leaves the changelog",
  );
  await p.close();
});

test("records that reach the window out of offset order, twice, or after one that failed are refused with the reason, never counted as applied (review 16: they were taken for redeliveries and committed uncounted)", async () => {
  const log = new MemoryChangelog();
  const spec = SECOND_WINDOWS;
  const results: PendingResult[] = [];
  const p = new WindowProcessor(
    { spec, aggregator, openLog: () => Promise.resolve(log.open()), checkpointMs: 5 },
    { result: (r) => results.push(r), changed: () => undefined, checkpointFailed: () => undefined },
  );
  const outcome = (offset: number, value: unknown, epoch = 1, attempt = 1) =>
    new Promise<string>((resolve) =>
      p.input(
        { topic: "t", partition: 0, offset: String(offset), key: "k", time: offset, value, epoch, attempt },
        {
          done: (err) => resolve(err === undefined ? "done" : describe(err)),
          late: () => undefined,
        },
      ),
    );
  const describe = (err: unknown) => (err as { key?: string }).key ?? String(err);
  assert.equal(await outcome(1, 1), "done");
  // an async node before the window let 3 overtake 2: 2 is applied when it comes (even after 3 is
  // durable), not taken for a record the state holds
  assert.equal(await outcome(3, 1), "done");
  assert.equal(await outcome(2, 1), "done");
  assert.equal(await outcome(2, 1, 1, 2), "done", "its redelivery is not counted again");
  // a split before the window: a second msg of offset 4, same try
  const first = outcome(4, 1);
  assert.equal(await outcome(4, 1), "kafka-window.errors.split-record");
  assert.equal(await first, "done");
  // offset 5 fails (not a number): 6 of the same pass waits, not applied past it
  assert.match(await outcome(5, "abc"), /not-a-number/);
  assert.equal(await outcome(6, 1), "kafka-window.errors.waiting");
  // kafka-in's replay (a new pass) brings 5 again (fixed? no: still refused), then, once it was
  // dead-lettered, a later pass goes past it
  assert.match(await outcome(5, "abc", 2, 2), /not-a-number/);
  assert.equal(await outcome(6, 1, 3, 3), "done");
  // the redelivery of an applied record (a new try) is not refused
  assert.equal(await outcome(6, 1, 4, 4), "done");
  // a record far later closes the window [0, 1000): it counted 1, 2, 3, 4 and 6 once each
  assert.equal(await outcome(5000, 1, 4, 1), "done");
  await new Promise((r) => setTimeout(r, 50));
  const first0 = results.find((r) => r.result.start === 0);
  assert.equal(first0?.result.count, 5);
  await p.close();
});

test("state restored under other window settings is refused with the reason (a sum's accumulator read as a mean gave null); a failing result is sent again after longer and longer pauses", async () => {
  const log = new MemoryChangelog();
  const spec = SECOND_WINDOWS;
  const sent: number[] = [];
  const make = (agg: Aggregator, s: WindowSpec, reduceState?: string, into = log) =>
    new WindowProcessor(
      {
        spec: s,
        aggregator: agg,
        openLog: () => Promise.resolve(into.open()),
        checkpointMs: 5,
        retryMs: 20,
        reduceState,
      },
      { result: () => sent.push(Date.now()), changed: () => undefined, checkpointFailed: () => undefined },
    );
  const input = (p: WindowProcessor, offset: number) =>
    new Promise<unknown>((resolve) =>
      p.input(
        {
          topic: "t",
          partition: 0,
          offset: String(offset),
          key: "k",
          time: offset,
          value: 1,
          epoch: 1,
          attempt: 1,
        },
        { done: (err) => resolve(err), late: () => undefined },
      ),
    );
  const sum = new Aggregator([{ name: "total", kind: "sum" }]);
  const first = make(sum, spec);
  assert.equal(await input(first, 1), undefined);
  await first.close();
  const mean = make(new Aggregator([{ name: "total", kind: "mean" }]), spec);
  assert.match(String(await input(mean, 2)), /other window settings/);
  await mean.close();
  const bigger = make(sum, { ...spec, size: 5000 });
  assert.match(String(await input(bigger, 2)), /other window settings \(size 1000 → 5000\)/);
  await bigger.close();
  // a custom reduce whose step changed: its accumulators were made by the other one
  const reduce = () =>
    new Aggregator([{ name: "total", kind: "sum" }], {
      init: () => Promise.resolve(0),
      accumulate: (a) => Promise.resolve(a),
      result: (a) => Promise.resolve(a),
    });
  const custom = make(reduce(), spec, '["0","A + payload"]');
  assert.match(String(await input(custom, 2)), /other window settings \(reduce false → /);
  await custom.close();
  // the grace and the emit mode only say when windows close and what is sent: the state goes on
  const other = new MemoryChangelog();
  const before = make(sum, spec, undefined, other);
  assert.equal(await input(before, 1), undefined);
  await before.close();
  const after = make(sum, { ...spec, graceMs: spec.graceMs + 500, emit: "current" }, undefined, other);
  assert.equal(await input(after, 2), undefined);
  await after.close();
  sent.length = 0; // its emit mode sent the current result
  // and so does the open-window limit
  const again = make(sum, { ...spec, maxOpenWindows: 5 });
  assert.equal(await input(again, 2), undefined);
  // a result that keeps failing: the pauses double (20, 40, 80 ms)
  assert.equal(await input(again, 3000), undefined);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(sent.length, 1, "the window [0, 1000) closed");
  const pauses: number[] = [];
  for (let i = 0; i < 3; i++) {
    const n: number = sent.length;
    const from = Date.now();
    again.resultFailed("t", 0, 0);
    while (sent.length === n) await new Promise((r) => setTimeout(r, 2));
    pauses.push(Date.now() - from);
  }
  // timers never fire early: a lower bound holds on a loaded machine too (without the doubling: ~20 ms)
  assert.ok((pauses[2] ?? 0) >= 78, `the third pause is 80 ms: ${pauses.join(", ")} ms`);
  await again.close();
});

test("review 17: the first records of a fresh partition reordered are counted once each; failed results go again in their order from the lowest failed one", async () => {
  const log = new MemoryChangelog();
  const spec = SECOND_WINDOWS;
  const sent: PendingResult[] = [];
  const p = new WindowProcessor(
    { spec, aggregator, openLog: () => Promise.resolve(log.open()), checkpointMs: 5, retryMs: 10 },
    { result: (r) => sent.push(r), changed: () => undefined, checkpointFailed: () => undefined },
  );
  const input = (offset: number, time: number) =>
    new Promise<unknown>((resolve) =>
      p.input(
        { topic: "t", partition: 0, offset: String(offset), key: "k", time, value: 1, epoch: 1, attempt: 1 },
        { done: (err) => resolve(err), late: () => undefined },
      ),
    );
  // 11 overtakes 10, the partition's first record, and is checkpointed before 10 comes
  assert.equal(await input(11, 100), undefined);
  assert.equal(await input(10, 200), undefined);
  // three windows close one after the other
  for (const [o, t] of [
    [12, 1500],
    [13, 2500],
    [14, 3500],
  ] as const)
    assert.equal(await input(o, t), undefined);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(
    sent.map((r) => [r.seq, r.result.count]),
    [
      [0, 2],
      [1, 1],
      [2, 1],
    ],
    "the first window counted 10 and 11",
  );
  // seq 0 fails, then 2 and 1 (refused behind it): they go again once, in order, from 0
  sent.length = 0;
  p.resultFailed("t", 0, 0);
  p.resultFailed("t", 0, 2);
  p.resultFailed("t", 0, 1);
  await new Promise((r) => setTimeout(r, 40));
  assert.deepEqual(
    sent.map((r) => r.seq),
    [0, 1, 2],
  );
  await p.close();
});

test("a source topic deleted and created again (a new topic id): the old topic's state is dropped with a warning (its offsets would pass the new records over), its pending results still go, numbers go on; a state begun afresh (a changelog recreated empty) has a new incarnation, a restore keeps it", async () => {
  const log = new MemoryChangelog();
  const spec = SECOND_WINDOWS;
  let id = "cluster/A";
  const sent: PendingResult[] = [];
  const warnings: string[] = [];
  const make = (into: MemoryChangelog) =>
    new WindowProcessor(
      {
        spec,
        aggregator,
        openLog: () => Promise.resolve(into.open()),
        checkpointMs: 5,
        identityOf: () => Promise.resolve(id),
      },
      {
        result: (r) => sent.push(r),
        changed: () => undefined,
        checkpointFailed: () => undefined,
        warn: (m) => warnings.push(m),
      },
    );
  const input = (p: WindowProcessor, offset: number, time: number) =>
    new Promise<unknown>((resolve) =>
      p.input(
        { topic: "t", partition: 0, offset: String(offset), key: "k", time, value: 1, epoch: 1, attempt: 1 },
        { done: (err) => resolve(err), late: () => undefined },
      ),
    );
  const first = make(log);
  for (const [o, time] of [
    [0, 0],
    [1, 100],
    [2, 200],
    [3, 1500],
  ])
    assert.equal(await input(first, o, time), undefined);
  await sleep(30);
  assert.deepEqual(
    sent.map((r) => [r.seq, r.result.start, r.result.count]),
    [[0, 0, 3]],
    "[0, 1000) closed by offset 3; not settled",
  );
  const incarnation = sent[0]?.incarnation;
  assert.equal(typeof incarnation, "string");
  await first.close();
  // the topic is recreated: offsets from 0 again
  id = "cluster/B";
  sent.length = 0;
  const second = make(log);
  assert.equal(await input(second, 0, 2000), undefined);
  assert.equal(await input(second, 1, 3500), undefined);
  await sleep(30);
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0] ?? "",
    /t was deleted and created again .* 1 key\(s\) of the old topic is dropped/,
  );
  assert.deepEqual(
    sent.map((r) => [r.seq, r.result.start, r.result.count, r.incarnation]),
    [
      [0, 0, 3, incarnation], // pending from before: sent again
      [1, 2000, 1, incarnation], // the new topic's offset 0, counted; the old [1000, 2000) is gone
    ],
  );
  await second.close();
  // the same identity again: the state goes on, no warning
  sent.length = 0;
  const third = make(log);
  assert.equal(await input(third, 2, 4200), undefined);
  await sleep(30);
  assert.equal(warnings.length, 1);
  assert.deepEqual(
    sent.map((r) => [r.seq, r.result.start, r.incarnation]),
    [
      [0, 0, incarnation],
      [1, 2000, incarnation],
      [2, 3000, incarnation],
    ],
  );
  await third.close();
  // a changelog with nothing in it (deleted and created again): a new incarnation
  sent.length = 0;
  const fresh = make(new MemoryChangelog());
  assert.equal(await input(fresh, 0, 0), undefined);
  assert.equal(await input(fresh, 1, 1500), undefined);
  await sleep(30);
  assert.equal(sent[0]?.seq, 0);
  assert.equal(typeof sent[0]?.incarnation, "string");
  assert.notEqual(sent[0]?.incarnation, incarnation);
  await fresh.close();
});

test("a source topic deleted and created again while its partition's state is open (kafka-in reads it from 0 under a new msg.kafka.topicId): the new records are counted, not taken for redeliveries; a late msg of the old topic is refused", async () => {
  const log = new MemoryChangelog();
  const sent: PendingResult[] = [];
  const warnings: string[] = [];
  const asked: (string | undefined)[] = [];
  /** The id Kafka gives the topic now. */
  let current = "A";
  const p = new WindowProcessor(
    {
      spec: SECOND_WINDOWS,
      aggregator,
      openLog: () => Promise.resolve(log.open()),
      checkpointMs: 5,
      identityOf: (_topic, topicId) => {
        asked.push(topicId);
        return Promise.resolve(`cluster/${topicId ?? current}`);
      },
    },
    {
      result: (r) => sent.push(r),
      changed: () => undefined,
      checkpointFailed: () => undefined,
      warn: (m) => warnings.push(m),
    },
  );
  const input = (offset: number, time: number, topicId: string) =>
    new Promise<unknown>((resolve) =>
      p.input(
        {
          topic: "t",
          partition: 0,
          offset: String(offset),
          key: "k",
          time,
          value: 1,
          epoch: 1,
          attempt: 1,
          topicId,
        },
        { done: (err) => resolve(err), late: () => undefined },
      ),
    );
  for (const [o, time] of [
    [0, 0],
    [1, 100],
    [2, 200],
    [3, 1500],
  ] as const)
    assert.equal(await input(o, time, "A"), undefined);
  await sleep(30);
  assert.deepEqual(
    sent.map((r) => [r.result.start, r.result.count]),
    [[0, 3]],
  );
  // the new topic's records, offsets from 0 again
  current = "B";
  for (const [o, time] of [
    [0, 2000],
    [1, 2100],
    [2, 3500],
  ] as const)
    assert.equal(await input(o, time, "B"), undefined);
  await sleep(30);
  assert.deepEqual(asked, ["A", undefined, "B"], "Kafka's current id asked once, when the id changed");
  assert.equal(warnings.length, 1, warnings.join(" | "));
  assert.deepEqual(
    sent.map((r) => [r.result.start, r.result.count]),
    [
      [0, 3],
      [0, 3], // pending from before (not settled): sent again when the state is opened again
      [2000, 2], // the new topic's offsets 0 and 1, closed by its offset 2
    ],
  );
  const late = await input(4, 1600, "A");
  assert.match(String(late), /a record of the topic before it was recreated/);
  await p.close();
});

test("a partition revoked (or kept and read again from its commit): its state is given up and restored from the changelog when its records come again; nothing is counted twice", async () => {
  const log = new MemoryChangelog();
  const sent: PendingResult[] = [];
  const p = new WindowProcessor(
    { spec: SECOND_WINDOWS, aggregator, openLog: () => Promise.resolve(log.open()), checkpointMs: 5 },
    { result: (r) => sent.push(r), changed: () => undefined, checkpointFailed: () => undefined },
  );
  const input = (offset: number, time: number) =>
    new Promise<unknown>((resolve) =>
      p.input(
        { topic: "t", partition: 0, offset: String(offset), key: "k", time, value: 1, epoch: 1, attempt: 1 },
        { done: (err) => resolve(err), late: () => undefined },
      ),
    );
  for (const [o, time] of [
    [0, 0],
    [1, 100],
  ] as const)
    assert.equal(await input(o, time), undefined);
  // on its way when the rebalance comes (kafka-in forgets it and delivers it again)
  const pending = input(2, 200);
  const opened = log.epoch;
  await p.revoked([{ topic: "t", partition: 0 }]);
  await pending;
  // kafka-in reads the partition again from its commit (2)
  assert.equal(await input(2, 200), undefined);
  assert.equal(await input(3, 1500), undefined);
  await sleep(30);
  assert.ok(log.epoch > opened, "opened again (restored from the changelog)");
  assert.deepEqual(
    sent.map((r) => [r.seq, r.result.start, r.result.count]),
    [[0, 0, 3]],
  );
  await p.close();
});

test("review 27 W1, W2: a state opened by a record without msg.kafka.topicId takes the id of the records that follow when Kafka named it so; a late msg of the old topic reaching a state opened under the new id is refused, and the state stays", async () => {
  const log = new MemoryChangelog();
  const sent: PendingResult[] = [];
  const warnings: string[] = [];
  let current = "A";
  const p = new WindowProcessor(
    {
      spec: SECOND_WINDOWS,
      aggregator,
      openLog: () => Promise.resolve(log.open()),
      checkpointMs: 5,
      identityOf: (_topic, topicId) => Promise.resolve(`cluster/${topicId ?? current}`),
    },
    {
      result: (r) => sent.push(r),
      changed: () => undefined,
      checkpointFailed: () => undefined,
      warn: (m) => warnings.push(m),
    },
  );
  const input = (offset: number, time: number, topicId: string | undefined) =>
    new Promise<unknown>((resolve) =>
      p.input(
        {
          topic: "t",
          partition: 0,
          offset: String(offset),
          key: "k",
          time,
          value: 1,
          epoch: 1,
          attempt: 1,
          topicId,
        },
        { done: (err) => resolve(err), late: () => undefined },
      ),
    );
  // W1: the first record was emitted before kafka-in judged the partition (no topic id)
  assert.equal(await input(0, 0, undefined), undefined);
  assert.equal(await input(1, 100, "A"), undefined);
  // the topic is recreated: the new records come under B, from offset 0
  current = "B";
  assert.equal(await input(0, 2000, "B"), undefined);
  assert.equal(await input(1, 3500, "B"), undefined);
  await sleep(30);
  assert.equal(warnings.length, 1, "given up once, for the recreate");
  // W2: a late msg of the old topic (a node before the window held it)
  const late = await input(2, 200, "A");
  assert.match(String(late), /a record of the topic before it was recreated/);
  assert.equal(await input(2, 5000, "B"), undefined);
  await sleep(30);
  assert.equal(warnings.length, 1, "the new topic's state stays");
  assert.deepEqual(
    sent.map((r) => [r.result.start, r.result.count]),
    [
      [2000, 1],
      [3000, 1],
    ],
    "the old topic's open window was given up; the new topic's windows closed in order",
  );
  await p.close();
});

test("issue 14 audit F2: a checkpoint the changelog refuses as too large fails its records as record errors (not tried for ever); the partition goes back to its durable state", async () => {
  const log = new MemoryChangelog();
  const spec = tumbling(1000);
  const failures: unknown[] = [];
  const results: PendingResult[] = [];
  const p = new WindowProcessor(
    { spec, aggregator, openLog: () => Promise.resolve(log.open()), checkpointMs: 5, retryMs: 5 },
    {
      result: (r) => results.push(r),
      changed: () => undefined,
      checkpointFailed: (_t, _p, e) => failures.push(e),
    },
  );
  const outcome = new Map<string, unknown>();
  const input = (offset: number, value: unknown, epoch = 1) =>
    new Promise<void>((resolve) =>
      p.input(
        { topic: "t", partition: 0, offset: String(offset), key: "a", time: offset, value, epoch },
        {
          done: (err) => {
            outcome.set(String(offset), err ?? "ok");
            resolve();
          },
          late: () => undefined,
        },
      ),
    );
  await input(0, 1);
  await input(1, 2);
  // the key's state grows past what the changelog takes
  log.maxValueBytes = [...log.committed].reverse().find((r) => r.name === "k:a")?.value?.length ?? 0;
  await input(2, 123456789.123456);
  const err = outcome.get("2");
  assert.equal(failureScope(err), "record", "a record error: dead-lettered at once, or its partition stops");
  assert.deepEqual(failures, [], "not tried again for ever");
  // kafka-in dead-letters it and goes on (a new pass): the state is the durable one, without record 2
  log.maxValueBytes = Infinity;
  await input(3, 4, 2);
  await input(1500, 0, 2);
  for (let i = 0; i < 100 && results.length === 0; i++) await sleep(5);
  assert.deepEqual(results[0]?.result.payload, { count: 3, sum: 7, some: [1, 2, 4] }, "without record 2");
  await p.close();
});

test("issue 14 review W2: the idle close waits while the source partition is behind (records still on their way after a restart or an outage), and goes once it is not", async () => {
  const log = new MemoryChangelog();
  const spec = tumbling(1000);
  let behind = true;
  let asked = 0;
  const results: PendingResult[] = [];
  const p = new WindowProcessor(
    {
      spec,
      aggregator,
      openLog: () => Promise.resolve(log.open()),
      checkpointMs: 5,
      idleMs: 30,
      behind: () => {
        asked++;
        return Promise.resolve(behind);
      },
    },
    { result: (r) => results.push(r), changed: () => undefined, checkpointFailed: () => undefined },
  );
  await new Promise<void>((resolve) =>
    p.input(
      { topic: "t", partition: 0, offset: "0", key: "a", time: 10, value: 1 },
      { done: () => resolve(), late: () => undefined },
    ),
  );
  await sleep(200);
  assert.ok(asked >= 2, "asked at each idle timeout");
  assert.equal(results.length, 0, "not closed while behind");
  behind = false;
  for (let i = 0; i < 100 && results.length === 0; i++) await sleep(5);
  assert.equal(results.length, 1, "closed once the partition is not behind");
  await p.close();
});
