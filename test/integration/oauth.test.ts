// OAuth2 against brokers of this test's own: a Pulsar with token authentication (PULSAR_AUTH=token) that
// checks credentials for expiry every 3 s (PULSAR_AUTH_REFRESH_S=3), and a Kafka with a SASL_PLAINTEXT +
// OAUTHBEARER listener (KAFKA_OAUTH=1, Kafka's unsecured JWS validator). The identity provider is a tiny
// OAuth2 server in this file (client-credentials grant on 127.0.0.1): for Pulsar it issues HS256 JWTs signed
// with the broker's token secret, for Kafka unsecured JWTs ("alg":"none").
//
// Proven: our client and a pulsar-out node (pulsar-cluster auth "oauth2") publish with tokens from the
// endpoint; a wrong client secret fails fast with a clear error; tokens that expire every few seconds are
// refreshed in place when the broker sends AUTH_CHALLENGE (no message lost, the connection kept), while a
// static token that expires gets the connection dropped, and the producer keeps trying to reconnect (the
// broker refusing the token each time, as the Java client would) while the sends fail by their timeout; kafka-in
// over OAUTHBEARER bridges records to pulsar-out over OAuth2, and a wrong secret shows in its status.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { inspect } from "node:util";
import { after, before, test } from "node:test";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { createTopic, produce } from "../support/kafka";
import { uniqueName } from "../support/brokers";
import { freePort } from "../support/node-red-process";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";
import { waitFor } from "../support/wait";
import { createClient } from "../../src/pulsar/client";
import { oauth2ClientCredentials, tokenAuth } from "../../src/pulsar/auth";
import { AuthenticationError, TimeoutError } from "../../src/pulsar/errors";
import type {
  Consumer,
  ProducerState,
  PulsarClient,
  ReceivedMessage,
  SendReceipt,
} from "../../src/pulsar/types";

const PULSAR_CLIENT = { id: "bridge-pulsar", secret: "pulsar-secret-7f3a9c" };
const KAFKA_CLIENT = { id: "bridge-kafka", secret: "kafka-secret-51be08" };
const WRONG_SECRET = "wrong-secret-c0ffee";

// ------------------------------------------------------------------ the identity provider

interface TokenRequest {
  path: string;
  ok: boolean;
  form: Record<string, string>;
  at: number;
}

interface IdentityProvider {
  /** http://127.0.0.1:<port> */
  url: string;
  /** Lifetime (exp - now, and expires_in) of the Pulsar tokens issued from now on. */
  pulsarLifetimeS: number;
  /** Every POST to a token endpoint, granted or refused. */
  requests: TokenRequest[];
  /** Every request, as "METHOD path". */
  log: string[];
  close(): Promise<void>;
}

const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

/** An HS256 JWT for Pulsar's AuthenticationProviderToken; exp rounded up so it never precedes expires_in. */
function hs256(secret: Buffer, claims: Record<string, unknown>): string {
  const unsigned = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

function startIdentityProvider(pulsarSecret: () => Buffer): Promise<IdentityProvider> {
  const idp: IdentityProvider = {
    url: "",
    pulsarLifetimeS: 60,
    requests: [],
    log: [],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => (body += d));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", idp.url);
      idp.log.push(`${req.method} ${url.pathname}`);
      if (req.method === "GET" && url.pathname === "/pulsar/.well-known/openid-configuration") {
        json(res, 200, {
          issuer: `${idp.url}/pulsar`,
          token_endpoint: `${idp.url}/pulsar/token`,
          grant_types_supported: ["client_credentials"],
        });
        return;
      }
      const client =
        url.pathname === "/pulsar/token"
          ? PULSAR_CLIENT
          : url.pathname === "/kafka/token"
            ? KAFKA_CLIENT
            : undefined;
      if (req.method !== "POST" || !client) {
        json(res, 404, { error: "not_found" });
        return;
      }
      const form = Object.fromEntries(new URLSearchParams(body));
      const ok =
        /^application\/x-www-form-urlencoded/.test(req.headers["content-type"] ?? "") &&
        form.grant_type === "client_credentials" &&
        form.client_id === client.id &&
        form.client_secret === client.secret;
      idp.requests.push({ path: url.pathname, ok, form, at: Date.now() });
      if (!ok) {
        json(res, 401, { error: "invalid_client", error_description: "client authentication failed" });
        return;
      }
      const now = Date.now() / 1000;
      if (client === PULSAR_CLIENT) {
        const lifetime = idp.pulsarLifetimeS;
        // the role "admin" is the broker's superuser
        const token = hs256(pulsarSecret(), {
          sub: "admin",
          iat: Math.floor(now),
          exp: Math.ceil(now) + lifetime,
        });
        json(res, 200, { access_token: token, token_type: "Bearer", expires_in: lifetime });
      } else {
        // an unsecured JWS (RFC 7515 appendix A.5): no signature after the second dot
        const claims = {
          sub: client.id,
          iat: Math.floor(now),
          exp: Math.ceil(now) + 300,
          scope: form.scope ?? "kafka",
        };
        json(res, 200, {
          access_token: `${b64url({ alg: "none" })}.${b64url(claims)}.`,
          token_type: "Bearer",
          expires_in: 300,
        });
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      idp.url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
      resolve(idp);
    });
  });
}

