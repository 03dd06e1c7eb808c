// kafka-out's mapping (msg-to-kafka): what a flow does to msg.properties of a msg from pulsar-in.
import assert from "node:assert/strict";
import { test } from "node:test";
import { msgToKafka } from "../../src/bridge/msg-to-kafka";
import { msgToPulsar } from "../../src/bridge/msg-to-pulsar";

const text = (v: unknown): unknown =>
  Buffer.isBuffer(v) ? v.toString("utf8") : Array.isArray(v) ? v.map(text) : v;

test("review 33 F7: a flow's change to msg.properties is ignored for any header named in the kafka.headers list (a Kafka record that had a repeated or null header)", () => {
  // what pulsar-out wrote for a Kafka record with headers trace=a, trace=b, tenant=t1 (repeated name: the exact list)
  const pulsar = msgToPulsar(
    {
      payload: "v",
      kafka: {
        headerList: [
          { key: "trace", value: Buffer.from("a") },
          { key: "trace", value: Buffer.from("b") },
          { key: "tenant", value: Buffer.from("t1") },
        ],
      },
    },
    { mapHeaders: true, provenanceProperties: false },
  );
  const properties = { ...(pulsar.properties as Record<string, string>) };
  // pulsar-in -> change node (set msg.properties.tenant to "t2", delete msg.properties.trace) -> kafka-out
  properties.tenant = "t2";
  delete properties.trace;
  const out = msgToKafka({ payload: "v", properties }, { mapHeaders: true });
  const headers = Object.fromEntries(Object.entries(out.headers).map(([k, v]) => [k, text(v)]));
  assert.equal(headers.tenant, "t2", `the flow set tenant=t2; written: ${JSON.stringify(headers)}`);
  assert.equal(headers.trace, undefined, "the flow deleted trace");
});
