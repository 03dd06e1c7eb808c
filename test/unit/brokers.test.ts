import assert from "node:assert/strict";
import { test } from "node:test";
import { kafkaClusterId } from "../../scripts/brokers.mjs";

test("brokers: a KRaft cluster id is 22 base64url characters and never starts with '-' (kafka-storage would take it for an option)", () => {
  // a plain base64url id starts with "-" once in 64; 20000 draws all miss it with odds of about e^-312
  const ids = new Set<string>();
  for (let i = 0; i < 20000; i++) {
    const id = kafkaClusterId();
    assert.match(id, /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
    ids.add(id);
  }
  assert.equal(ids.size, 20000);
});