// ------------------------------------------------------------------ brokers

let b: OwnBrokers;
let idp: IdentityProvider;
let tokenSecret: Buffer;
let kafkaOauthBroker: string;
let reader: PulsarClient; // reads back with a non-expiring admin token
let pulsarLog: string;
let kafkaLog: string;

before(async () => {
  const oauthPort = await freePort();
  b = await ownBrokers({
    PULSAR_AUTH: "token",
    PULSAR_AUTH_REFRESH_S: "3",
    KAFKA_OAUTH: "1",
    KAFKA_OAUTH_PORT: String(oauthPort),
  });
  await b.brokers("start");
  const env = Object.fromEntries(
    (await b.brokers("env"))
      .split("\n")
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  kafkaOauthBroker = env.KAFKA_OAUTH_BROKERS ?? "";
  assert.equal(kafkaOauthBroker, `127.0.0.1:${oauthPort}`);
  assert.equal(env.PULSAR_AUTH_REFRESH_S, "3");
  tokenSecret = fs.readFileSync(env.PULSAR_TOKEN_SECRET_FILE ?? "");
  assert.equal(tokenSecret.length, 32);
  pulsarLog = path.join(b.home, "pulsar", "logs", "pulsar-standalone.out");
  kafkaLog = path.join(b.home, "kafka", "kafka.log");
  assert.match(
    fs.readFileSync(path.join(b.home, "pulsar", "standalone.conf"), "utf8"),
    /^authenticationRefreshCheckSeconds=3$/m,
  );
  idp = await startIdentityProvider(() => tokenSecret);
  reader = createClient({
    serviceUrl: b.serviceUrl,
    auth: tokenAuth({ token: await b.brokers("token", "admin") }),
  });
});

after(async () => {
  await reader?.close();
  await stopHelper();
  await idp?.close();
  await b?.dispose();
});

// ------------------------------------------------------------------ helpers

function oauthPulsar(secret = PULSAR_CLIENT.secret) {
  return oauth2ClientCredentials({
    issuerUrl: `${idp.url}/pulsar`,
    clientId: PULSAR_CLIENT.id,
    clientSecret: secret,
    audience: "urn:pulsar:test",
    scope: "pulsar.produce",
  });
}

const granted = (p: string) => idp.requests.filter((r) => r.path === p && r.ok).length;

async function subscribe(topic: string): Promise<Consumer> {
  return reader.subscribe({ topic, subscription: "check", initialPosition: "earliest" });
}

async function drain(consumer: Consumer, n: number, timeoutMs = 30_000): Promise<ReceivedMessage[]> {
  const out: ReceivedMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n && Date.now() < deadline) {
    try {
      const m = await consumer.receive(Math.min(deadline - Date.now(), 2000));
      out.push(m);
      await consumer.acknowledge(m);
    } catch {
      /* keep waiting until the deadline */
    }
  }
  // nothing more than expected (a duplicate would show here)
  try {
    const extra = await consumer.receive(1000);
    out.push(extra);
  } catch {
    /* none */
  }
  return out;
}

/** Everything the runtime logged since loadFlow (node-red-node-test-helper's spy on RED.log.log). */
function helperLog(): string {
  const spy = (helper as unknown as { log(): { args: unknown[][] } }).log();
  return spy.args.map((a) => inspect(a, { depth: 6, breakLength: Infinity })).join("\n");
}

