// The examples offered in Import -> Examples load: valid JSON, known types, existing config nodes, and
// every property of our types from the runtime contract.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import * as props from "../../src/nodes/properties";

const DIR = path.resolve(__dirname, "..", "..", "examples");
const CONTRACT: Record<string, object> = {
  "kafka-cluster": props.KAFKA_CLUSTER_DEFAULTS,
  "kafka-in": props.KAFKA_IN_DEFAULTS,
  "schema-registry": props.SCHEMA_REGISTRY_DEFAULTS,
  "kafka-window": props.KAFKA_WINDOW_DEFAULTS,
  "pulsar-cluster": props.PULSAR_CLUSTER_DEFAULTS,
  "pulsar-out": props.PULSAR_OUT_DEFAULTS,
  "kafka-out": props.KAFKA_OUT_DEFAULTS,
  "pulsar-in": props.PULSAR_IN_DEFAULTS,
};
const CORE = new Set(["tab", "comment", "change", "switch", "debug", "catch", "function", "delay"]);

const files = fs.readdirSync(DIR).filter((f) => f.endsWith(".json"));

test("there are seven examples", () => {
  assert.equal(files.length, 7);
});

for (const file of files) {
  test(`example "${file}" is a loadable flow`, () => {
    const flow = JSON.parse(fs.readFileSync(path.join(DIR, file), "utf8")) as Record<string, unknown>[];
    const ids = new Set(flow.map((n) => n.id));
    assert.equal(ids.size, flow.length, "unique ids");
    for (const n of flow) {
      const type = String(n.type);
      assert.ok(CORE.has(type) || type in CONTRACT, `known type ${type}`);
      for (const wires of (n.wires as string[][] | undefined) ?? [])
        for (const w of wires) assert.ok(ids.has(w), `${String(n.id)} wired to ${w}`);
      const contract = CONTRACT[type];
      if (!contract) continue;
      const extra = Object.keys(n).filter(
        (k) => !(k in contract) && !["id", "type", "z", "x", "y", "wires"].includes(k),
      );
      assert.deepEqual(extra, [], `${type} has only contract properties`);
      for (const ref of ["cluster", "registry"])
        if (n[ref]) assert.ok(ids.has(n[ref]), `${type}.${ref} exists`);
    }
    // a bridge: from Kafka to Pulsar, or from Pulsar to Kafka
    const has = (type: string) => flow.some((n) => n.type === type);
    assert.ok((has("kafka-in") && has("pulsar-out")) || (has("pulsar-in") && has("kafka-out")));
  });
}
