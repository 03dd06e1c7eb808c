// What a node's msgs can reach in the deployed flows: wires, link nodes, loops.
import assert from "node:assert/strict";
import { test } from "node:test";
import { downstreamOf, groupCountsAfter, reachOf, streamingSplitsAfter } from "../../src/nodes/flow-shape";
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

test("reach: an effectively-once pulsar-out leading to no other is a sink, nodes after it are inert, nodes before it, subflows, link calls and unknown nodes opaque; a Catch leading to one makes every node opaque", () => {
  const flow = [
    { id: "in", type: "kafka-in", wires: [["fn"]] },
    { id: "fn", type: "function", wires: [["out"], ["log"]] },
    { id: "log", type: "debug", wires: [] },
    { id: "out", type: "pulsar-out", effectivelyOnce: true, wires: [["j"]] },
    { id: "j", type: "join", wires: [["plain"]] },
    { id: "plain", type: "pulsar-out", effectivelyOnce: false, wires: [] },
    { id: "first", type: "pulsar-out", effectivelyOnce: true, wires: [["lo"]] },
    { id: "lo", type: "link out", links: ["li"], wires: [] },
    { id: "li", type: "link in", wires: [["out"]] },
    { id: "sf", type: "subflow:abc", wires: [] },
    { id: "call", type: "link call", wires: [] },
    { id: "off", type: "pulsar-out", effectivelyOnce: true, d: true, wires: [] },
    { id: "toOff", type: "change", wires: [["off"]] },
    { id: "c", type: "catch", wires: [["log"]] },
  ];
  const reach = reachOf(red(flow));
  assert.equal(reach("out"), "sink");
  assert.equal(reach("j"), "inert");
  assert.equal(reach("plain"), "inert");
  assert.equal(reach("log"), "inert");
  assert.equal(reach("fn"), "opaque");
  assert.equal(reach("first"), "opaque", "its output leads to another effectively-once pulsar-out");
  assert.equal(reach("lo"), "opaque");
  assert.equal(reach("sf"), "opaque");
  assert.equal(reach("call"), "opaque");
  assert.equal(reach("inside-a-subflow"), "opaque");
  assert.equal(reach("toOff"), "inert", "a disabled pulsar-out gets nothing");
  const watched = reachOf(
    red([...flow.filter((n) => n.id !== "c"), { id: "c", type: "catch", wires: [["fn"]] }]),
  );
  assert.equal(watched("j"), "opaque");
  assert.equal(watched("log"), "opaque");
});

test("reach: with one effectively-once pulsar-out of a fixed topic, its gate keeps each partition's order and the sink is not tracked (opaque); a template or msg.topic makes it a sink", () => {
  const flow = (topic: Record<string, unknown>) => [
    { id: "in", type: "kafka-in", wires: [["out"]] },
    { id: "out", type: "pulsar-out", effectivelyOnce: true, ...topic, wires: [["j"]] },
    { id: "j", type: "join", wires: [] },
    { id: "off", type: "pulsar-out", effectivelyOnce: true, d: true, wires: [] },
  ];
  const fixed = reachOf(red(flow({ topic: "persistent://public/default/t", topicType: "str" })));
  assert.equal(fixed("out"), "opaque");
  assert.equal(fixed("j"), "inert");
  assert.equal(reachOf(red(flow({ topic: "t-{{kafka.key}}", topicType: "str" })))("out"), "sink");
  assert.equal(reachOf(red(flow({ topic: "", topicType: "msg" })))("out"), "sink");
});

test("flow shape: downstream goes into a subflow instance's template, through a link call to its link in, and from a returning link out to the link calls' wires", () => {
  const r = red([
    { id: "in", type: "kafka-in", wires: [["sfi"]] },
    { id: "sfi", type: "subflow:sf1", wires: [["call"]] },
    {
      id: "sf1",
      type: "subflow",
      in: [{ wires: [{ id: "inner" }] }],
      out: [{ wires: [{ id: "inner", port: 0 }] }],
    },
    { id: "inner", type: "split", stream: true, z: "sf1", wires: [[]] },
    { id: "call", type: "link call", links: ["li"], wires: [["after"]] },
    { id: "li", type: "link in", wires: [["sp"]] },
    { id: "sp", type: "split", stream: true, wires: [["ret"]] },
    { id: "ret", type: "link out", mode: "return", wires: [] },
    { id: "after", type: "split", stream: true, wires: [] },
  ]);
  assert.deepEqual(
    streamingSplitsAfter(r, "in")
      .map((n) => n.id)
      .sort(),
    ["after", "inner", "sp"],
  );
});

test("reach: a window's results hold no record, its late output sends the records on: a window whose late output leads to an effectively-once pulsar-out is opaque", () => {
  const flow = (wires: string[][]) => [
    { id: "in", type: "kafka-in", wires: [["w", "out"]] },
    { id: "w", type: "kafka-window", wires },
    { id: "out", type: "pulsar-out", effectivelyOnce: true, topic: "t-{{kafka.key}}", wires: [] },
  ];
  assert.equal(reachOf(red(flow([["out"], []])))("w"), "inert", "results only");
  assert.equal(reachOf(red(flow([[], ["out"]])))("w"), "opaque", "late records go to the sink");
});

test("joins and batches by count after a node: what each waits for in records, joins in a chain multiplying (review 26), batch output counting its records per msg; disabled ones, joins by parts and by time not counted", () => {
  const r = red([
    { id: "in", type: "kafka-in", wires: [["j5", "b3", "auto", "off"]] },
    { id: "j5", type: "join", mode: "custom", count: "5", timeout: "", wires: [["j4"]] },
    { id: "j4", type: "join", mode: "custom", count: "4", timeout: "", wires: [["out"]] },
    { id: "b3", type: "batch", mode: "count", count: 3, wires: [["out"]] },
    { id: "auto", type: "join", mode: "auto", wires: [["out"]] },
    { id: "off", type: "join", mode: "custom", count: "50", d: true, wires: [["out"]] },
    { id: "out", type: "pulsar-out", wires: [] },
  ]);
  const needs = (perMsg?: number) =>
    Object.fromEntries(groupCountsAfter(r, "in", perMsg).map((g) => [g.node.id, g.needs]));
  assert.deepEqual(needs(), { j5: 5, j4: 20, b3: 3 });
  assert.deepEqual(needs(10), { j5: 50, j4: 200, b3: 30 }, "batch output: 10 records per msg");
});
