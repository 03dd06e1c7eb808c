// Secured brokers of this test's own (scripts/brokers.mjs with KAFKA_SECURITY=sasl-ssl-mtls and PULSAR_TLS=1):
// the nodes bridge Kafka SASL_SSL (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN) and Kafka mTLS to Pulsar over
// pulsar+ssl://, with TLS from kafka-cluster's PEM credentials or from a core tls-config node; a wrong
// password, a missing client certificate, an untrusted broker certificate and an untrusted Pulsar
// certificate give clear errors without a crash or a hang; and no secret shows in the stored or exported
// flow, nor in anything logged.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { inspect } from "node:util";
import { after, before, test, type TestContext } from "node:test";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { createTopic, produce, type TestRecord } from "../support/kafka";
import { uniqueName } from "../support/brokers";
import { freePort, makeUserDir, startNodeRed, type NodeRedProcess } from "../support/node-red-process";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";
import { waitFor } from "../support/wait";
import { createKafka, type SaslMechanism } from "../../src/kafka/client";
import { createClient } from "../../src/pulsar/client";
import type { Consumer, PulsarClient, ReceivedMessage } from "../../src/pulsar/types";

let b: OwnBrokers;
let plain: string[]; // the PLAINTEXT listener: test records go in there
let saslBroker: string;
let mtlsBroker: string;
let pulsarTlsUrl: string;
let scramUser: string; // SCRAM-SHA-512
let scramPassword: string;
let sha256User: string; // SCRAM-SHA-256
let sha256Password: string;
let plainUser: string; // PLAIN
let plainPassword: string;
let certs: string; // the folder of the test CA and certificates
let ca: string;
let clientCert: string;
let clientKey: string;
let otherCa: string; // a CA that did not sign the brokers' certificates
let pulsar: PulsarClient; // reads back over pulsar+ssl://

