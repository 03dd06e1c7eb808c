// pulsar-out's producer pool: one producer per key, a failed open forgotten, idle producers closed (never
// while a send is under way, never a pinned one), tagged ones closed on request, all closed on redeploy.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ProducerPool } from "../../src/bridge/producer-pool";

class Fake {
  closed = 0;
  constructor(readonly name: string) {}
  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

test("producer pool: opened once per key; a failed open is tried again", async () => {
  let clock = 0;
  const pool = new ProducerPool<Fake, string>({ idleMs: 100, now: () => clock });
  let opens = 0;
  const open = (name: string) => () => {
    opens++;
    return Promise.resolve(new Fake(name));
  };
  const a1 = await pool.use("a", open("a"), (p) => Promise.resolve(p));
  const a2 = await pool.use("a", open("a"), (p) => Promise.resolve(p));
  assert.equal(a1, a2);
  assert.equal(opens, 1);
  await assert.rejects(
    pool.use(
      "b",
      () => Promise.reject(new Error("refused")),
      (p) => Promise.resolve(p),
    ),
    /refused/,
  );
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(pool.size, 1, "the failed open is forgotten");
  const b = await pool.use("b", open("b"), (p) => Promise.resolve(p));
  assert.equal(b.name, "b");
  clock = 1000;
  await pool.closeAll();
  assert.equal(a1.closed + b.closed, 2);
  assert.equal(pool.size, 0);
});

test("producer pool: idle producers are closed, not while in use, not pinned ones; tagged ones on request", async () => {
  let clock = 0;
  const pool = new ProducerPool<Fake, { partition: number }>({ idleMs: 100, now: () => clock });
  const fakes = new Map<string, Fake>();
  const open = (key: string) => () => {
    const f = new Fake(key);
    fakes.set(key, f);
    return Promise.resolve(f);
  };
  await pool.open("fixed", open("fixed"), { pinned: true });
  await pool.use("idle", open("idle"), () => Promise.resolve());
  let release!: () => void;
  const busy = pool.use("busy", open("busy"), () => new Promise<void>((r) => (release = r)));
  await pool.use("p0", open("p0"), () => Promise.resolve(), { tag: { partition: 0 } });
  await pool.use("p1", open("p1"), () => Promise.resolve(), { tag: { partition: 1 } });
  clock = 50;
  await pool.use("p1", open("p1"), () => Promise.resolve()); // p1 used again
  clock = 120;
  const evicted = pool.evictIdle().map((e) => e.key);
  assert.deepEqual(evicted.sort(), ["idle", "p0"]);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(fakes.get("idle")?.closed, 1);
  assert.equal(fakes.get("busy")?.closed, 0, "a producer that sends is not idle");
  assert.equal(fakes.get("fixed")?.closed, 0, "pinned");
  release();
  await busy;
  clock = 300;
  assert.deepEqual(
    pool.evictIdle().map((e) => e.key),
    ["busy", "p1"],
  );
  await pool.use("p2", open("p2"), () => Promise.resolve(), { tag: { partition: 2 } });
  await pool.use("p3", open("p3"), () => Promise.resolve(), { tag: { partition: 3 } });
  assert.deepEqual(
    pool.closeWhere((t) => t.partition === 3),
    [{ partition: 3 }],
  );
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(fakes.get("p3")?.closed, 1);
  assert.equal(fakes.get("p2")?.closed, 0);
  await pool.closeAll();
  assert.equal(fakes.get("p2")?.closed, 1);
  assert.equal(fakes.get("fixed")?.closed, 1);
});

test("producer pool: a producer closed by closeWhere is reopened under its key only after its close ended", async () => {
  const pool = new ProducerPool<Fake, number>({ idleMs: 100 });
  const events: string[] = [];
  let endClose: () => void = () => undefined;
  const slow = new Fake("old");
  slow.close = () => {
    events.push("close started");
    return new Promise<void>((resolve) => {
      endClose = () => {
        events.push("close ended");
        resolve();
      };
    });
  };
  await pool.use(
    "k",
    () => Promise.resolve(slow),
    () => Promise.resolve(),
    { tag: 1 },
  );
  pool.closeWhere((t) => t === 1);
  const reopened = pool.use(
    "k",
    () => {
      events.push("open");
      return Promise.resolve(new Fake("new"));
    },
    (p) => Promise.resolve(p.name),
    { tag: 1 },
  );
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(events, ["close started"], "the broker would refuse a second producer of the name");
  endClose();
  assert.equal(await reopened, "new");
  assert.deepEqual(events, ["close started", "close ended", "open"]);
  await pool.closeAll();
});

test("producer pool: retireAll closes every producer (pinned and tagged ones too), returns the tags, and a key reopens after its predecessor closed", async () => {
  const pool = new ProducerPool<Fake, number>({ idleMs: 100 });
  const a = new Fake("a");
  const b = new Fake("b");
  await pool.use(
    "a",
    () => Promise.resolve(a),
    () => Promise.resolve(),
    { tag: 7, pinned: true },
  );
  await pool.use(
    "b",
    () => Promise.resolve(b),
    () => Promise.resolve(),
  );
  assert.deepEqual(pool.retireAll().sort(), [7, undefined].sort());
  assert.equal(pool.size, 0);
  const again = await pool.use(
    "a",
    () => Promise.resolve(new Fake("a2")),
    (p) => Promise.resolve(p.name),
  );
  assert.equal(again, "a2");
  assert.equal(a.closed, 1);
  assert.equal(b.closed, 1);
  await pool.closeAll();
});