/** Lines of a broker log written after `offset` (bytes). */
function logSince(file: string, offset: number): string {
  const buf = fs.readFileSync(file);
  return buf.subarray(Math.min(offset, buf.length)).toString("utf8");
}

const count = (text: string, re: RegExp) => (text.match(new RegExp(re.source, "g")) ?? []).length;

// ------------------------------------------------------------------ 1. client credentials

test("our client: OAuth2 client credentials (discovery, then token endpoint) publish; the messages are read back", async () => {
  const topic = `persistent://public/default/${uniqueName("oauth-client")}`;
  const consumer = await subscribe(topic);
  const before = idp.requests.length;
  const client = createClient({ serviceUrl: b.serviceUrl, auth: oauthPulsar() });
  try {
    const producer = await client.createProducer({ topic });
    const sent = Array.from({ length: 20 }, (_, i) => `oauth ${i}`);
    await Promise.all(sent.map((s) => producer.send({ payload: Buffer.from(s), key: s })));
    const got = await drain(consumer, sent.length);
    assert.deepEqual(got.map((m) => m.payload.toString()).sort(), [...sent].sort());
  } finally {
    await client.close();
    await consumer.close();
  }
  const mine = idp.requests.slice(before);
  assert.ok(mine.length >= 1 && mine.every((r) => r.ok && r.path === "/pulsar/token"));
  assert.equal(mine[0]?.form.audience, "urn:pulsar:test", "the audience reached the endpoint");
  assert.equal(mine[0]?.form.scope, "pulsar.produce", "the scope reached the endpoint");
  assert.ok(idp.log.includes("GET /pulsar/.well-known/openid-configuration"), "discovery was used");
});

test("our client: a wrong client secret is refused with an AuthenticationError at once, without the secret", async () => {
  const client = createClient({
    serviceUrl: b.serviceUrl,
    auth: oauthPulsar(WRONG_SECRET),
    connectionTimeoutMs: 5000,
    operationTimeoutMs: 10_000,
  });
  const started = Date.now();
  try {
    await assert.rejects(
      client.createProducer({ topic: `persistent://public/default/${uniqueName("oauth-wrong")}` }),
      (e: unknown) => {
        assert.ok(e instanceof AuthenticationError, String(e));
        assert.match(
          e.message,
          /OAuth2 token request refused \(invalid_client: client authentication failed\)/,
        );
        assert.ok(!e.message.includes(WRONG_SECRET), "the secret never appears in the error");
        return true;
      },
    );
  } finally {
    await client.close();
  }
  assert.ok(Date.now() - started < 5000, `refused after ${Date.now() - started} ms`);
  assert.ok(
    idp.requests.some((r) => !r.ok && r.form.client_secret === WRONG_SECRET),
    "the endpoint refused it",
  );
});

