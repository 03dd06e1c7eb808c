// Secured brokers of this test's own (scripts/brokers.mjs with KAFKA_SECURITY=sasl-ssl-mtls and PULSAR_TLS=1):
// the nodes bridge Kafka SASL_SSL + SCRAM-SHA-512 and Kafka mTLS to Pulsar over pulsar+ssl://; a wrong
// password, a missing client certificate and an untrusted Pulsar certificate give clear errors without a
// crash or a hang; and no secret shows in the stored or exported flow, nor in anything logged.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { inspect } from "node:util";
import { after, before, test } from "node:test";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { createTopic, produce } from "../support/kafka";
import { uniqueName } from "../support/brokers";
import { freePort, makeUserDir, startNodeRed } from "../support/node-red-process";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";
import { waitFor } from "../support/wait";
import { createClient } from "../../src/pulsar/client";
import type { Consumer, PulsarClient, ReceivedMessage } from "../../src/pulsar/types";

let b: OwnBrokers;
let plain: string[]; // the PLAINTEXT listener: test records go in there
let saslBroker: string;
let mtlsBroker: string;
let pulsarTlsUrl: string;
let scramUser: string;
let scramPassword: string;
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
  scramUser = env.KAFKA_SCRAM_USER ?? "";
  scramPassword = fs.readFileSync(env.KAFKA_SCRAM_PASSWORD_FILE ?? "", "utf8").trim();
  const certs = await b.brokers("certs");
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

