// The producer's side of deduplication, against the stand-in broker: keyed messages keep their key's
// partition in "key-or-sequence" mode (keyless ones go by sequence id); a potential duplicate (a sequence id
// below the next one) goes on the wire alone, never in a batch; a duplicate receipt is proven stored only
// when the producer knows the broker had that id. And the ranges that remember sequence ids.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createProducer } from "../../src/pulsar/producer";
import { SequenceRanges } from "../../src/pulsar/sequence-ranges";
import { javaStringHash } from "../../src/pulsar/hash";
import { FrameDecoder } from "../../src/pulsar/protocol/frame";
import { decodeEntryMetadata } from "../../src/pulsar/protocol/metadata";
import { ConnectionError } from "../../src/pulsar/errors";
import type { OutgoingMessage, SendReceipt } from "../../src/pulsar/types";
import { StandIn } from "../support/pulsar-standin";

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

test("sequence ranges: consecutive ids merge, gaps split, late ids fill in, and the bound raises a floor", () => {
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
  r.add(40); // a fourth range: the oldest (1..9) is dropped, everything up to 9 counts as in the set
  assert.equal(r.ranges, 3);
  assert.equal(r.has(0), true);
  assert.equal(r.has(15), false);
  r.add(15); // between ranges, no neighbour
  assert.equal(r.has(15), true);
});

test("key-or-sequence: a key always to the partition its Java hash names; keyless by sequence id", async () => {
  const b = new StandIn();
  b.partitions = 4;
  const producer = await createProducer(b.client(), { topic: "t", routingMode: "key-or-sequence" });
  const route = (m: OutgoingMessage) =>
    (producer as unknown as { route(m: OutgoingMessage): number }).route(m);
  try {
    for (const key of ["same-key", "device-7", "device-12"])
      for (let seq = 0; seq < 12; seq++)
        assert.equal(route({ payload: Buffer.alloc(0), key, sequenceId: seq }), javaStringHash(key) % 4, key);
    assert.deepEqual(
      [0, 1, 2, 3, 4, 9].map((seq) => route({ payload: Buffer.alloc(0), sequenceId: seq })),
      [0, 1, 2, 3, 0, 1],
    );
    assert.throws(() => route({ payload: Buffer.alloc(0) }), /needs a sequence id/);
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

test("a duplicate receipt is proven only for an id the broker had at connect, stored since, or got on this connection before", async () => {
  const b = new StandIn();
  b.lastSequenceId = 10;
  const producer = await createProducer(b.client(), {
    topic: "t",
    producerName: "p",
    batchingEnabled: false,
  });
  const send = async (seq: number, duplicate: boolean) => {
    const before = b.written.length;
    const r = producer.send({ payload: Buffer.from(`m${seq}`), sequenceId: seq });
    await until(() => b.written.length > before);
    b.receipt(seq, duplicate);
    return r;
  };
  try {
    assert.equal((await send(5, true)).duplicateProven, true, "at or below the last id at connect");
    assert.equal((await send(11, false)).duplicateProven, false, "stored, not a duplicate");
    assert.equal((await send(11, true)).duplicateProven, true, "stored with a receipt before");
    // 13 was never sent, yet the broker calls it a duplicate: a later id was stored first
    assert.equal((await send(20, false)).duplicate, false);
    assert.equal((await send(13, true)).duplicateProven, false, "a hole: never sent, never stored");
    // 30 is sent and its receipt lost (it timed out); sent again on the same connection, a duplicate is proven
    const first = producer.send({ payload: Buffer.from("m30"), sequenceId: 30 });
    first.catch(() => undefined);
    await until(() => sends(b.written).some((s) => s.seq === 30));
    b.receipt(30, true); // the broker's answer to the first try: it had nothing of 30 before
    assert.equal((await first).duplicateProven, false, "the first try itself proves nothing");
    assert.equal((await send(30, true)).duplicateProven, true, "written before on this connection");
    // a new connection: the broker reports 40 as its last id
    const writtenBefore = b.written.length;
    b.lastSequenceId = 40;
    b.listener?.onDisconnect(new ConnectionError("closed"));
    await until(() => b.listener !== undefined && b.lookups >= 2);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(b.written.length, writtenBefore, "nothing was pending");
    assert.equal((await send(35, true)).duplicateProven, false, "never written: the broker passed it");
    assert.equal(
      (await send(30, true)).duplicateProven,
      true,
      "written on an earlier connection, and the broker had it at connect",
    );
  } finally {
    await producer.close();
  }
});
