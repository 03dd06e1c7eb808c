import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { BridgeError, ConfigurationError, describeError, statusText } from "../../src/common/errors";
import { AuthenticationError, ConnectionError, TimeoutError } from "../../src/pulsar/errors";

test("describeError: the message the status shows, and whether a retry can help, for every kind of error", () => {
  assert.deepEqual(
    describeError(new BridgeError("pulsar-out.errors.payload", "msg.payload is a function", false)),
    {
      message: "msg.payload is a function",
      retriable: false,
    },
  );
  assert.deepEqual(
    describeError(new ConfigurationError("kafka-cluster.errors.no-brokers", "no Kafka broker given")),
    {
      message: "no Kafka broker given",
      retriable: false,
    },
  );
  assert.deepEqual(describeError(new TimeoutError("lookup timed out after 30000 ms")), {
    message: "lookup timed out after 30000 ms",
    retriable: true,
  });
  assert.deepEqual(describeError(new AuthenticationError("token expired")), {
    message: "token expired",
    retriable: false,
  });
  assert.equal(describeError(new ConnectionError("connect ECONNREFUSED 127.0.0.1:6650")).retriable, true);
  assert.equal(describeError(new ConnectionError("certificate has expired", false)).retriable, false);
  // kafkajs errors say themselves whether they are retriable
  const kafkaError = Object.assign(new Error("The group is rebalancing"), { retriable: true });
  assert.deepEqual(describeError(kafkaError), { message: "The group is rebalancing", retriable: true });
  assert.deepEqual(describeError(new Error("boom")), { message: "boom", retriable: false });
  // thrown values that are not errors
  assert.deepEqual(describeError("a string"), { message: "a string", retriable: false });
  assert.deepEqual(describeError(undefined), { message: "undefined", retriable: false });
  assert.deepEqual(describeError(42), { message: "42", retriable: false });
});

test("review 31 F8: the status shows the broker's reason, not its Java class names, cut to fit; short texts stay as they are", () => {
  // as Pulsar 4.0 answers a schema its compatibility check refuses (shortened)
  const broker =
    "IncompatibleSchema: org.apache.pulsar.broker.service.schema.exceptions.IncompatibleSchemaException: " +
    "Error during schema compatibility check with strategy FULL: org.apache.avro.SchemaValidationException: " +
    'Unable to read schema: \n{\n  "type" : "record"\n} caused by org.apache.pulsar.broker.service.schema.' +
    "exceptions.IncompatibleSchemaException: Error during schema compatibility check";
  const shown = statusText(broker);
  assert.ok(shown.length <= 80, shown);
  assert.match(shown, /^IncompatibleSchema: Error during schema compatibility check with strategy/);
  assert.doesNotMatch(shown, /org\.apache/);
  assert.equal(statusText("reconnecting: connection refused"), "reconnecting: connection refused");
  assert.equal(statusText("x".repeat(100)), `${"x".repeat(77)}...`);
});

test("every error key the sources name (BridgeError, ConfigurationError, status and log texts) exists in the en-US catalogs", () => {
  const root = path.join(__dirname, "..", "..");
  const catalog: Record<string, unknown> = {};
  for (const set of ["kafka", "pulsar"])
    Object.assign(
      catalog,
      JSON.parse(fs.readFileSync(path.join(root, "nodes", "locales", "en-US", `${set}.json`), "utf8")),
    );
  const lookup = (key: string) =>
    key
      .split(".")
      .reduce<unknown>(
        (o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined),
        catalog,
      );
  const sources = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const p = path.join(dir, e.name);
      return e.isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
    });
  const used = new Map<string, string>();
  for (const file of sources(path.join(root, "src")))
    for (const m of fs.readFileSync(file, "utf8").matchAll(/"([a-z-]+\.errors\.[a-z0-9-]+)"/g))
      used.set(m[1], path.relative(root, file));
  assert.ok(used.size >= 15, `found only ${used.size} keys: the pattern no longer matches the sources`);
  const missing = [...used]
    .filter(([key]) => typeof lookup(key) !== "string")
    .map(([key, file]) => `${key} (${file})`);
  assert.deepEqual(missing, []);
});