before(async () => {
  const [saslPort, mtlsPort, pulsarTlsPort, pulsarHttpsPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  b = await ownBrokers({
    KAFKA_SECURITY: "sasl-ssl-mtls",
    KAFKA_SASL_SSL_PORT: String(saslPort),
    KAFKA_MTLS_PORT: String(mtlsPort),
    PULSAR_TLS: "1",
    PULSAR_TLS_PORT: String(pulsarTlsPort),
    PULSAR_HTTPS_PORT: String(pulsarHttpsPort),
  });
  await b.brokers("start");
  const env = Object.fromEntries(
    (await b.brokers("env"))
      .split("\n")
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  plain = [b.kafkaBootstrap];
  saslBroker = env.KAFKA_SASL_SSL_BROKERS ?? "";
  mtlsBroker = env.KAFKA_MTLS_BROKERS ?? "";
  pulsarTlsUrl = env.PULSAR_TLS_URL ?? "";
  assert.equal(saslBroker, `127.0.0.1:${saslPort}`);
  assert.equal(mtlsBroker, `127.0.0.1:${mtlsPort}`);
  assert.equal(pulsarTlsUrl, `pulsar+ssl://127.0.0.1:${pulsarTlsPort}`);
  const password = (file: string | undefined) => fs.readFileSync(file ?? "", "utf8").trim();
  scramUser = env.KAFKA_SCRAM_USER ?? "";
  scramPassword = password(env.KAFKA_SCRAM_PASSWORD_FILE);
  sha256User = env.KAFKA_SCRAM_SHA256_USER ?? "";
  sha256Password = password(env.KAFKA_SCRAM_SHA256_PASSWORD_FILE);
  plainUser = env.KAFKA_PLAIN_USER ?? "";
  plainPassword = password(env.KAFKA_PLAIN_PASSWORD_FILE);
  const users = [scramUser, sha256User, plainUser];
  const passwords = [scramPassword, sha256Password, plainPassword];
  assert.equal(new Set(users).size, 3, `one user per mechanism: ${users.join(", ")}`);
  assert.equal(new Set(passwords).size, 3, "one password per user");
  for (const p of passwords) assert.ok(p.length >= 16);
  certs = await b.brokers("certs");
  assert.equal(certs, env.BROKERS_CERTS);
  const pem = (name: string) => fs.readFileSync(path.join(certs, name), "utf8");
  ca = pem("ca.pem");
  clientCert = pem("client.pem");
  clientKey = pem("client-key.pem");
  assert.match(clientKey, /^-----BEGIN PRIVATE KEY-----/, "an unencrypted PKCS#8 key");
  const other = path.join(b.home, "other-ca");
  fs.mkdirSync(other);
  const r = spawnSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=some other CA"],
      ...["-keyout", path.join(other, "key.pem"), "-out", path.join(other, "ca.pem")],
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  otherCa = fs.readFileSync(path.join(other, "ca.pem"), "utf8");
  pulsar = createClient({ serviceUrl: pulsarTlsUrl, tls: { trustCertsPem: ca } });
});

after(async () => {
  await pulsar?.close();
  await stopHelper();
  await b?.dispose();
});

/** The strings that must never be shown: the SASL passwords and each line of the client key's body. */
function secrets(extra: string[] = []): string[] {
  const keyLines = clientKey.split("\n").filter((l) => l.length >= 40 && !l.startsWith("-----"));
  assert.ok(keyLines.length > 10);
  return [scramPassword, sha256Password, plainPassword, ...keyLines, ...extra];
}

function assertNoSecret(where: string, text: string, extra: string[] = []): void {
  for (const s of secrets(extra)) assert.ok(!text.includes(s), `a secret appears in ${where}`);
}

/** Everything the runtime logged since loadFlow (node-red-node-test-helper's spy on RED.log.log). */
function helperLog(): string {
  const spy = (helper as unknown as { log(): { args: unknown[][] } }).log();
  return spy.args.map((a) => inspect(a, { depth: 6, breakLength: Infinity })).join("\n");
}

/** What the helper runtime holds as its flow (RED.nodes.getFlows()). */
function runtimeFlows(): string {
  const nodes = (helper as unknown as { _redNodes: { getFlows(): unknown } })._redNodes;
  return JSON.stringify(nodes.getFlows());
}

/** Keyed records, half of them with a value that is not UTF-8, to compare byte for byte after the bridge. */
function testRecords(n: number, tag: string): TestRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    key: i % 3 === 0 ? Buffer.from([0xff, 0xfe, i]) : `${tag}-key-${i}`,
    value: i % 2 === 0 ? Buffer.from([0x00, 0xc3, 0x28, i, 0x80]) : `${tag} ${i} ünïcødé`,
  }));
}

const bytes = (v: TestRecord["key"]) => (Buffer.isBuffer(v) ? v : Buffer.from(String(v), "utf8"));

/** Key and value of each record as hex, sorted: what Pulsar must hold after the bridge. */
function recordBytes(records: TestRecord[]): string[] {
  return records.map((r) => `${bytes(r.key).toString("hex")}=${bytes(r.value).toString("hex")}`).sort();
}

/** Key and payload of each Pulsar message as hex, sorted. */
function messageBytes(messages: ReceivedMessage[]): string[] {
  return messages.map((m) => `${m.keyBytes?.toString("hex")}=${m.payload.toString("hex")}`).sort();
}

async function drain(consumer: Consumer, n: number, timeoutMs = 60_000): Promise<ReceivedMessage[]> {
  const out: ReceivedMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n && Date.now() < deadline) {
    try {
      const m = await consumer.receive(Math.min(deadline - Date.now(), 5000));
      out.push(m);
      await consumer.acknowledge(m);
    } catch {
      /* keep waiting until the deadline */
    }
  }
  return out;
}

/**
 * Bridges 50 records from a kafka-cluster on the SASL_SSL listener with `mechanism` to Pulsar over
 * pulsar+ssl:// and checks them byte for byte, then that no secret is in the flow, the runtime or its log.
 */
