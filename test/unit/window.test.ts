// The window engine (src/bridge/window.ts) against a straightforward reference: random keys, event
// times out of order, grace periods and lateness; every window type; final and current results; a
// checkpoint taken anywhere in the stream and restored into a new engine gives the same results.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Aggregator, parseAggregations, type AggregationSpec } from "../../src/bridge/aggregate";
import {
  PartitionWindows,
  type WindowRecord,
  type WindowResult,
  type WindowSpec,
} from "../../src/bridge/window";

/** A small seeded generator (mulberry32), so that a failing case can be named by its seed. */
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

const AGGREGATIONS: AggregationSpec[] = [
  { name: "count", kind: "count" },
  { name: "sum", kind: "sum" },
  { name: "min", kind: "min" },
  { name: "max", kind: "max" },
  { name: "mean", kind: "mean" },
  { name: "first", kind: "first" },
  { name: "last", kind: "last" },
  { name: "some", kind: "collect", limit: 3 },
];

interface Expected {
  key: string;
  start: number;
  end: number;
  count: number;
  payload: unknown;
}

/** The aggregations of AGGREGATIONS over a window's records, directly. */
function aggregateOf(members: WindowRecord[]): unknown {
  const values = members.map((m) => m.value as number);
  const byTime = [...members].sort((a, b) => a.time - b.time || Number(a.offset - b.offset));
  return {
    count: members.length,
    sum: values.reduce((a, b) => a + b, 0),
    min: Math.min(...values),
    max: Math.max(...values),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
    first: byTime[0]?.value,
    last: [...members].sort((a, b) => a.time - b.time || Number(a.offset - b.offset)).at(-1)?.value,
    some: byTime.slice(0, 3).map((m) => m.value),
  };
}

/** The windows each record joins, worked out the plain way, and their aggregates. */
function reference(spec: WindowSpec, records: WindowRecord[]): { results: Expected[]; late: Set<bigint> } {
  const members = new Map<string, { key: string; start: number; end: number; records: WindowRecord[] }>();
  const join = (key: string, start: number, end: number, r: WindowRecord) => {
    const id = `${key}|${start}|${end}`;
    let m = members.get(id);
    if (!m) members.set(id, (m = { key, start, end, records: [] }));
    m.records.push(r);
  };
  const late = new Set<bigint>();
  const advance = spec.type === "hopping" ? (spec.advance as number) : spec.size;
  if (spec.by === "count") {
    const seen = new Map<string, number>();
    for (const r of records) {
      const n = seen.get(r.key) ?? 0;
      seen.set(r.key, n + 1);
      for (let s = 0; s <= n; s += advance) if (n < s + spec.size) join(r.key, s, s + spec.size, r);
    }
    return {
      results: [...members.values()].map((m) => ({
        key: m.key,
        start: Math.min(...m.records.map((r) => r.time)),
        end: Math.max(...m.records.map((r) => r.time)) + 1,
        count: m.records.length,
        payload: aggregateOf(m.records),
      })),
      late,
    };
  }
  // the watermark after each record (the record's own time counts)
  const wmAfter: number[] = [];
  let partitionWm = -Infinity;
  const keyWm = new Map<string, number>();
  for (const r of records) {
    if (spec.watermark === "key") {
      const w = Math.max(keyWm.get(r.key) ?? -Infinity, r.time);
      keyWm.set(r.key, w);
      wmAfter.push(w);
    } else wmAfter.push((partitionWm = Math.max(partitionWm, r.time)));
  }
  const open = (end: number, wm: number) => end + spec.graceMs > wm;
  if (spec.type === "sliding") {
    // late: a record whose own window [t - size, t + 1) was closed when it came; every other record
    // opens its window (or one of its time is there) and joins each window that was open when it came
    const onTime = records.filter((r, i) => {
      const ok = open(r.time + 1, wmAfter[i]);
      if (!ok) late.add(r.offset);
      return ok;
    });
    const times = new Set(onTime.map((r) => `${r.key}|${r.time}`));
    for (const w of times) {
      const key = w.slice(0, w.lastIndexOf("|"));
      const t = Number(w.slice(w.lastIndexOf("|") + 1));
      records.forEach((r, i) => {
        if (late.has(r.offset) || r.key !== key || r.time < t - spec.size || r.time > t) return;
        if (open(t + 1, wmAfter[i])) join(key, t - spec.size, t + 1, r);
      });
    }
  } else {
    records.forEach((r, i) => {
      let joined = false;
      for (let s = Math.floor(r.time / advance) * advance; s > r.time - spec.size; s -= advance)
        if (open(s + spec.size, wmAfter[i])) {
          join(r.key, s, s + spec.size, r);
          joined = true;
        }
      if (!joined) late.add(r.offset);
    });
  }
  return {
    results: [...members.values()].map((m) => ({
      key: m.key,
      start: m.start,
      end: m.end,
      count: m.records.length,
      payload: aggregateOf(m.records),
    })),
    late,
  };
}

