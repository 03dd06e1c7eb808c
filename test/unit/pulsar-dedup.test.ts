// The producer's side of deduplication, against the stand-in broker: keyed messages keep their key's
// partition in "key-or-sequence" mode (keyless ones go by sequence id); a potential duplicate (a sequence id
// below the next one) goes on the wire alone, never in a batch, also in a rewind over a batch that timed
// out; a duplicate receipt is proven stored only when the producer knows the broker had that id (at the
// first connect, a receipt, a fresh write on the same connection, or one the next connect confirms), never
// for a hole, however often it is tried. And the bounded ranges that remember sequence ids.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createProducer } from "../../src/pulsar/producer";
import { SequenceRanges } from "../../src/pulsar/sequence-ranges";
import { javaStringHash } from "../../src/pulsar/hash";
import { FrameDecoder } from "../../src/pulsar/protocol/frame";
import { decodeEntryMetadata } from "../../src/pulsar/protocol/metadata";
import { ConfigError, ConnectionError, TimeoutError } from "../../src/pulsar/errors";
import type { SendReceipt } from "../../src/pulsar/types";
import { partitionedClient, StandIn } from "../support/pulsar-standin";

const until = async (ok: () => boolean, ms = 3000) => {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** What the producer wrote: per SEND frame, its lowest sequence id and how many messages it holds. */
function sends(written: Buffer[]): { seq: number; count: number }[] {
  const out: { seq: number; count: number }[] = [];
  const d = new FrameDecoder();
  for (const b of written)
    d.push(b, (f) => {
      if (!f.metadata) return;
      const md = decodeEntryMetadata(f.metadata);
      out.push({ seq: Number(md.sequenceId), count: md.numMessagesInBatch ?? 1 });
    });
  return out;
}

test("sequence ranges: consecutive ids merge, gaps split, late ids fill in, and the bound forgets the oldest", () => {
  const r = new SequenceRanges(3);
  for (const id of [1, 2, 3, 5, 6, 9]) r.add(id);
  assert.equal(r.ranges, 3);
  assert.deepEqual(
    [0, 1, 3, 4, 5, 7, 8, 9, 10].map((id) => r.has(id)),
    [false, true, true, false, true, false, false, true, false],
  );
  r.add(4); // joins 1..3 and 5..6
  assert.equal(r.ranges, 2);
  assert.equal(r.has(4), true);
  r.add(7); // extends 1..7 from the right
  r.add(8); // joins 1..8 and 9
  assert.equal(r.ranges, 1);
  r.add(20);
  r.add(30);
  r.add(40); // a fourth range: the oldest (1..9) is forgotten, not proven any more
  assert.equal(r.ranges, 3);
  assert.deepEqual(
    [0, 1, 9, 15].map((id) => r.has(id)),
    [false, false, false, false],
  );
  r.add(15); // below the kept ranges: a fourth range again, and the lowest (15 itself) is forgotten
  assert.equal(r.ranges, 3);
  assert.deepEqual(
    [14, 15, 16, 19, 20, 21, 29, 30, 40].map((id) => r.has(id)),
    [false, false, false, false, true, false, false, true, true],
  );
  r.add(35); // above the lowest kept range: 20 is forgotten, 30, 35 and 40 are kept
  assert.deepEqual(
    [20, 30, 35, 40].map((id) => r.has(id)),
    [false, true, true, true],
  );
});

test("sequence ranges: a range added over several merges them; a copy up to a bound has no more than the source", () => {
  const r = new SequenceRanges();
  for (const id of [10, 20, 30, 40]) r.add(id);
  r.addRange(19, 31); // touches 20 and 30, reaches 19 and 31
  assert.equal(r.ranges, 3);
  assert.deepEqual(
    [10, 18, 19, 25, 31, 32, 40].map((id) => r.has(id)),
    [true, false, true, true, true, false, true],
  );
  r.addRange(11, 18); // fills the gap: 10..31 is one range
  assert.equal(r.ranges, 2);
  r.addRange(0, 5); // before everything
  assert.equal(r.ranges, 3);
  assert.equal(r.has(6), false);

  const source = new SequenceRanges(2);
  for (const id of [1, 3, 5, 6, 7, 9]) source.add(id); // 1 and 3 are forgotten: 5..7 and 9 are kept
  assert.equal(source.has(2), false);
  assert.equal(source.has(3), false);
  const target = new SequenceRanges();
  target.add(100);
  target.addFrom(source, 6);
  assert.deepEqual(
    [0, 3, 4, 5, 6, 7, 8, 9, 100].map((id) => target.has(id)),
    [false, false, false, true, true, false, false, false, true],
  );
});

test("sequence ranges: bounded on a long run of gaps (stride ids of a partition producer); a gap never counts as in", () => {
  const r = new SequenceRanges();
  for (let id = 0; id < 100_000; id += 3) r.add(id); // every third id: a range each
  assert.equal(r.ranges, 4096);
  const newest = 99_999; // 0, 3, ... 99_999
  const oldest = newest - 3 * 4095; // the oldest range kept
  for (let id = 0; id < 100_000; id++) {
    const kept = id % 3 === 0 && id >= oldest;
    assert.equal(r.has(id), kept, `id ${id}`);
  }
  for (let id = 0; id < 100_000; id++) r.add(id); // the gaps filled: one range (ids below a full set are forgotten)
  assert.equal(r.ranges, 1);
  assert.equal(r.has(oldest), true);
  assert.equal(r.has(99_999), true);
});

const partitionOf = (r: SendReceipt) => Number(/-partition-(\d+)$/.exec(r.topic)?.[1]);

test("key-or-sequence over 4 partitions: a key always to the partition its Java hash names; keyless by sequence id", async () => {
  const b = new StandIn();
  b.partitions = 4;
  const { client, answerAll } = partitionedClient(b);
  const producer = await createProducer(client, {
    topic: "t",
    producerName: "p",
    routingMode: "key-or-sequence",
    batchingEnabled: false,
  });
  try {
    const keys = ["key-1", "key-2", "key-3", "key-4", "same-key"];
    assert.equal(new Set(keys.map((k) => javaStringHash(k) % 4)).size, 4, "keys of every partition");
    const keyed: { key: string; seq: number; receipt: Promise<SendReceipt> }[] = [];
    const keyless: { seq: number; receipt: Promise<SendReceipt> }[] = [];
    for (let seq = 0; seq < 40; seq++) {
      if (seq % 3 === 0)
        keyless.push({ seq, receipt: producer.send({ payload: Buffer.from("x"), sequenceId: seq }) });
      else {
        const key = keys[seq % keys.length];
        keyed.push({ key, seq, receipt: producer.send({ payload: Buffer.from("x"), key, sequenceId: seq }) });
      }
    }
    assert.ok(
      keyed.some(({ key, seq }) => javaStringHash(key) % 4 !== seq % 4),
      "for some keyed messages, the sequence id names another partition",
    );
    await until(() => b.written.length === 40);
    answerAll();
    for (const { key, receipt } of keyed)
      assert.equal(partitionOf(await receipt), javaStringHash(key) % 4, key);
    for (const { seq, receipt } of keyless) assert.equal(partitionOf(await receipt), seq % 4, `seq ${seq}`);
    // a Buffer key is hashed as its base64 text, as in the other modes
    const bufferKey = Buffer.from([1, 2, 3]);
    const r = producer.send({ payload: Buffer.from("x"), key: bufferKey, sequenceId: 100 });
    await until(() => b.written.length === 1);
    answerAll();
    assert.equal(partitionOf(await r), javaStringHash(bufferKey.toString("base64")) % 4);
    await assert.rejects(producer.send({ payload: Buffer.from("x") }), ConfigError);
  } finally {
    await producer.close();
  }
});

test("key-or-sequence on a topic without partitions refuses a keyless message without sequence id too", async () => {
  const b = new StandIn();
  const producer = await createProducer(b.client(), { topic: "t", routingMode: "key-or-sequence" });
  try {
    await assert.rejects(producer.send({ payload: Buffer.from("x") }), /needs a sequence id/);
    assert.equal(b.written.length, 0);
  } finally {
    await producer.close();
  }
});

test("potential duplicates go on the wire one by one, newer messages batched after them", async () => {
  const b = new StandIn();
  b.lastSequenceId = 110; // the broker stored up to 110 for this producer name: the next id is 111
  const producer = await createProducer(b.client(), {
    topic: "t",
    producerName: "p",
    batchingMaxPublishDelayMs: 5,
  });
  try {
    const receipts: Promise<SendReceipt>[] = [];
    for (let seq = 90; seq <= 120; seq++)
      receipts.push(producer.send({ payload: Buffer.from(`m${seq}`), sequenceId: seq }));
    await until(() => sends(b.written).reduce((n, s) => n + s.count, 0) === 31);
    const wire = sends(b.written);
    assert.deepEqual(
      wire.slice(0, 21),
      Array.from({ length: 21 }, (_, i) => ({ seq: 90 + i, count: 1 })),
      "90..110 each alone",
    );
    assert.deepEqual(wire.slice(21), [{ seq: 111, count: 10 }], "111..120 in one batch");
    // the broker drops 90..110 as duplicates (it has them: proven) and stores 111..120
    for (let seq = 90; seq <= 110; seq++) b.receipt(seq, true);
    b.receipt(111);
    const got = await Promise.all(receipts);
    assert.ok(got.slice(0, 21).every((r) => r.duplicate && r.duplicateProven));
    assert.ok(got.slice(21).every((r) => !r.duplicate && !r.duplicateProven));
  } finally {
    await producer.close();
  }
});

test("a rewind over a batch that timed out: every id below the next one alone, only newer ones batched", async () => {
  // 111..120 went out in a batch and timed out (the next id is 121); the replay starts again at 90
  const b = new StandIn();
  b.lastSequenceId = 110;
  const alive = setInterval(() => undefined, 1000);
  const producer = await createProducer(b.client(), {
    topic: "t",
    producerName: "p",
    batchingMaxPublishDelayMs: 5,
    sendTimeoutMs: 200,
  });
  const send = (seq: number) => producer.send({ payload: Buffer.from(`m${seq}`), sequenceId: seq });
  try {
    const timedOut = Array.from({ length: 10 }, (_, i) => send(111 + i));
    for (const r of timedOut) await assert.rejects(r, TimeoutError);
    assert.deepEqual(sends(b.written), [{ seq: 111, count: 10 }]);
    b.written = [];
    const replay = Array.from({ length: 36 }, (_, i) => send(90 + i));
    await until(() => sends(b.written).reduce((n, s) => n + s.count, 0) === 36);
    assert.deepEqual(sends(b.written), [
      ...Array.from({ length: 31 }, (_, i) => ({ seq: 90 + i, count: 1 })),
      { seq: 121, count: 5 },
    ]);
    // the broker had the batch after all: 90..120 are duplicates, all proven; 121..125 are stored
    for (let seq = 90; seq <= 120; seq++) b.receipt(seq, true);
    b.receipt(121);
    const got = await Promise.all(replay);
    assert.deepEqual(
      got.map((r) => [r.duplicate, r.duplicateProven]),
      [...Array.from({ length: 31 }, () => [true, true]), ...Array.from({ length: 5 }, () => [false, false])],
    );
  } finally {
    clearInterval(alive);
    await producer.close();
  }
});

/** A producer on the stand-in broker, batching off, and a way to send one id and answer it. */
async function dedupProducer(b: StandIn, sendTimeoutMs = 30_000) {
  const producer = await createProducer(b.client(), {
    topic: "t",
    producerName: "p",
    batchingEnabled: false,
    sendTimeoutMs,
  });
  // the producer's send timer does not keep the process alive: this does, while a send waits for it
  const alive = setInterval(() => undefined, 1000);
  const close = async () => {
    clearInterval(alive);
    await producer.close();
  };
  /** Sends `seq`; once written, the broker answers it: stored, a duplicate, or nothing (it never got it). */
  const send = async (seq: number, answer: "stored" | "duplicate" | "none", covers?: number[]) => {
    const before = b.written.length;
    const r = producer.send({ payload: Buffer.from(`m${seq}`), sequenceId: seq, covers });
    r.catch(() => undefined);
    await until(() => b.written.length > before);
    if (answer !== "none") b.receipt(seq, answer === "duplicate");
    return r;
  };
  /** The connection breaks; the producer makes a new one, where the broker reports `lastSequenceId`. */
  const reconnect = async (lastSequenceId: number) => {
    const lookups = b.lookups;
    b.lastSequenceId = lastSequenceId;
    b.listener?.onDisconnect(new ConnectionError("closed"));
    await until(() => b.lookups > lookups && b.listener !== undefined);
    await new Promise((r) => setTimeout(r, 20));
  };
  return { close, send, reconnect };
}

const proven = async (r: Promise<SendReceipt>) => {
  const receipt = await r;
  assert.equal(receipt.duplicate, true);
  return receipt.duplicateProven;
};

test("a duplicate is proven for an id the broker had at the first connect or stored since, not for one never sent", async () => {
  const b = new StandIn();
  b.lastSequenceId = 10;
  const { close, send } = await dedupProducer(b);
  try {
    assert.equal(await proven(send(5, "duplicate")), true, "at or below the last id at the first connect");
    const stored = await send(11, "stored");
    assert.deepEqual([stored.duplicate, stored.duplicateProven], [false, false], "not a duplicate");
    assert.equal(await proven(send(11, "duplicate")), true, "stored with a receipt before");
    assert.equal((await send(20, "stored")).duplicate, false);
    // 13 was never sent, yet the broker calls it a duplicate: a later id was stored first
    assert.equal(await proven(send(13, "duplicate")), false, "a hole: never sent, never stored");
  } finally {
    await close();
  }
});

test("a message merging records (covers): the ids it covers are proven once it is stored, by its receipt or a reconnect's last id, not before", async () => {
  const b = new StandIn();
  b.lastSequenceId = 10;
  const { close, send, reconnect } = await dedupProducer(b, 200);
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  try {
    await send(20, "stored", range(15, 19));
    assert.equal(await proven(send(17, "duplicate")), true, "covered by 20, which was stored");
    assert.equal(await proven(send(13, "duplicate")), false, "not covered");
    await assert.rejects(send(30, "none", range(25, 29)), TimeoutError); // written fresh, no receipt
    await reconnect(30);
    assert.equal(await proven(send(27, "duplicate")), true, "the broker had 30 at the reconnect");
    await assert.rejects(send(40, "none", range(35, 39)), TimeoutError);
    await reconnect(34);
    assert.equal(await proven(send(37, "duplicate")), false, "40 never reached the broker");
  } finally {
    await close();
  }
});

test("a hole stays unproven however often it is tried again, on the same connection too", async () => {
  // What a replay after a refused duplicate does: it sends the id again, and the broker drops it again.
  const b = new StandIn();
  b.lastSequenceId = 10;
  const { close, send } = await dedupProducer(b);
  try {
    await send(20, "stored");
    for (let i = 0; i < 3; i++) assert.equal(await proven(send(13, "duplicate")), false, `try ${i + 1}`);
  } finally {
    await close();
  }
});

test("a try that timed out proves its id stored when tried again on the same connection", async () => {
  const b = new StandIn();
  b.lastSequenceId = 10;
  const { close, send } = await dedupProducer(b, 200);
  try {
    // 30 is written fresh (above all the broker can have), its receipt is late: the send times out
    await assert.rejects(send(30, "none"), TimeoutError);
    // the broker took it meanwhile: the next try on this connection is a duplicate, proven
    assert.equal(await proven(send(30, "duplicate")), true, "written fresh before on this connection");
  } finally {
    await close();
  }
});

test("a write on an earlier connection proves its id only if the broker had it at the very next connect", async () => {
  const b = new StandIn();
  b.lastSequenceId = 20;
  const { close, send, reconnect } = await dedupProducer(b, 200);
  try {
    // 30 reaches the broker, the receipt does not, the connection breaks: the broker reports 30 at the next one
    await assert.rejects(send(30, "none"), TimeoutError);
    await reconnect(30);
    assert.equal(await proven(send(30, "duplicate")), true, "had by the broker at the next connect");

    // 40 never reaches the broker (it reports 30 still); then 50 is stored on that next connection
    await assert.rejects(send(40, "none"), TimeoutError);
    await reconnect(30);
    assert.equal((await send(50, "stored")).duplicate, false);
    // another connection, where the broker reports 50: 40 was written before and is below, yet not stored
    await reconnect(50);
    assert.equal(await proven(send(40, "duplicate")), false, "lost in the broken connection");
    assert.equal(await proven(send(35, "duplicate")), false, "never written");
    assert.equal(await proven(send(30, "duplicate")), true, "still proven");
    assert.equal(await proven(send(50, "duplicate")), true, "stored with a receipt");
  } finally {
    await close();
  }
});

test("pending entries resent after a reconnect: proven if the broker had them, stored anew if not", async () => {
  const b = new StandIn();
  b.lastSequenceId = -1;
  const producer = await createProducer(b.client(), {
    topic: "t",
    producerName: "p",
    batchingMaxPublishDelayMs: 5,
  });
  try {
    const first = Array.from({ length: 5 }, (_, i) =>
      producer.send({ payload: Buffer.from("a"), sequenceId: i }),
    );
    await until(() => sends(b.written).length === 1);
    const second = Array.from({ length: 5 }, (_, i) =>
      producer.send({ payload: Buffer.from("b"), sequenceId: 5 + i }),
    );
    await until(() => sends(b.written).length === 2);
    assert.deepEqual(sends(b.written), [
      { seq: 0, count: 5 },
      { seq: 5, count: 5 },
    ]);
    // the broker got the first batch only (it reports 4), no receipt came; both are resent as they were
    b.lastSequenceId = 4;
    b.listener?.onDisconnect(new ConnectionError("closed"));
    await until(() => sends(b.written).length === 4);
    assert.deepEqual(sends(b.written).slice(2), [
      { seq: 0, count: 5 },
      { seq: 5, count: 5 },
    ]);
    b.receipt(0, true);
    b.receipt(5);
    const got = [...(await Promise.all(first)), ...(await Promise.all(second))];
    assert.deepEqual(
      got.map((r) => [r.duplicate, r.duplicateProven]),
      [...Array.from({ length: 5 }, () => [true, true]), ...Array.from({ length: 5 }, () => [false, false])],
    );
  } finally {
    await producer.close();
  }
});