async function bridgeOverSaslSsl(
  mechanism: SaslMechanism,
  username: string,
  password: string,
): Promise<void> {
  const kafkaTopic = uniqueName(mechanism);
  const pulsarTopic = `persistent://public/default/${uniqueName(mechanism)}`;
  await createTopic(kafkaTopic, 2, plain);
  const consumer = await pulsar.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });
  const records = testRecords(50, mechanism);
  await produce(kafkaTopic, records, 500, plain);
  const flow = [
    {
      id: "kc",
      type: "kafka-cluster",
      brokers: saslBroker,
      clientId: "security-test",
      tls: true,
      saslMechanism: mechanism,
    },
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarTlsUrl },
    {
      id: "in",
      type: "kafka-in",
      cluster: "kc",
      topics: kafkaTopic,
      groupId: uniqueName("g"),
      startFrom: "earliest",
      wires: [["out"]],
    },
    { id: "out", type: "pulsar-out", cluster: "pc", topic: pulsarTopic, wires: [] },
  ];
  await loadFlow(flow, {
    kc: { username, password, tlsCa: ca },
    pc: { tlsCa: ca },
  });
  try {
    const got = await drain(consumer, records.length);
    assert.deepEqual(
      messageBytes(got),
      recordBytes(records),
      "every record, with its key, arrived byte for byte over pulsar+ssl://",
    );
    assertNoSecret("the flow given to the runtime", JSON.stringify(flow));
    assertNoSecret("RED.nodes.getFlows()", runtimeFlows());
    assertNoSecret("the runtime log", helperLog());
  } finally {
    await unloadFlow();
    await consumer.close();
  }
}

test("SASL_SSL + SCRAM-SHA-512 to pulsar+ssl://: every record is bridged; no secret in the flow or the log", async () => {
  await bridgeOverSaslSsl("scram-sha-512", scramUser, scramPassword);
});

test("SASL_SSL + SCRAM-SHA-256 to pulsar+ssl://: every record is bridged; no secret in the flow or the log", async () => {
  await bridgeOverSaslSsl("scram-sha-256", sha256User, sha256Password);
});

test("SASL_SSL + PLAIN to pulsar+ssl://: every record is bridged; no secret in the flow or the log", async () => {
  await bridgeOverSaslSsl("plain", plainUser, plainPassword);
});

// The broker knows each user for one mechanism only, so each case above passes only with its own mechanism.
test("SASL_SSL: each user is refused with any other mechanism than its own", async () => {
  const users: [SaslMechanism, string, string][] = [
    ["scram-sha-512", scramUser, scramPassword],
    ["scram-sha-256", sha256User, sha256Password],
    ["plain", plainUser, plainPassword],
  ];
  for (const [mechanism] of users) {
    for (const [own, username, password] of users) {
      if (own === mechanism) continue;
      const admin = createKafka({
        brokers: [saslBroker],
        clientId: "security-test",
        tls: { ca },
        saslMechanism: mechanism,
        username,
        password,
        connectionTimeoutMs: 5000,
        requestTimeoutMs: 5000,
      }).admin({ retry: { retries: 0 } });
      try {
        await assert.rejects(admin.connect(), /authentication failed/i, `${username} with ${mechanism}`);
      } finally {
        await admin.disconnect();
      }
    }
  }
});