test('pulsar-out with pulsar-cluster auth "oauth2" publishes; a wrong secret reaches Catch and the status', async () => {
  const topic = `persistent://public/default/${uniqueName("oauth-node")}`;
  const consumer = await subscribe(topic);
  const cluster = (id: string) => ({
    id,
    type: "pulsar-cluster",
    serviceUrl: b.serviceUrl,
    authMethod: "oauth2",
    oauthIssuerUrl: `${idp.url}/pulsar`,
    oauthScope: "pulsar.produce",
    connectionTimeoutMs: 5000,
    operationTimeoutMs: 10_000,
  });
  await loadFlow(
    [
      { id: "f1", type: "tab" },
      cluster("pc"),
      cluster("pc-wrong"),
      { id: "out", type: "pulsar-out", z: "f1", cluster: "pc", topic, outputs: 1, wires: [["acked"]] },
      { id: "acked", type: "helper", z: "f1" },
      { id: "out-wrong", type: "pulsar-out", z: "f1", cluster: "pc-wrong", topic, wires: [] },
      { id: "c1", type: "catch", z: "f1", scope: ["out-wrong"], wires: [["caught"]] },
      { id: "caught", type: "helper", z: "f1" },
      { id: "s1", type: "status", z: "f1", scope: ["out-wrong"], wires: [["statuses"]] },
      { id: "statuses", type: "helper", z: "f1" },
    ],
    {
      pc: { oauthClientId: PULSAR_CLIENT.id, oauthClientSecret: PULSAR_CLIENT.secret },
      "pc-wrong": { oauthClientId: PULSAR_CLIENT.id, oauthClientSecret: WRONG_SECRET },
    },
  );
  try {
    const acked: { payload: string; pulsar: { messageId: { entryId: number } } }[] = [];
    const caught: { payload: string; error: { message: string } }[] = [];
    const statuses: string[] = [];
    helper.getNode("acked")?.on("input", (m: never) => acked.push(m));
    helper.getNode("caught")?.on("input", (m: never) => caught.push(m));
    helper
      .getNode("statuses")
      ?.on("input", (m: never) => statuses.push((m as { status: { text: string } }).status.text));
    const out = helper.getNode("out");
    const sent = Array.from({ length: 10 }, (_, i) => `node ${i}`);
    for (const s of sent) out?.receive({ payload: s });
    helper.getNode("out-wrong")?.receive({ payload: "never published" });
    await waitFor("10 acknowledged msgs", () => acked.length === sent.length, 30_000, 100);
    assert.ok(acked.every((m) => m.pulsar.messageId.entryId >= 0));
    const got = await drain(consumer, sent.length);
    assert.deepEqual(got.map((m) => m.payload.toString()).sort(), [...sent].sort());

    await waitFor("the msg of out-wrong at Catch", () => caught.length === 1, 15_000, 100);
    assert.equal(caught[0]?.payload, "never published");
    assert.match(caught[0]?.error.message ?? "", /OAuth2 token request refused \(invalid_client/);
    await waitFor(
      "out-wrong's status to name the refusal",
      () => statuses.some((s) => /OAuth2 token request refused/.test(s)),
      15_000,
      100,
    );
    const all = JSON.stringify({ caught, statuses }) + helperLog();
    assert.ok(!all.includes(WRONG_SECRET) && !all.includes(PULSAR_CLIENT.secret), "no secret shown");
  } finally {
    await unloadFlow();
    await consumer.close();
  }
});

// ------------------------------------------------------------------ 2. AUTH_CHALLENGE

/** Sends one message every `everyMs` for `forMs` (not waiting for receipts), or until a send fails. */
async function keepSending(
  send: (i: number) => Promise<SendReceipt>,
  forMs: number,
  everyMs: number,
): Promise<{ sent: number; results: PromiseSettledResult<SendReceipt>[]; firstFailureAt?: number }> {
  const pending: Promise<SendReceipt>[] = [];
  let firstFailureAt: number | undefined;
  const end = Date.now() + forMs;
  for (let i = 0; Date.now() < end && firstFailureAt === undefined; i++) {
    const p = send(i);
    p.catch(() => (firstFailureAt ??= Date.now()));
    pending.push(p);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  // every send settles: none hangs
  const results = await Promise.race([
    Promise.allSettled(pending),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("sends still unsettled 20 s after the last one")), 20_000),
    ),
  ]);
  return { sent: pending.length, results, firstFailureAt };
}

test("tokens expiring every 4 s: the broker challenges, the client answers with a fresh token, nothing is lost", async () => {
  const topic = `persistent://public/default/${uniqueName("oauth-refresh")}`;
  const consumer = await subscribe(topic);
  idp.pulsarLifetimeS = 4;
  const logOffset = fs.statSync(pulsarLog).size;
  const grantedBefore = granted("/pulsar/token");
  const clientLog: string[] = [];
  const client = createClient({
    serviceUrl: b.serviceUrl,
    auth: oauthPulsar(),
    log: (level, message) => clientLog.push(`${level}: ${message}`),
  });
  try {
    const producer = await client.createProducer({ topic });
    const started = Date.now();
    const run = await keepSending(
      (i) => producer.send({ payload: Buffer.from(`refresh ${i}`) }),
      20_000,
      100,
    );
    const failures = run.results.filter((r) => r.status === "rejected");
    assert.deepEqual(
      failures.map((f) => String(f.reason)),
      [],
      "every message acknowledged",
    );
    assert.ok(Date.now() - started >= 20_000);
    const got = await drain(consumer, run.sent);
    assert.equal(got.length, run.sent, "each message read back once");
    assert.deepEqual(
      got.map((m) => m.payload.toString()).sort(),
      Array.from({ length: run.sent }, (_, i) => `refresh ${i}`).sort(),
    );
  } finally {
    await client.close();
    await consumer.close();
    idp.pulsarLifetimeS = 60;
  }
  const tokens = granted("/pulsar/token") - grantedBefore;
  const brokerLog = logSince(pulsarLog, logOffset);
  const refreshed = count(brokerLog, /Refreshed authentication credentials for role admin/);
  const refreshFailed = count(brokerLog, /operation=authentication-refresh/);
  assert.ok(tokens >= 3, `the endpoint served ${tokens} tokens over 20 s of 4-s tokens`);
  assert.ok(refreshed >= 2, `the broker logged ${refreshed} refreshed credentials`);
  assert.equal(refreshFailed, 0, "no refresh was refused");
  assert.deepEqual(
    clientLog.filter((l) => /disconnected|reconnect/i.test(l)),
    [],
    "the connection was never dropped",
  );
  console.log(`# refresh: ${tokens} tokens served, ${refreshed} credential refreshes logged by the broker`);
});

