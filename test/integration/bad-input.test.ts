// Bad configurations and bad msgs, in a real Node-RED runtime with the real brokers: each gives a clear
// error (log + status, or Catch with the original msg), Node-RED keeps running, nothing is dropped silently.
import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { kafkaBrokers, pulsarAdmin, pulsarHttpUrl, pulsarUrl, uniqueName } from "../support/brokers";

interface LogEntry {
  level: number;
  id?: string;
  msg?: unknown;
}

// Namespaces with deduplication explicitly off and on, whatever the broker's default.
const NO_DEDUP_NS = uniqueName("no-dedup");
const DEDUP_NS = uniqueName("dedup");
before(async () => {
  for (const [ns, on] of [
    [NO_DEDUP_NS, false],
    [DEDUP_NS, true],
  ] as const) {
    assert.equal((await pulsarAdmin("PUT", `/admin/v2/namespaces/public/${ns}`, {})).status, 204);
    const r = await pulsarAdmin("POST", `/admin/v2/namespaces/public/${ns}/deduplication`, on);
    assert.equal(r.status, 204);
  }
});
after(async () => {
  await stopHelper();
});
afterEach(async () => {
  await unloadFlow();
});

const ERROR = 20;
const WARN = 30;

function errorsOf(id: string, level = ERROR): string[] {
  const log = (helper as unknown as { log(): { args: [LogEntry][] } }).log();
  return log.args
    .map(([entry]) => entry)
    .filter((e) => e.level === level && e.id === id)
    .map((e) => String(e.msg));
}