/** Runs the engine over the records (with a checkpoint and restore after record `restoreAt`). */
async function run(
  spec: WindowSpec,
  records: WindowRecord[],
  restoreAt = -1,
): Promise<{ results: WindowResult[]; late: Set<bigint> }> {
  const aggregator = new Aggregator(AGGREGATIONS);
  let engine = new PartitionWindows(spec, aggregator);
  const results: WindowResult[] = [];
  const late = new Set<bigint>();
  const keys = new Set<string>();
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    keys.add(r.key);
    const o = await engine.add(r);
    results.push(...o.results);
    if (o.late) late.add(r.offset);
    if (i === restoreAt) {
      // what a checkpoint holds goes through JSON, as it would through a Kafka changelog
      const saved = JSON.parse(
        JSON.stringify({
          partition: engine.snapshotPartition(),
          keys: [...keys].map((k) => [k, engine.snapshotKey(k) ?? null]),
        }),
      ) as { partition: ReturnType<typeof engine.snapshotPartition>; keys: [string, never][] };
      engine = new PartitionWindows(spec, aggregator);
      engine.restorePartition(saved.partition);
      for (const [k, s] of saved.keys) engine.restoreKey(k, s ?? undefined);
    }
  }
  results.push(...(await engine.closeAll()));
  return { results, late };
}

function plain(r: WindowResult | Expected): Expected {
  return { key: r.key, start: r.start, end: r.end, count: r.count, payload: r.payload };
}

const sortKey = (e: Expected) =>
  `${e.key}|${String(e.start).padStart(12, "0")}|${String(e.end).padStart(12, "0")}`;

/** Random records of a few keys, event times moving forward with some disorder. */
function records(rand: () => number, n: number, spread: number, disorder: number): WindowRecord[] {
  const out: WindowRecord[] = [];
  let t = 1_000_000;
  for (let i = 0; i < n; i++) {
    t += Math.floor(rand() * spread);
    out.push({
      key: `k${Math.floor(rand() * 3)}`,
      time: Math.max(0, t - Math.floor(rand() * disorder)),
      offset: BigInt(i),
      value: Math.floor(rand() * 100) - 20,
    });
  }
  return out;
}

function specs(rand: () => number): WindowSpec[] {
  const size = 10 + Math.floor(rand() * 50);
  const grace = rand() < 0.3 ? 0 : Math.floor(rand() * 40);
  const watermark = rand() < 0.5 ? "partition" : "key";
  const common = { graceMs: grace, emit: "final" as const, watermark, maxOpenWindows: 100_000 } as const;
  const count = 1 + Math.floor(rand() * 6);
  return [
    { ...common, type: "tumbling", by: "time", size },
    { ...common, type: "hopping", by: "time", size, advance: 1 + Math.floor(rand() * size) },
    { ...common, type: "sliding", by: "time", size },
    { ...common, type: "tumbling", by: "count", size: count },
    { ...common, type: "hopping", by: "count", size: count, advance: 1 + Math.floor(rand() * count) },
  ];
}