test("a static token that expires: the broker drops the connection, the producer retries and says why, the sends fail with the refusal", async () => {
  const topic = `persistent://public/default/${uniqueName("oauth-static")}`;
  const consumer = await subscribe(topic);
  const logOffset = fs.statSync(pulsarLog).size;
  const now = Date.now() / 1000;
  const expiresAt = (Math.ceil(now) + 5) * 1000;
  const token = hs256(tokenSecret, { sub: "admin", iat: Math.floor(now), exp: expiresAt / 1000 });
  const clientLog: string[] = [];
  const states: ProducerState[] = [];
  const client = createClient({
    serviceUrl: b.serviceUrl,
    auth: tokenAuth({ token }),
    connectionTimeoutMs: 5000,
    operationTimeoutMs: 10_000,
    maxBackoffMs: 1000,
    log: (level, message) => clientLog.push(`${level}: ${message}`),
  });
  try {
    const producer = await client.createProducer({
      topic,
      sendTimeoutMs: 3000,
      onStateChange: (s) => states.push(s),
    });
    const run = await keepSending((i) => producer.send({ payload: Buffer.from(`static ${i}`) }), 25_000, 100);
    assert.ok(run.firstFailureAt, "a send failed");
    const afterExpiry = run.firstFailureAt - expiresAt;
    // expiry is noticed at the next check (every 3 s), then CONNECT with the same token is refused; the
    // sends pending since then fail after their 3 s timeout, with that refusal
    assert.ok(afterExpiry > 0 && afterExpiry < 11_000, `first failure ${afterExpiry} ms after expiry`);
    const rejected = run.results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    assert.ok(rejected.length >= 1);
    // sends pending when the refusal is known fail with it (it says what to fix), earlier ones time out
    for (const e of rejected) {
      assert.ok(e instanceof TimeoutError || e instanceof AuthenticationError, String(e));
      assert.ok(!(e as Error).message.includes(token), "the token never appears in the error");
    }
    assert.ok(
      rejected.some((e) => e instanceof AuthenticationError),
      "a send fails with the broker's refusal",
    );
    const acked = run.results.filter((r) => r.status === "fulfilled").length;
    assert.ok(acked >= 30, `${acked} messages acknowledged before the expiry`);
    // the producer is not dead: it keeps retrying, and says the broker refuses the token
    const last = states.at(-1);
    assert.ok(last?.state === "reconnecting", JSON.stringify(states));
    assert.match(last.reason.message, /authenticat/i);
    assert.ok(!last.reason.message.includes(token), "the token never appears in the reason");
    assert.ok(!states.some((s) => s.state === "failed"));
    const got = await drain(consumer, acked, 15_000);
    assert.equal(got.length, acked, "what was acknowledged was stored, once");
    console.log(
      `# static token: ${acked} acked, first failure ${afterExpiry} ms after expiry: ${String(rejected[0])}`,
    );
  } finally {
    await client.close();
    await consumer.close();
  }
  const brokerLog = logSince(pulsarLog, logOffset);
  assert.match(brokerLog, /Failed to authenticate: operation=authentication-refresh.*JWT expired/);
  assert.match(brokerLog, /Failed to authenticate: operation=connect.*JWT expired/);
  assert.ok(
    clientLog.some((l) => /disconnected/.test(l)),
    "the client saw the connection dropped",
  );
});

// ------------------------------------------------------------------ 3. Kafka OAUTHBEARER