async function eventually(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const kc = (brokers = kafkaBrokers.join(","), extra: Record<string, unknown> = {}) => ({
  id: "kc",
  type: "kafka-cluster",
  brokers,
  ...extra,
});
const pc = (serviceUrl = pulsarUrl, extra: Record<string, unknown> = {}) => ({
  id: "pc",
  type: "pulsar-cluster",
  serviceUrl,
  ...extra,
});
const kin = (extra: Record<string, unknown>) => ({
  id: "in",
  type: "kafka-in",
  cluster: "kc",
  topics: uniqueName("bad"),
  groupId: uniqueName("g"),
  wires: [[]],
  ...extra,
});

const configCases: { name: string; flow: object[]; id: string; expect: RegExp; withinMs?: number }[] = [
  { name: "kafka-in without a cluster", flow: [kin({ cluster: "" })], id: "in", expect: /no kafka-cluster/ },
  { name: "empty broker list", flow: [kc(""), kin({})], id: "in", expect: /no Kafka broker/ },
  { name: "broker without a port", flow: [kc("localhost"), kin({})], id: "in", expect: /not a host:port/ },
  { name: "empty group id", flow: [kc(), kin({ groupId: " " })], id: "in", expect: /group id is required/ },
  { name: "no topics", flow: [kc(), kin({ topics: "" })], id: "in", expect: /no Kafka topic/ },
  {
    name: "invalid topic pattern",
    flow: [kc(), kin({ topics: "/([/" })],
    id: "in",
    expect: /invalid topic pattern/,
  },
  {
    name: "invalid topic name",
    flow: [kc(), kin({ topics: "bad topic" })],
    id: "in",
    expect: /not a valid Kafka topic/,
  },
  {
    name: "dead-letter policy without a topic",
    flow: [kc(), kin({ failurePolicy: "dead-letter", deadLetterTopic: "" })],
    id: "in",
    expect: /dead-letter topic/,
  },
  {
    name: "SASL PLAIN without credentials",
    flow: [kc(undefined, { saslMechanism: "plain" }), kin({})],
    id: "in",
    expect: /username and a password/,
  },
  {
    name: "an unknown SASL mechanism",
    flow: [kc(undefined, { saslMechanism: "kerberos" }), kin({})],
    id: "in",
    expect: /unknown SASL mechanism "kerberos"/,
  },
  {
    name: "SCRAM-SHA-512 without credentials",
    flow: [kc(undefined, { saslMechanism: "scram-sha-512" }), kin({})],
    id: "in",
    expect: /SCRAM-SHA-512 needs a username and a password/,
  },
  {
    name: "OAUTHBEARER without a token endpoint",
    flow: [kc(undefined, { saslMechanism: "oauthbearer" }), kin({})],
    id: "in",
    expect: /OAUTHBEARER needs a token endpoint/,
  },
  {
    name: "a Kafka that refuses connections",
    flow: [kc("127.0.0.1:1", { connectionTimeoutMs: 1000 }), kin({})],
    id: "in",
    expect: /Kafka consumer failed and reconnects: .*(ECONNREFUSED|connect)/i,
    // kafkajs retries the connection itself for a while before giving up
    withinMs: 45_000,
  },
  {
    name: "a Pulsar dead-letter target without a pulsar-cluster",
    flow: [
      kc(),
      kin({
        failurePolicy: "dead-letter",
        deadLetterTarget: "pulsar",
        deadLetterTopic: "persistent://public/default/dlq",
      }),
    ],
    id: "in",
    expect: /pulsar-cluster/,
  },
  {
    name: "TLS from a tls-config node that is not deployed",
    flow: [kc(undefined, { tls: true, tlsConfig: "no-such-tls" }), kin({})],
    id: "in",
    expect: /TLS configuration node no-such-tls is not deployed/,
  },
  {
    name: "TLS from a tls-config node whose certificate and key files do not exist",
    flow: [
      {
        id: "tls",
        type: "tls-config",
        name: "gone",
        cert: "/nonexistent/c.pem",
        key: "/nonexistent/k.pem",
        ca: "",
      },
      kc(undefined, { tls: true, tlsConfig: "tls" }),
      kin({}),
    ],
    id: "in",
    expect: /TLS configuration node "gone" is invalid: a certificate or key file is missing or unreadable/,
  },
  {
    name: "pulsar-out without a cluster",
    flow: [{ id: "out", type: "pulsar-out", cluster: "", topic: "t", wires: [] }],
    id: "out",
    expect: /no pulsar-cluster/,
  },
  {
    name: "pulsar-out with an invalid fixed topic",
    flow: [pc(), { id: "out", type: "pulsar-out", cluster: "pc", topic: "a/b/c/d", wires: [] }],
    id: "out",
    expect: /not a valid Pulsar topic/,
  },
  {
    name: "pulsar-out with a broken template",
    flow: [pc(), { id: "out", type: "pulsar-out", cluster: "pc", topic: "{{#open}}", wires: [] }],
    id: "out",
    expect: /template is invalid/,
  },
];

for (const c of configCases) {
  test(`bad configuration: ${c.name} -> a clear error, no crash`, async () => {
    await loadFlow(c.flow);
    await eventually(
      () => errorsOf(c.id).some((m) => c.expect.test(m)),
      `error ${String(c.expect)} from ${c.id}`,
      c.withinMs,
    );
  });
}

/** Sends msg into pulsar-out and resolves with what the Catch node got. */
async function caught(
  flowExtra: object[],
  out: Record<string, unknown>,
  msg: Record<string, unknown>,
): Promise<{ error: { message: string }; payload?: unknown }> {
  await loadFlow([
    { id: "f1", type: "tab" },
    ...flowExtra,
    { id: "out", type: "pulsar-out", z: "f1", cluster: "pc", wires: [], ...out },
    { id: "c1", type: "catch", z: "f1", scope: ["out"], wires: [["sink"]] },
    { id: "sink", type: "helper", z: "f1" },
  ]);
  const sink = helper.getNode("sink");
  assert.ok(sink);
  const got = new Promise<{ error: { message: string }; payload?: unknown }>((resolve) =>
    sink.on("input", (m: { error: { message: string } }) => resolve(m)),
  );
  helper.getNode("out")?.receive(msg);
  return got;
}

function circular(): Record<string, unknown> {
  const o: Record<string, unknown> = { a: 1 };
  o.self = o;
  return o;
}

const msgCases: {
  name: string;
  out: Record<string, unknown>;
  msg: Record<string, unknown>;
  expect: RegExp;
  cluster?: object;
}[] = [
  {
    name: "a template that renders an invalid topic",
    out: { topic: "persistent://public/default/{{missing}}" },
    msg: { payload: "x" },
    expect: /rendered from/,
  },
  {
    name: "msg.topic missing when the topic comes from the msg",
    out: { topicType: "msg" },
    msg: { payload: "x" },
    expect: /msg.topic is not set/,
  },
  {
    name: "msg.topic that Pulsar would refuse",
    out: { topicType: "msg" },
    msg: { payload: "x", topic: "a b" },
    expect: /not a valid Pulsar topic/,
  },
  {
    name: "an oversize payload",
    out: { topic: uniqueName("t"), batching: false },
    msg: { payload: Buffer.alloc(6 * 1024 * 1024) },
    expect: /exceeds the broker's maximum/,
  },
  {
    name: "msg.properties that is not an object",
    out: { topic: uniqueName("t") },
    msg: { payload: "x", properties: ["a"] },
    expect: /msg.properties must be an object/,
  },
  {
    name: "an invalid event time",
    out: { topic: uniqueName("t") },
    msg: { payload: "x", eventTime: "yesterday-ish" },
    expect: /not a valid time/,
  },
  {
    name: "a topic in a tenant that does not exist",
    out: { topic: `persistent://no-such-tenant/default/${uniqueName("t")}` },
    msg: { payload: "x" },
    expect: /./,
  },
  {
    name: "effectively-once without kafka provenance",
    out: { topic: uniqueName("t"), effectivelyOnce: true },
    msg: { payload: "x" },
    expect: /needs msg.kafka/,
  },
  {
    name: "an unreachable Pulsar",
    out: { topic: uniqueName("t") },
    msg: { payload: "x" },
    expect: /cannot connect|closed|connect/i,
    cluster: pc("pulsar://127.0.0.1:1", { connectionTimeoutMs: 2000, operationTimeoutMs: 4000 }),
  },
  {
    name: "a payload that is a function",
    out: { topic: uniqueName("t") },
    msg: { payload: () => 1 },
    expect: /msg.payload of type function cannot be serialised/,
  },
  {
    name: "a payload with a circular reference",
    out: { topic: uniqueName("t") },
    msg: { payload: circular() },
    expect: /cannot be serialised as JSON/,
  },
  {
    name: "msg.key that is an object",
    out: { topic: uniqueName("t") },
    msg: { payload: "x", key: { id: 1 } },
    expect: /msg.key must be a string or a Buffer/,
  },
  {
    name: "msg.deliverAfter that is not a duration",
    out: { topic: uniqueName("t") },
    msg: { payload: "x", deliverAfter: "soon" },
    expect: /msg.deliverAfter must be a number of milliseconds/,
  },
  {
    name: "a topic in a namespace that does not exist",
    out: { topic: `persistent://public/no-such-namespace/${uniqueName("t")}` },
    msg: { payload: "x" },
    expect: /./,
  },
  {
    name: "the pulsar-client engine when it is not installed",
    out: { topic: uniqueName("t") },
    msg: { payload: "x" },
    expect: /pulsar-client package is not installed.*npm install pulsar-client/,
    cluster: pc(undefined, { engine: "pulsar-client" }),
  },
  {
    name: "token authentication without a token",
    out: { topic: uniqueName("t") },
    msg: { payload: "x" },
    expect: /token/i,
    cluster: pc(undefined, { authMethod: "token" }),
  },
  {
    name: "effectively-once to a topic without deduplication (checked through the admin URL)",
    out: { topic: `persistent://public/${NO_DEDUP_NS}/${uniqueName("t")}`, effectivelyOnce: true },
    msg: { payload: "x", kafka: { topic: "src", partition: 0, offset: "7", attempt: 1 } },
    expect: /deduplication is off for persistent:\/\/public\/.*set-deduplication --enable/,
    cluster: pc(undefined, { adminUrl: pulsarHttpUrl }),
  },
  {
    name: "pulsar+ssl:// with a tls-config node that is not deployed",
    out: { topic: uniqueName("t") },
    msg: { payload: "x" },
    expect: /TLS configuration node no-such-tls is not deployed/,
    cluster: pc("pulsar+ssl://127.0.0.1:6651", { tlsConfig: "no-such-tls" }),
  },
  {
    name: "a service URL that is not pulsar://",
    out: { topic: uniqueName("t") },
    msg: { payload: "x" },
    expect: /not a Pulsar service URL/,
    cluster: pc("http://127.0.0.1:8080"),
  },
];

for (const c of msgCases) {
  test(`bad msg: ${c.name} -> Catch gets the original msg with a clear error`, async () => {
    const got = await caught([c.cluster ?? pc()], c.out, c.msg);
    assert.match(got.error.message, c.expect);
    assert.deepEqual(got.payload, c.msg.payload, "the original msg");
  });
}

test("after all that, the runtime still bridges a good msg", async () => {
  await loadFlow([
    pc(),
    { id: "out", type: "pulsar-out", cluster: "pc", topic: uniqueName("ok"), outputs: 1, wires: [["sink"]] },
    { id: "sink", type: "helper" },
  ]);
  const sink = helper.getNode("sink");
  assert.ok(sink);
  const got = new Promise<{ pulsar: { messageId: { entryId: number } } }>((resolve) =>
    sink.on("input", (m: never) => resolve(m)),
  );
  helper.getNode("out")?.receive({ payload: "fine" });
  assert.ok((await got).pulsar.messageId.entryId >= 0);
});

test("a plain pulsar:// cluster that still names a tls-config node it no longer uses publishes (the field is hidden then)", async () => {
  await loadFlow([
    pc(undefined, { tlsConfig: "no-such-tls", adminUrl: pulsarHttpUrl }),
    {
      id: "out",
      type: "pulsar-out",
      cluster: "pc",
      topic: `persistent://public/${DEDUP_NS}/${uniqueName("ok")}`,
      effectivelyOnce: true,
      outputs: 1,
      wires: [["sink"]],
    },
    { id: "sink", type: "helper" },
    { id: "c1", type: "catch", scope: ["out"], wires: [["caught"]] },
    { id: "caught", type: "helper" },
  ]);
  const sink = helper.getNode("sink");
  const caughtNode = helper.getNode("caught");
  assert.ok(sink && caughtNode);
  // the msg comes out after the ack, or reaches Catch with the error: either way the test ends
  const got = new Promise<{ pulsar: { messageId: { entryId: number } } }>((resolve, reject) => {
    sink.on("input", (m: never) => resolve(m));
    caughtNode.on("input", (m: { error: { message: string } }) => reject(new Error(m.error.message)));
  });
  // effectively-once: the deduplication check goes through the http:// admin URL, which must not need TLS either
  helper
    .getNode("out")
    ?.receive({ payload: "fine", kafka: { topic: "src", partition: 0, offset: "1", attempt: 1 } });
  assert.ok((await got).pulsar.messageId.entryId >= 0);
  // nor a warning that deduplication could not be checked
  assert.deepEqual([...errorsOf("pc"), ...errorsOf("out"), ...errorsOf("out", WARN)], []);
});