/** The strings that must never be shown: the SCRAM password and each line of the client key's body. */
function secrets(extra: string[] = []): string[] {
  const keyLines = clientKey.split("\n").filter((l) => l.length >= 40 && !l.startsWith("-----"));
  assert.ok(keyLines.length > 10);
  return [scramPassword, ...keyLines, ...extra];
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

test("SASL_SSL + SCRAM-SHA-512 to pulsar+ssl://: every record is bridged; no secret in the flow or the log", async () => {
  const kafkaTopic = uniqueName("scram");
  const pulsarTopic = `persistent://public/default/${uniqueName("scram")}`;
  await createTopic(kafkaTopic, 2, plain);
  const consumer = await pulsar.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });
  const records = Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: `secured ${i}` }));
  await produce(kafkaTopic, records, 500, plain);
  const flow = [
    {
      id: "kc",
      type: "kafka-cluster",
      brokers: saslBroker,
      clientId: "security-test",
      tls: true,
      saslMechanism: "scram-sha-512",
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
    kc: { username: scramUser, password: scramPassword, tlsCa: ca },
    pc: { tlsCa: ca },
  });
  try {
    const got = await drain(consumer, records.length);
    assert.deepEqual(
      got.map((m) => `${m.keyBytes?.toString()}=${m.payload.toString()}`).sort(),
      records.map((r) => `${r.key}=${r.value}`).sort(),
      "every record, with its key, arrived over pulsar+ssl://",
    );
    assertNoSecret("the flow given to the runtime", JSON.stringify(flow));
    assertNoSecret("RED.nodes.getFlows()", runtimeFlows());
    assertNoSecret("the runtime log", helperLog());
  } finally {
    await unloadFlow();
    await consumer.close();
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

test("a real node-red: wrong SCRAM password and missing client certificate show clear statuses; no secret in /flows, the flow files or the log", async (t) => {
  const userDir = makeUserDir();
  t.after(() => fs.rmSync(userDir, { recursive: true, force: true }));
  // debug level, so that every diagnostic of the Kafka client is in the log that is checked
  fs.writeFileSync(
    path.join(userDir, "settings.js"),
    `module.exports = { uiHost: "127.0.0.1", flowFile: "flows.json", credentialSecret: "e2e-secret", editorTheme: { tours: false }, telemetry: { enabled: false }, logging: { console: { level: "debug" } } };\n`,
  );
  const red = await startNodeRed({ userDir });
  t.after(() => red.stop());
  const topic = uniqueName("real");
  await createTopic(topic, 1, plain);
  await produce(topic, [{ key: "r", value: "record for the real node-red" }], 500, plain);
  const wrongPassword = `wrong-${uniqueName("pw")}`;
  const kin = (id: string, cluster: string, wires: string[]) => ({
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
  const debug = (id: string, complete: string) => ({
    id,
    type: "debug",
    z: "tab",
    active: true,
    tosidebar: false,
    console: true,
    complete,
    wires: [],
  });
  const status = (id: string, node: string) => ({
    id,
    type: "status",
    z: "tab",
    scope: [node],
    wires: [[`${id}-log`]],
  });
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
      id: "kc-mtls",
      type: "kafka-cluster",
      brokers: mtlsBroker,
      tls: true,
      credentials: { tlsCa: ca, tlsCert: clientCert, tlsKey: clientKey },
    },
    { id: "kc-nocert", type: "kafka-cluster", brokers: mtlsBroker, tls: true, credentials: { tlsCa: ca } },
    kin("in-scram", "kc-scram", ["got-scram"]),
    debug("got-scram", "payload"),
    kin("in-mtls", "kc-mtls", ["got-mtls"]),
    debug("got-mtls", "payload"),
    kin("in-wrong", "kc-wrong", []),
    status("st-wrong", "in-wrong"),
    debug("st-wrong-log", "status.text"),
    kin("in-nocert", "kc-nocert", []),
    status("st-nocert", "in-nocert"),
    debug("st-nocert-log", "status.text"),
  ];
  await red.deploy(flow);
  // The texts debug node `id` printed; a text with a newline starts on the line after the prefix.
  const logged = (id: string) =>
    red
      .output()
      .split(/\n(?=\d{1,2} \w{3} \d\d:\d\d:\d\d - \[)/)
      .filter((entry) => entry.includes(`[debug:${id}] `))
      .map((entry) => entry.slice(entry.indexOf(`[debug:${id}] `) + id.length + 9).trim());
  // Waits for a line of debug node `id` matching `re`; the failure names what was logged instead.
  const waitLogged = async (what: string, id: string, re: RegExp) => {
    try {
      await waitFor(what, () => logged(id).some((s) => re.test(s)), 60_000, 200);
    } catch (err) {
      throw new Error(`${(err as Error).message}; ${id} logged: ${JSON.stringify(logged(id))}`);
    }
  };
  await waitLogged("the record through SASL_SSL", "got-scram", /^record for the real node-red$/);
  await waitLogged("the record through mTLS", "got-mtls", /^record for the real node-red$/);
  await waitLogged(
    "in-wrong to name the authentication failure",
    "st-wrong-log",
    /^reconnecting: .*authentication failed/i,
  );
  await waitLogged(
    "in-nocert to name the refused certificate",
    "st-nocert-log",
    /^reconnecting: .*certificate/i,
  );
  for (const id of ["st-wrong-log", "st-nocert-log"]) t.diagnostic(`${id}: ${logged(id).join(" | ")}`);
  // Node-RED kept running
  assert.equal(red.process.exitCode, null);
  assert.equal((await red.api("GET", "/settings")).status, 200);

  // The flow as the Admin API exports it, the flow files, the credentials API and the log hold no secret.
  const extra = [wrongPassword];
  const exported = await red.api("GET", "/flows", undefined, { "Node-RED-API-Version": "v2" });
  assert.equal(exported.status, 200);
  const exportedText = JSON.stringify(exported.json);
  assert.match(exportedText, /"kc-scram"/);
  assertNoSecret("GET /flows", exportedText, extra);
  assert.doesNotMatch(exportedText, /"credentials"/, "no credentials in the exported nodes");
  assertNoSecret("flows.json", fs.readFileSync(path.join(userDir, "flows.json"), "utf8"), extra);
  const credFile = fs.readFileSync(path.join(userDir, "flows_cred.json"), "utf8");
  assertNoSecret("flows_cred.json (encrypted)", credFile, extra);
  assert.doesNotMatch(credFile, /bridge|BEGIN/, "the credentials file is encrypted");
  for (const id of ["kc-scram", "kc-mtls"]) {
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
  const mtlsCreds = (await red.api("GET", "/credentials/kafka-cluster/kc-mtls")).json as Record<
    string,
    unknown
  >;
  assert.equal(mtlsCreds.has_tlsKey, true);
  assert.equal(mtlsCreds.tlsKey, undefined);
  assertNoSecret("the node-red log", red.output(), extra);
});