test("kafka-in over SASL OAUTHBEARER bridges to pulsar-out over OAuth2; a wrong secret shows in the status", async () => {
  const kafkaTopic = uniqueName("oauthbearer");
  const pulsarTopic = `persistent://public/default/${uniqueName("oauthbearer")}`;
  await createTopic(kafkaTopic, 2, [b.kafkaBootstrap]);
  const records = Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: `bearer ${i}` }));
  await produce(kafkaTopic, records, 500, [b.kafkaBootstrap]);
  const consumer = await subscribe(pulsarTopic);
  const kafkaLogOffset = fs.statSync(kafkaLog).size;
  const kafkaBefore = idp.requests.filter((r) => r.path === "/kafka/token").length;
  const kc = (id: string) => ({
    id,
    type: "kafka-cluster",
    brokers: kafkaOauthBroker,
    clientId: "oauth-test",
    saslMechanism: "oauthbearer",
    oauthTokenUrl: `${idp.url}/kafka/token`,
    oauthScope: "kafka.consume",
    connectionTimeoutMs: 5000,
  });
  const kin = (id: string, cluster: string, wires: string[]) => ({
    id,
    type: "kafka-in",
    z: "f1",
    cluster,
    topics: kafkaTopic,
    groupId: uniqueName(id),
    startFrom: "earliest",
    wires: [wires],
  });
  await loadFlow(
    [
      { id: "f1", type: "tab" },
      kc("kc"),
      kc("kc-wrong"),
      {
        id: "pc",
        type: "pulsar-cluster",
        serviceUrl: b.serviceUrl,
        authMethod: "oauth2",
        oauthIssuerUrl: `${idp.url}/pulsar`,
      },
      kin("in", "kc", ["out"]),
      { id: "out", type: "pulsar-out", z: "f1", cluster: "pc", topic: pulsarTopic, wires: [] },
      kin("in-wrong", "kc-wrong", []),
      { id: "s1", type: "status", z: "f1", scope: ["in-wrong"], wires: [["statuses"]] },
      { id: "statuses", type: "helper", z: "f1" },
    ],
    {
      kc: { oauthClientId: KAFKA_CLIENT.id, oauthClientSecret: KAFKA_CLIENT.secret },
      "kc-wrong": { oauthClientId: KAFKA_CLIENT.id, oauthClientSecret: WRONG_SECRET },
      pc: { oauthClientId: PULSAR_CLIENT.id, oauthClientSecret: PULSAR_CLIENT.secret },
    },
  );
  try {
    const statuses: string[] = [];
    helper
      .getNode("statuses")
      ?.on("input", (m: never) => statuses.push((m as { status: { text: string } }).status.text));
    const got = await drain(consumer, records.length, 60_000);
    assert.deepEqual(
      got.map((m) => `${m.keyBytes?.toString()}=${m.payload.toString()}`).sort(),
      records.map((r) => `${r.key}=${r.value}`).sort(),
      "every record, with its key, arrived in Pulsar",
    );
    const kafkaRequests = idp.requests.filter((r) => r.path === "/kafka/token").slice(kafkaBefore);
    assert.ok(kafkaRequests.some((r) => r.ok && r.form.scope === "kafka.consume"));
    // Kafka's unsecured validator accepted the endpoint's token for the client's principal
    assert.match(
      logSince(kafkaLog, kafkaLogOffset),
      new RegExp(`Successfully validated token with principal ${KAFKA_CLIENT.id}`),
    );

    await waitFor(
      "in-wrong's status to name the refused token request",
      () => statuses.some((s) => /OAuth2 token request refused \(invalid_client/.test(s)),
      30_000,
      100,
    );
    console.log(`# in-wrong status: ${statuses.filter((s) => /refused/.test(s))[0]}`);
    console.log(
      `# identity provider: ${idp.log.filter((l) => l.startsWith("GET")).length} discovery GETs for ${idp.requests.length} token POSTs (${[...new Set(idp.log.filter((l) => l.startsWith("GET")))].join(", ")})`,
    );
    const all = JSON.stringify(statuses) + helperLog();
    for (const secret of [WRONG_SECRET, KAFKA_CLIENT.secret, PULSAR_CLIENT.secret])
      assert.ok(!all.includes(secret), "no secret in a status or the log");
    assert.ok(
      kafkaRequests.some((r) => !r.ok && r.form.client_secret === WRONG_SECRET),
      "the endpoint refused the wrong secret",
    );
  } finally {
    await unloadFlow();
    await consumer.close();
  }
});