test("every window type, final results: the same windows and aggregates as the reference, late records flagged", async () => {
  let cases = 0;
  let lateSeen = 0;
  for (let seed = 1; seed <= 120; seed++) {
    const rand = random(seed);
    const input = records(rand, 5 + Math.floor(rand() * 60), 8, 60);
    for (const spec of specs(rand)) {
      const want = reference(spec, input);
      const got = await run(spec, input);
      const where = `seed ${seed}, ${JSON.stringify(spec)}`;
      assert.deepEqual(
        got.results.map(plain).sort((a, b) => sortKey(a).localeCompare(sortKey(b))),
        want.results.sort((a, b) => sortKey(a).localeCompare(sortKey(b))),
        where,
      );
      assert.deepEqual([...got.late].sort(), [...want.late].sort(), `late records, ${where}`);
      assert.ok(
        got.results.every((r) => r.final),
        where,
      );
      assert.equal(new Set(got.results.map((r) => r.id)).size, got.results.length, `ids unique, ${where}`);
      lateSeen += got.late.size;
      cases++;
    }
  }
  assert.ok(lateSeen > 0, "some cases had late records");
  assert.equal(cases, 600);
});

test("a window's final result comes once the watermark has passed its end plus the grace period, not before", async () => {
  for (let seed = 1; seed <= 60; seed++) {
    const rand = random(seed);
    const input = records(rand, 40, 8, 30);
    for (const spec of specs(rand).filter((s) => s.by === "time")) {
      const engine = new PartitionWindows(spec, new Aggregator(AGGREGATIONS));
      const wm = new Map<string, number>();
      let partitionWm = -Infinity;
      for (const r of input) {
        partitionWm = Math.max(partitionWm, r.time);
        wm.set(r.key, Math.max(wm.get(r.key) ?? -Infinity, r.time));
        for (const res of (await engine.add(r)).results) {
          const mark = spec.watermark === "key" ? (wm.get(res.key) as number) : partitionWm;
          assert.ok(res.end + spec.graceMs <= mark, `seed ${seed}: ${res.id} closed at watermark ${mark}`);
        }
      }
    }
  }
});

test("current results: one per update, each with its own id; the last of a window is the reference's aggregate", async () => {
  for (let seed = 1; seed <= 60; seed++) {
    const rand = random(seed);
    const input = records(rand, 30, 8, 40);
    for (const s of specs(rand)) {
      const spec: WindowSpec = { ...s, emit: "current" };
      const want = reference(spec, input);
      const got = await run(spec, input);
      const where = `seed ${seed}, ${JSON.stringify(spec)}`;
      assert.ok(
        got.results.every((r) => !r.final),
        where,
      );
      assert.equal(new Set(got.results.map((r) => r.id)).size, got.results.length, `ids unique, ${where}`);
      const last = new Map<string, WindowResult>();
      // count windows are named by their first record (their span grows as records come)
      for (const r of got.results)
        last.set(
          spec.by === "count" ? r.id.slice(0, r.id.lastIndexOf("/")) : `${r.key}|${r.start}|${r.end}`,
          r,
        );
      assert.deepEqual(
        [...last.values()].map(plain).sort((a, b) => sortKey(a).localeCompare(sortKey(b))),
        want.results.sort((a, b) => sortKey(a).localeCompare(sortKey(b))),
        where,
      );
    }
  }
});

test("a checkpoint anywhere in the stream, restored into a new engine, gives the same results with the same ids", async () => {
  for (let seed = 1; seed <= 80; seed++) {
    const rand = random(seed);
    const input = records(rand, 40, 8, 40);
    for (const spec of specs(rand)) {
      const whole = await run(spec, input);
      const at = Math.floor(rand() * input.length);
      const restored = await run(spec, input, at);
      assert.deepEqual(
        restored.results,
        whole.results,
        `seed ${seed}, restored after record ${at}, ${JSON.stringify(spec)}`,
      );
    }
  }
});

test("a value an aggregation refuses fails the record and changes nothing: the next records count as if it never came", async () => {
  const spec: WindowSpec = {
    type: "hopping",
    by: "time",
    size: 20,
    advance: 5,
    graceMs: 0,
    emit: "final",
    watermark: "partition",
    maxOpenWindows: 100,
  };
  const input = [1, 2, 3, 4, 5, 6].map((i) => ({ key: "k", time: i * 7, offset: BigInt(i), value: i }));
  const bad = { key: "k", time: 30, offset: 99n, value: "not a number" };
  const aggregator = new Aggregator(AGGREGATIONS);
  const withBad = new PartitionWindows(spec, aggregator);
  const results: WindowResult[] = [];
  for (const [i, r] of input.entries()) {
    if (i === 4) await assert.rejects(withBad.add(bad), /sum needs a number/);
    results.push(...(await withBad.add(r)).results);
  }
  results.push(...(await withBad.closeAll()));
  assert.deepEqual(results, (await run(spec, input)).results);
});