test("mTLS: a client certificate and key from the credentials let kafka-in consume", async () => {
  const kafkaTopic = uniqueName("mtls");
  await createTopic(kafkaTopic, 1, plain);
  await produce(kafkaTopic, [{ key: "m", value: "over mutual TLS" }], 500, plain);
  await loadFlow(
    [
      { id: "kc", type: "kafka-cluster", brokers: mtlsBroker, tls: true },
      {
        id: "in",
        type: "kafka-in",
        cluster: "kc",
        topics: kafkaTopic,
        groupId: uniqueName("g"),
        startFrom: "earliest",
        wires: [["sink"]],
      },
      { id: "sink", type: "helper" },
    ],
    { kc: { tlsCa: ca, tlsCert: clientCert, tlsKey: clientKey } },
  );
  try {
    const sink = helper.getNode("sink");
    assert.ok(sink);
    const msg = await new Promise<{ payload: unknown; kafka: { topic: string } }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no record within 60 s")), 60_000);
      sink.on("input", (m: never) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
    assert.equal(msg.payload, "over mutual TLS");
    assert.equal(msg.kafka.topic, kafkaTopic);
    assertNoSecret("the runtime log", helperLog());
  } finally {
    await unloadFlow();
  }
});

test("pulsar+ssl:// with an untrusted or no CA: Catch gets the msg with a certificate error, fast", async (t) => {
  const topic = `persistent://public/default/${uniqueName("untrusted")}`;
  const timeouts = { connectionTimeoutMs: 3000, operationTimeoutMs: 5000 };
  await loadFlow(
    [
      { id: "f1", type: "tab" },
      { id: "pc-wrong", type: "pulsar-cluster", serviceUrl: pulsarTlsUrl, ...timeouts },
      { id: "pc-none", type: "pulsar-cluster", serviceUrl: pulsarTlsUrl, ...timeouts },
      { id: "out-wrong", type: "pulsar-out", z: "f1", cluster: "pc-wrong", topic, wires: [] },
      { id: "out-none", type: "pulsar-out", z: "f1", cluster: "pc-none", topic, wires: [] },
      { id: "c1", type: "catch", z: "f1", scope: ["out-wrong", "out-none"], wires: [["sink"]] },
      { id: "sink", type: "helper", z: "f1" },
    ],
    { "pc-wrong": { tlsCa: otherCa } },
  );
  try {
    const sink = helper.getNode("sink");
    assert.ok(sink);
    const caught = new Map<string, { payload: unknown; error: { message: string } }>();
    sink.on("input", (m: never) => {
      const msg = m as { payload: string; error: { message: string } };
      caught.set(msg.payload, msg);
    });
    const started = Date.now();
    helper.getNode("out-wrong")?.receive({ payload: "to out-wrong" });
    helper.getNode("out-none")?.receive({ payload: "to out-none" });
    await waitFor("both msgs at Catch", () => caught.size === 2, 30_000, 100);
    assert.ok(Date.now() - started < 30_000, "no hang");
    for (const id of ["out-wrong", "out-none"]) {
      const msg = caught.get(`to ${id}`);
      assert.ok(msg, `the original msg of ${id} reached Catch`);
      assert.match(msg.error.message, /certificate/i, `${id}: ${msg.error.message}`);
      t.diagnostic(`${id}: ${msg.error.message}`);
    }
  } finally {
    await unloadFlow();
  }
});

/** A real node-red logging at debug level, so that every diagnostic of the Kafka client is in the checked log. */
async function startDebugNodeRed(t: TestContext): Promise<NodeRedProcess> {
  const userDir = makeUserDir();
  t.after(() => fs.rmSync(userDir, { recursive: true, force: true }));
  fs.writeFileSync(
    path.join(userDir, "settings.js"),
    `module.exports = { uiHost: "127.0.0.1", flowFile: "flows.json", credentialSecret: "e2e-secret", editorTheme: { tours: false }, telemetry: { enabled: false }, logging: { console: { level: "debug" } } };\n`,
  );
  const red = await startNodeRed({ userDir });
  t.after(() => red.stop());
  return red;
}

// Nodes of a real node-red flow, on tab "tab".
const kafkaIn = (id: string, cluster: string, topic: string, wires: string[]) => ({
  id,
  type: "kafka-in",
  z: "tab",
  cluster,
  topics: topic,
  groupId: uniqueName(id),
  startFrom: "earliest",
  wires: [wires],
});
// Debug nodes print to the log: "[debug:<id>] <text>".
const debugNode = (id: string, complete: string) => ({
  id,
  type: "debug",
  z: "tab",
  active: true,
  tosidebar: false,
  console: true,
  complete,
  wires: [],
});
// A status node for `node` whose statuses debug node `<id>-log` prints.
const statusNode = (id: string, node: string) => ({
  id,
  type: "status",
  z: "tab",
  scope: [node],
  wires: [[`${id}-log`]],
});

/** The texts debug node `id` printed; a text with a newline starts on the line after the prefix. */
function logged(red: NodeRedProcess, id: string): string[] {
  return red
    .output()
    .split(/\n(?=\d{1,2} \w{3} \d\d:\d\d:\d\d - \[)/)
    .filter((entry) => entry.includes(`[debug:${id}] `))
    .map((entry) => entry.slice(entry.indexOf(`[debug:${id}] `) + id.length + 9).trim());
}

/** Waits for a line of debug node `id` matching `re`; the failure names what was logged instead. */
async function waitLogged(red: NodeRedProcess, what: string, id: string, re: RegExp): Promise<void> {
  try {
    await waitFor(what, () => logged(red, id).some((s) => re.test(s)), 60_000, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message}; ${id} logged: ${JSON.stringify(logged(red, id))}`);
  }
}

/** GET /flows, flows.json and the (encrypted) flows_cred.json of a real node-red hold no secret. */
async function assertNoSecretStored(red: NodeRedProcess, extra: string[]): Promise<string> {
  const exported = await red.api("GET", "/flows", undefined, { "Node-RED-API-Version": "v2" });
  assert.equal(exported.status, 200);
  const exportedText = JSON.stringify(exported.json);
  assertNoSecret("GET /flows", exportedText, extra);
  assert.doesNotMatch(exportedText, /"credentials"/, "no credentials in the exported nodes");
  assertNoSecret("flows.json", fs.readFileSync(path.join(red.userDir, "flows.json"), "utf8"), extra);
  const credFile = fs.readFileSync(path.join(red.userDir, "flows_cred.json"), "utf8");
  assertNoSecret("flows_cred.json (encrypted)", credFile, extra);
  assert.doesNotMatch(credFile, /bridge|BEGIN/, "the credentials file is encrypted");
  return exportedText;
}

test("a real node-red: wrong SCRAM and PLAIN passwords and a missing client certificate show clear statuses and errors; no secret in /flows, the flow files or the log", async (t) => {
  const red = await startDebugNodeRed(t);
  const topic = uniqueName("real");
  await createTopic(topic, 1, plain);
  await produce(topic, [{ key: "r", value: "record for the real node-red" }], 500, plain);
  const wrongPassword = `wrong-${uniqueName("pw")}`;
  const wrongPlainPassword = `wrong-${uniqueName("plain")}`;
  const flow = [
    { id: "tab", type: "tab", label: "security" },
    {
      id: "kc-scram",
      type: "kafka-cluster",
      brokers: saslBroker,
      tls: true,
      saslMechanism: "scram-sha-512",
      credentials: { username: scramUser, password: scramPassword, tlsCa: ca },
    },
    {
      id: "kc-wrong",
      type: "kafka-cluster",
      brokers: saslBroker,
      tls: true,
      saslMechanism: "scram-sha-512",
      credentials: { username: scramUser, password: wrongPassword, tlsCa: ca },
    },
    {
      id: "kc-wrong-plain",
      type: "kafka-cluster",
      brokers: saslBroker,
      tls: true,
      saslMechanism: "plain",
      credentials: { username: plainUser, password: wrongPlainPassword, tlsCa: ca },
    },
    {
      id: "kc-mtls",
      type: "kafka-cluster",
      brokers: mtlsBroker,
      tls: true,
      credentials: { tlsCa: ca, tlsCert: clientCert, tlsKey: clientKey },
    },
    { id: "kc-nocert", type: "kafka-cluster", brokers: mtlsBroker, tls: true, credentials: { tlsCa: ca } },
    kafkaIn("in-scram", "kc-scram", topic, ["got-scram"]),
    debugNode("got-scram", "payload"),
    kafkaIn("in-mtls", "kc-mtls", topic, ["got-mtls"]),
    debugNode("got-mtls", "payload"),
    kafkaIn("in-wrong", "kc-wrong", topic, []),
    statusNode("st-wrong", "in-wrong"),
    debugNode("st-wrong-log", "status.text"),
    kafkaIn("in-wrong-plain", "kc-wrong-plain", topic, []),
    statusNode("st-wrong-plain", "in-wrong-plain"),
    debugNode("st-wrong-plain-log", "status.text"),
    kafkaIn("in-nocert", "kc-nocert", topic, []),
    statusNode("st-nocert", "in-nocert"),
    debugNode("st-nocert-log", "status.text"),
  ];
  await red.deploy(flow);
  await waitLogged(red, "the record through SASL_SSL", "got-scram", /^record for the real node-red$/);
  await waitLogged(red, "the record through mTLS", "got-mtls", /^record for the real node-red$/);
  await waitLogged(
    red,
    "in-wrong to name the authentication failure",
    "st-wrong-log",
    /^reconnecting: .*SCRAM SHA512 authentication failed/i,
  );
  await waitLogged(
    red,
    "in-wrong-plain to name the authentication failure",
    "st-wrong-plain-log",
    /^reconnecting: .*PLAIN authentication failed/i,
  );
  await waitLogged(
    red,
    "in-nocert to name the refused certificate",
    "st-nocert-log",
    /^reconnecting: .*certificate/i,
  );
  for (const id of ["st-wrong-log", "st-wrong-plain-log", "st-nocert-log"])
    t.diagnostic(`${id}: ${logged(red, id).join(" | ")}`);
  // the failures are logged as errors of the kafka-in node too, not only shown as statuses
  const output = red.output();
  assert.match(output, /\[error\] \[kafka-in:in-wrong\] .*SCRAM SHA512 authentication failed/i);
  assert.match(output, /\[error\] \[kafka-in:in-wrong-plain\] .*PLAIN authentication failed/i);
  // Node-RED kept running
  assert.equal(red.process.exitCode, null);
  assert.equal((await red.api("GET", "/settings")).status, 200);

  // The flow as the Admin API exports it, the flow files, the credentials API and the log hold no secret.
  const extra = [wrongPassword, wrongPlainPassword];
  const exportedText = await assertNoSecretStored(red, extra);
  assert.match(exportedText, /"kc-scram"/);
  for (const id of ["kc-scram", "kc-wrong-plain", "kc-mtls"]) {
    const creds = await red.api("GET", `/credentials/kafka-cluster/${id}`);
    assert.equal(creds.status, 200);
    assertNoSecret(`GET /credentials/kafka-cluster/${id}`, JSON.stringify(creds.json), extra);
  }
  const scramCreds = (await red.api("GET", "/credentials/kafka-cluster/kc-scram")).json as Record<
    string,
    unknown
  >;
  assert.equal(scramCreds.username, scramUser);
  assert.equal(scramCreds.has_password, true);
  const plainCreds = (await red.api("GET", "/credentials/kafka-cluster/kc-wrong-plain")).json as Record<
    string,
    unknown
  >;
  assert.equal(plainCreds.username, plainUser);
  assert.equal(plainCreds.has_password, true);
  const mtlsCreds = (await red.api("GET", "/credentials/kafka-cluster/kc-mtls")).json as Record<
    string,
    unknown
  >;
  assert.equal(mtlsCreds.has_tlsKey, true);
  assert.equal(mtlsCreds.tlsKey, undefined);
  assertNoSecret("the node-red log", red.output(), extra);
});

test("a real node-red: TLS from core tls-config nodes (uploaded CA, certificate and key to mTLS; a CA file to SASL_SSL + PLAIN) bridges byte for byte; an untrusted CA fails clearly; no secret in /flows, the flow files or the log", async (t) => {
  const red = await startDebugNodeRed(t);
  const kafkaTopics = { mtls: uniqueName("tlsconfig-mtls"), plain: uniqueName("tlsconfig-plain") };
  const pulsarTopics = {
    mtls: `persistent://public/default/${uniqueName("tlsconfig-mtls")}`,
    plain: `persistent://public/default/${uniqueName("tlsconfig-plain")}`,
  };
  const records = { mtls: testRecords(40, "tls-config mtls"), plain: testRecords(40, "tls-config plain") };
  for (const k of ["mtls", "plain"] as const) {
    await createTopic(kafkaTopics[k], 2, plain);
    await produce(kafkaTopics[k], records[k], 500, plain);
  }
  const consumers = {
    mtls: await pulsar.subscribe({
      topic: pulsarTopics.mtls,
      subscription: "check",
      initialPosition: "earliest",
    }),
    plain: await pulsar.subscribe({
      topic: pulsarTopics.plain,
      subscription: "check",
      initialPosition: "earliest",
    }),
  };
  t.after(async () => {
    await consumers.mtls.close();
    await consumers.plain.close();
  });
  // A core tls-config node as its editor saves it: PEM uploaded into its credentials, or paths to files.
  const tlsConfig = (id: string, files: { ca?: string }, uploaded?: Record<string, string>) => ({
    id,
    type: "tls-config",
    // not the id: Node-RED takes any property naming a config node as a dependency on it
    name: `${id} (test)`,
    cert: "",
    key: "",
    ca: files.ca ?? "",
    certname: uploaded?.certdata ? "client.pem" : "",
    keyname: uploaded?.keydata ? "client-key.pem" : "",
    caname: uploaded?.cadata ? "ca.pem" : "",
    servername: "",
    verifyservercert: true,
    alpnprotocol: "",
    ...(uploaded ? { credentials: uploaded } : {}),
  });
  const flow = [
    { id: "tab", type: "tab", label: "tls-config" },
    tlsConfig("tls-uploaded", {}, { cadata: ca, certdata: clientCert, keydata: clientKey }),
    tlsConfig("tls-files", { ca: path.join(certs, "ca.pem") }),
    tlsConfig("tls-other-ca", {}, { cadata: otherCa, certdata: clientCert, keydata: clientKey }),
    // no PEM credentials on these kafka-cluster nodes: everything TLS comes from the tls-config node
    { id: "kc-mtls", type: "kafka-cluster", brokers: mtlsBroker, tls: true, tlsConfig: "tls-uploaded" },
    {
      id: "kc-plain",
      type: "kafka-cluster",
      brokers: saslBroker,
      tls: true,
      tlsConfig: "tls-files",
      saslMechanism: "plain",
      credentials: { username: plainUser, password: plainPassword },
    },
    { id: "kc-other-ca", type: "kafka-cluster", brokers: mtlsBroker, tls: true, tlsConfig: "tls-other-ca" },
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarTlsUrl, credentials: { tlsCa: ca } },
    kafkaIn("in-mtls", "kc-mtls", kafkaTopics.mtls, ["out-mtls"]),
    statusNode("st-mtls", "in-mtls"),
    debugNode("st-mtls-log", "status.text"),
    { id: "out-mtls", type: "pulsar-out", z: "tab", cluster: "pc", topic: pulsarTopics.mtls, wires: [] },
    kafkaIn("in-plain", "kc-plain", kafkaTopics.plain, ["out-plain"]),
    statusNode("st-plain", "in-plain"),
    debugNode("st-plain-log", "status.text"),
    { id: "out-plain", type: "pulsar-out", z: "tab", cluster: "pc", topic: pulsarTopics.plain, wires: [] },
    kafkaIn("in-other-ca", "kc-other-ca", kafkaTopics.mtls, []),
    statusNode("st-other-ca", "in-other-ca"),
    debugNode("st-other-ca-log", "status.text"),
  ];
  await red.deploy(flow);
  const [gotMtls, gotPlain] = await Promise.all([
    drain(consumers.mtls, records.mtls.length),
    drain(consumers.plain, records.plain.length),
  ]);
  const statuses = (id: string) => `; in-${id} showed: ${JSON.stringify(logged(red, `st-${id}-log`))}`;
  assert.deepEqual(
    messageBytes(gotMtls),
    recordBytes(records.mtls),
    `every record through mTLS with the uploaded tls-config arrived byte for byte${statuses("mtls")}`,
  );
  assert.deepEqual(
    messageBytes(gotPlain),
    recordBytes(records.plain),
    `every record through SASL_SSL + PLAIN with the CA file of a tls-config arrived byte for byte${statuses("plain")}`,
  );
  // the tls-config's CA decides: with another CA the broker's certificate is refused
  await waitLogged(
    red,
    "in-other-ca to name the untrusted broker certificate",
    "st-other-ca-log",
    /^reconnecting: .*certificate/i,
  );
  t.diagnostic(`st-other-ca-log: ${logged(red, "st-other-ca-log").join(" | ")}`);
  assert.match(red.output(), /\[error\] \[kafka-in:in-other-ca\] .*certificate/i);
  assert.equal(red.process.exitCode, null);

  const exportedText = await assertNoSecretStored(red, []);
  assert.match(exportedText, /"tls-uploaded"/);
  const plainCreds = (await red.api("GET", "/credentials/kafka-cluster/kc-plain")).json as Record<
    string,
    unknown
  >;
  assert.equal(plainCreds.username, plainUser);
  assert.equal(plainCreds.has_password, true);
  assertNoSecret("GET /credentials/kafka-cluster/kc-plain", JSON.stringify(plainCreds));
  assertNoSecret("the node-red log", red.output());
});
