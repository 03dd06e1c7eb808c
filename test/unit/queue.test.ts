import assert from "node:assert/strict";
import { test } from "node:test";
import { Queue } from "../../src/pulsar/queue";

test("queue: first in, first out, across compactions and interleaved pushes", () => {
  const q = new Queue<number>();
  assert.equal(q.shift(), undefined);
  let next = 0;
  let expected = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 3000; i++) q.push(next++);
    for (let i = 0; i < 2000; i++) assert.equal(q.shift(), expected++);
    assert.equal(q.length, next - expected);
  }
  while (q.length > 0) assert.equal(q.shift(), expected++);
  assert.equal(expected, next);
  assert.equal(q.shift(), undefined);
});