test("the open window limit: a record that would open more fails with the reason, and nothing changes", async () => {
  const spec: WindowSpec = {
    type: "tumbling",
    by: "time",
    size: 1000,
    graceMs: 0,
    emit: "final",
    watermark: "partition",
    maxOpenWindows: 2,
  };
  const engine = new PartitionWindows(spec, new Aggregator([{ name: "", kind: "count" }]));
  await engine.add({ key: "a", time: 1, offset: 0n, value: 1 });
  await engine.add({ key: "b", time: 2, offset: 1n, value: 1 });
  await assert.rejects(engine.add({ key: "c", time: 3, offset: 2n, value: 1 }), /limit of 2 open windows/);
  assert.equal(engine.openWindows, 2);
  const closed = (await engine.add({ key: "a", time: 1000, offset: 3n, value: 1 })).results;
  assert.deepEqual(
    closed.map((r) => [r.key, r.payload]),
    [
      ["a", 1],
      ["b", 1],
    ],
  );
  // refused while its watermark would close another window: that window still closes with the next record
  const hopping = new PartitionWindows(
    { ...spec, type: "hopping", size: 3000, advance: 1000, maxOpenWindows: 3 },
    new Aggregator([{ name: "", kind: "count" }]),
  );
  await hopping.add({ key: "a", time: 1, offset: 0n, value: 1 });
  await assert.rejects(
    hopping.add({ key: "b", time: 1000, offset: 1n, value: 1 }),
    /limit of 3 open windows/,
  );
  const next = (await hopping.add({ key: "a", time: 1000, offset: 2n, value: 1 })).results;
  assert.deepEqual(
    next.map((r) => [r.key, r.start, r.payload]),
    [["a", -2000, 1]],
  );
});

test("the spec is checked: sizes, advances, grace, sliding by count", () => {
  const base: WindowSpec = {
    type: "tumbling",
    by: "time",
    size: 10,
    graceMs: 0,
    emit: "final",
    watermark: "partition",
    maxOpenWindows: 10,
  };
  const agg = new Aggregator([{ name: "", kind: "count" }]);
  assert.throws(() => new PartitionWindows({ ...base, size: 0 }, agg), /size must be a whole number/);
  assert.throws(
    () => new PartitionWindows({ ...base, type: "hopping", advance: 11 }, agg),
    /advance must be a whole number from 1 to its size/,
  );
  assert.throws(
    () => new PartitionWindows({ ...base, type: "sliding", by: "count" }, agg),
    /by event time only/,
  );
  assert.throws(() => new PartitionWindows({ ...base, graceMs: -1 }, agg), /grace period/);
  assert.throws(() => new Aggregator([]), /at least one aggregation/);
});

test("the window node's aggregation list: kind or name:kind, collect(limit); a bad or repeated item is refused with the reason", () => {
  assert.deepEqual(parseAggregations("mean"), [{ name: "", kind: "mean" }]);
  assert.deepEqual(parseAggregations(" avg:mean, peak : max,n:count , last:collect(50)"), [
    { name: "avg", kind: "mean" },
    { name: "peak", kind: "max" },
    { name: "n", kind: "count" },
    { name: "last", kind: "collect", limit: 50 },
  ]);
  assert.deepEqual(parseAggregations(""), []);
  assert.throws(() => parseAggregations("avg:median"), /"avg:median" is not an aggregation/);
  assert.throws(() => parseAggregations("max(3)"), /only collect takes a limit/);
  assert.throws(() => parseAggregations("max, max"), /two aggregations are named "max"/);
  assert.throws(() => parseAggregations("collect(0)"), /between 1 and/);
});

