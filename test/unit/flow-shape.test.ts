// What a node's msgs can reach in the deployed flows: wires, link nodes, loops.
import assert from "node:assert/strict";
import { test } from "node:test";
import { downstreamOf, streamingSplitsAfter } from "../../src/nodes/flow-shape";
import type { RED } from "../../src/nodes/red";

function red(nodes: Record<string, unknown>[]): RED {
  return { nodes: { eachNode: (cb: (n: unknown) => void) => nodes.forEach(cb) } } as unknown as RED;
}

test("flow shape: downstream follows wires and link out → link in, stops at loops, leaves out what is not reached", () => {
  const r = red([
    { id: "in", type: "kafka-in", wires: [["fn"]] },
    { id: "fn", type: "function", wires: [["lo"], ["fn"]] },
    { id: "lo", type: "link out", links: ["li"], wires: [] },
    { id: "li", type: "link in", links: ["lo"], wires: [["sp"]] },
    { id: "sp", type: "split", stream: true, wires: [["out"]] },
    { id: "out", type: "pulsar-out", wires: [] },
    { id: "other", type: "split", stream: true, wires: [["out"]] },
    { id: "plain", type: "split", stream: false, wires: [] },
  ]);
  assert.deepEqual(
    downstreamOf(r, "in").map((n) => n.id),
    ["fn", "lo", "li", "sp", "out"],
  );
  assert.deepEqual(
    streamingSplitsAfter(r, "in").map((n) => n.id),
    ["sp"],
  );
  assert.deepEqual(streamingSplitsAfter(r, "out"), []);
});