test("issue 14 audit F4: an idle close closes the windows that ended by the clock (once), running ones stay open, a later record of a closed one is late", async () => {
  const aggregator = new Aggregator(parseAggregations("n:count"));
  for (const watermark of ["partition", "key"] as const) {
    const engine = new PartitionWindows(
      {
        type: "tumbling",
        by: "time",
        size: 60_000,
        graceMs: 0,
        emit: "final",
        watermark,
        maxOpenWindows: 100,
      },
      aggregator,
    );
    let offset = 0n;
    const add = (key: string, time: number) => engine.add({ key, time, offset: offset++, value: 1 });
    await add("a", 10_000);
    await add("a", 50_000);
    // quiet while the clock is at 30 s: the window [0, 60 s) runs on
    assert.deepEqual(await engine.closeIdle(30_000), []);
    assert.equal(engine.openWindows, 1);
    // quiet at 70 s: it ended
    const closed = await engine.closeIdle(70_000);
    assert.deepEqual(
      closed.map((r) => [r.key, r.start, r.count]),
      [["a", 0, 2]],
      watermark,
    );
    assert.equal(
      (await add("a", 30_000)).late,
      true,
      "a record of the closed window is late, not a window again",
    );
    await add("a", 65_000);
    assert.deepEqual(await engine.closeIdle(100_000), [], "the window [60 s, 120 s) runs");
    const later = await engine.closeIdle(125_000);
    assert.deepEqual(
      later.map((r) => [r.key, r.start, r.count]),
      [["a", 60_000, 1]],
    );
    assert.equal(engine.openWindows, 0);
    if (watermark === "partition")
      assert.equal(engine.snapshotKey("a"), undefined, "nothing left of the keys");
    else assert.deepEqual(engine.snapshotKey("a")?.windows, [], "the key keeps its floor only");
  }
});

test("issue 14 audit F5: a count key with nothing open goes from the state; its next window is the same as before", async () => {
  const aggregator = new Aggregator(parseAggregations("sum:sum"));
  const tumbling = new PartitionWindows(
    {
      type: "tumbling",
      by: "count",
      size: 2,
      graceMs: 0,
      emit: "final",
      watermark: "partition",
      maxOpenWindows: 100,
    },
    aggregator,
  );
  let offset = 0n;
  const results: number[] = [];
  for (const v of [1, 2, 3, 4, 5]) {
    const o = await tumbling.add({ key: "k", time: 0, offset: offset++, value: v });
    results.push(...o.results.map((r) => (r.payload as { sum: number }).sum));
    if (v % 2 === 0) assert.equal(tumbling.snapshotKey("k"), undefined, "no state between its windows");
  }
  assert.deepEqual(results, [3, 7]);
});

test("issue 14 review W1: with per-key watermarks, an idle close closes each key's windows that ended, and a slow key's later windows stay its own (the floor is per key, and restored)", async () => {
  const aggregator = new Aggregator(parseAggregations("n:count"));
  const spec: WindowSpec = {
    type: "tumbling",
    by: "time",
    size: 10_000,
    graceMs: 0,
    emit: "final",
    watermark: "key",
    maxOpenWindows: 100,
  };
  let engine = new PartitionWindows(spec, aggregator);
  let offset = 0n;
  const add = (key: string, time: number) => engine.add({ key, time, offset: offset++, value: 1 });
  await add("fast", 1_000_000);
  await add("slow", 500_000);
  const closed = await engine.closeIdle(1_040_000);
  assert.deepEqual(
    closed.map((r) => [r.key, r.start]),
    [
      ["slow", 500_000],
      ["fast", 1_000_000],
    ],
  );
  // the state goes through a checkpoint
  const saved = JSON.parse(
    JSON.stringify({
      p: engine.snapshotPartition(),
      k: ["fast", "slow"].map((k) => [k, engine.snapshotKey(k)]),
    }),
  ) as { p: ReturnType<typeof engine.snapshotPartition>; k: [string, never][] };
  engine = new PartitionWindows(spec, aggregator);
  engine.restorePartition(saved.p);
  for (const [k, v] of saved.k) engine.restoreKey(k, v ?? undefined);
  assert.equal((await add("slow", 505_000)).late, true, "slow's closed window stays closed");
  for (const t of [520_000, 600_000, 900_000])
    assert.equal((await add("slow", t)).late, false, `slow at ${t}`);
  assert.equal((await add("fast", 1_005_000)).late, true);
  assert.equal((await add("fresh", 10_000)).late, false, "a key never seen has no floor");
});
