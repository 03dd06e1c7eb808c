// Reconnecting through refused credentials, against a Pulsar of this test's own with token authentication
// and authorization (PULSAR_AUTH=token), behind a TCP proxy the test controls (the broker advertises
// 127.0.0.2, where the proxy listens). Proven: a producer whose connection drops while its token file holds
// a token the broker refuses, or while its role has lost the permission to produce, keeps retrying and says
// "reconnecting" with the broker's reason; once a valid token (or the permission) is back it reconnects by
// itself, the message sent meanwhile is stored, and later sends succeed. Before, the first refusal killed the
// producer for good. And pulsar-out's status in a Node-RED runtime leaves green while the connection is down
// and comes back to green after.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { createClient } from "../../src/pulsar/client";
import { oauth2ClientCredentials, tokenAuth } from "../../src/pulsar/auth";
import type { ProducerState, PulsarClient } from "../../src/pulsar/types";
import { uniqueName } from "../support/brokers";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";
import { storedPayloads } from "../support/pulsar";
import { tcpProxy, type TcpProxy } from "../support/tcp-proxy";
import { waitFor } from "../support/wait";

const PROXY_HOST = "127.0.0.2";
let pulsar: OwnBrokers;
let binaryProxy: TcpProxy;
const proxies: TcpProxy[] = [];
let secret: Buffer;
let adminToken: string;
let reader: PulsarClient;
let serviceUrl: string;

before(async () => {
  pulsar = await ownBrokers({
    PULSAR_AUTH: "token",
    BROKERS_ADVERTISED_HOST: PROXY_HOST,
    // the machine is shared: a small heap is enough for a few topics
    PULSAR_MEM: "-Xms128m -Xmx384m -XX:MaxDirectMemorySize=256m",
  });
  const through = (port: number) => tcpProxy({ host: PROXY_HOST, port }, { host: "127.0.0.1", port });
  binaryProxy = await through(pulsar.pulsarPort);
  // the broker's own HTTP calls to its advertised address: never cut
  proxies.push(binaryProxy, await through(pulsar.pulsarHttpPort));
  await pulsar.brokers("start", "pulsar");
  secret = fs.readFileSync(path.join(pulsar.home, "pulsar", "token-secret.key"));
  adminToken = await pulsar.brokers("token", "admin");
  serviceUrl = `pulsar://${PROXY_HOST}:${pulsar.pulsarPort}`;
  reader = createClient({ serviceUrl: pulsar.serviceUrl, auth: tokenAuth({ token: adminToken }) });
});

after(async () => {
  await reader?.close();
  await stopHelper();
  await pulsar?.dispose();
  await Promise.all(proxies.map((p) => p.close()));
});

/** A token signed with the broker's secret (valid) or with another key (refused), for `role`. */
function token(role: string, signedBy: Buffer = secret): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: role, iat: Math.floor(Date.now() / 1000) })}`;
  return `${unsigned}.${createHmac("sha256", signedBy).update(unsigned).digest("base64url")}`;
}

async function admin(method: string, urlPath: string, body?: unknown): Promise<void> {
  const res = await fetch(`${pulsar.httpUrl}/admin/v2/${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${urlPath}: HTTP ${res.status} ${text}`);
}

const describe = (s: ProducerState) =>
  s.state === "reconnecting" || s.state === "failed" ? `${s.state}: ${s.reason.message}` : s.state;

/** Drops every connection through the proxy; new ones get through again at once. */
function dropConnections(): void {
  binaryProxy.cut({ reset: true });
  binaryProxy.heal();
}

test("a token rotated to one the broker refuses, then to a valid one: the producer retries, says so, and comes back", async () => {
  const topic = `persistent://public/default/${uniqueName("rotated")}`;
  const file = path.join(pulsar.home, "rotating.jwt");
  fs.writeFileSync(file, token("admin"));
  const states: string[] = [];
  const client = createClient({
    serviceUrl,
    auth: tokenAuth({ file }),
    initialBackoffMs: 100,
    maxBackoffMs: 1000,
    connectionTimeoutMs: 5000,
    operationTimeoutMs: 10_000,
  });
  try {
    const producer = await client.createProducer({
      topic,
      batchingEnabled: false,
      sendTimeoutMs: 0,
      onStateChange: (s) => states.push(describe(s)),
    });
    await producer.send({ payload: Buffer.from("before") });

    fs.writeFileSync(file, token("admin", Buffer.alloc(32, 7)));
    dropConnections();
    const during = producer.send({ payload: Buffer.from("during") });
    let settled = false;
    during.then(
      () => (settled = true),
      () => (settled = true),
    );
    await waitFor(
      "the producer to report the broker's refusal",
      () => states.some((s) => /^reconnecting: .*authenticat/i.test(s)),
      20_000,
      100,
    );
    // several refusals, and it is still trying: not failed, the send still pending
    const refusedAt = states.length;
    await new Promise((r) => setTimeout(r, 3000));
    assert.ok(!states.some((s) => s.startsWith("failed")), states.join("\n"));
    assert.equal(settled, false, "the send waits for the reconnection");

    fs.writeFileSync(file, token("admin"));
    await waitFor("the producer back", () => states.at(-1) === "connected", 20_000, 100);
    await during;
    await producer.send({ payload: Buffer.from("after") });
    assert.ok(refusedAt >= 1);
    assert.equal(
      states[0],
      states.find((s) => s.startsWith("reconnecting")),
      "reconnecting first",
    );
    await producer.close();
  } finally {
    await client.close();
  }
  assert.deepEqual(await storedPayloads(reader, topic), ["before", "during", "after"]);
});

/** An OAuth2 token endpoint (client credentials) that can be taken down: it then answers 503. */
async function identityProvider(): Promise<{
  url: string;
  down: boolean;
  refused: number;
  close(): Promise<void>;
}> {
  const idp = { url: "", down: false, refused: 0, close: () => Promise.resolve() };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      if (req.url !== "/token") {
        res.writeHead(404).end("{}");
      } else if (idp.down) {
        idp.refused++;
        res.writeHead(503).end(JSON.stringify({ error: "temporarily_unavailable" }));
      } else {
        // valid for the broker for a minute, but the client is told 1 s: each new connection asks again
        res.writeHead(200).end(JSON.stringify({ access_token: token("admin"), expires_in: 1 }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  idp.url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  idp.close = () => new Promise((resolve) => server.close(() => resolve()));
  return idp;
}

test("the identity provider down while the connection is down: the producer retries until it answers again", async () => {
  const topic = `persistent://public/default/${uniqueName("idp-down")}`;
  const idp = await identityProvider();
  const states: string[] = [];
  const client = createClient({
    serviceUrl,
    auth: oauth2ClientCredentials({
      issuerUrl: `${idp.url}/token`,
      clientId: "bridge",
      clientSecret: "s3cret",
    }),
    initialBackoffMs: 100,
    maxBackoffMs: 1000,
    connectionTimeoutMs: 5000,
    operationTimeoutMs: 10_000,
  });
  try {
    const producer = await client.createProducer({
      topic,
      batchingEnabled: false,
      sendTimeoutMs: 0,
      onStateChange: (s) => states.push(describe(s)),
    });
    await producer.send({ payload: Buffer.from("before") });
    await new Promise((r) => setTimeout(r, 1100)); // the cached token is stale now
    idp.down = true;
    dropConnections();
    const during = producer.send({ payload: Buffer.from("during") });
    await waitFor(
      "the producer to report the identity provider's refusal",
      () =>
        states.some((s) => /^reconnecting: OAuth2 token request refused \(temporarily_unavailable\)/.test(s)),
      20_000,
      100,
    );
    await waitFor("a few refused token requests", () => idp.refused >= 3, 20_000, 100);
    assert.ok(!states.some((s) => s.startsWith("failed")), states.join("\n"));
    idp.down = false;
    await waitFor("the producer back", () => states.at(-1) === "connected", 20_000, 100);
    await during;
    await producer.send({ payload: Buffer.from("after") });
    await producer.close();
  } finally {
    await client.close();
    await idp.close();
  }
  assert.deepEqual(await storedPayloads(reader, topic), ["before", "during", "after"]);
});

test("a role whose permission is revoked while its connection is down: retried until it is granted again", async () => {
  const name = uniqueName("revoked");
  const topic = `persistent://public/default/${name}`;
  await admin("PUT", `persistent/public/default/${name}`);
  await admin("POST", `persistent/public/default/${name}/permissions/writer`, ["produce"]);
  const states: string[] = [];
  const client = createClient({
    serviceUrl,
    auth: tokenAuth({ token: token("writer") }),
    initialBackoffMs: 100,
    maxBackoffMs: 1000,
    connectionTimeoutMs: 5000,
    operationTimeoutMs: 10_000,
  });
  try {
    const producer = await client.createProducer({
      topic,
      batchingEnabled: false,
      sendTimeoutMs: 0,
      onStateChange: (s) => states.push(describe(s)),
    });
    await producer.send({ payload: Buffer.from("granted") });

    await admin("DELETE", `persistent/public/default/${name}/permissions/writer`);
    dropConnections();
    const during = producer.send({ payload: Buffer.from("while revoked") });
    await waitFor(
      "the producer to report the refused permission",
      () => states.some((s) => /^reconnecting: .*(authoriz|permission)/i.test(s)),
      30_000,
      100,
    );
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok(!states.some((s) => s.startsWith("failed")), states.join("\n"));

    await admin("POST", `persistent/public/default/${name}/permissions/writer`, ["produce"]);
    await waitFor("the producer back", () => states.at(-1) === "connected", 30_000, 100);
    await during;
    await producer.send({ payload: Buffer.from("granted again") });
    await producer.close();
  } finally {
    await client.close();
  }
  assert.deepEqual(await storedPayloads(reader, topic), ["granted", "while revoked", "granted again"]);
});

test("pulsar-out's status leaves green while its connection is down and is green again after; the msg sent meanwhile is acknowledged", async () => {
  const topic = `persistent://public/default/${uniqueName("status")}`;
  await loadFlow(
    [
      { id: "f1", type: "tab" },
      {
        id: "pc",
        type: "pulsar-cluster",
        serviceUrl,
        authMethod: "token",
        connectionTimeoutMs: 2000,
        operationTimeoutMs: 10_000,
      },
      { id: "out", type: "pulsar-out", z: "f1", cluster: "pc", topic, outputs: 1, wires: [["acked"]] },
      { id: "acked", type: "helper", z: "f1" },
      { id: "s1", type: "status", z: "f1", scope: ["out"], wires: [["statuses"]] },
      { id: "statuses", type: "helper", z: "f1" },
    ],
    { pc: { token: adminToken } },
  );
  const statuses: { fill?: string; text?: string }[] = [];
  const acked: unknown[] = [];
  try {
    helper
      .getNode("statuses")
      ?.on("input", (m: never) => statuses.push((m as { status: { fill?: string; text?: string } }).status));
    helper.getNode("acked")?.on("input", (m: never) => acked.push(m));
    const green = () => statuses.at(-1)?.fill === "green";
    await waitFor("green at deploy", green, 20_000, 100);
    assert.equal(statuses.at(-1)?.text, "node-red:common.status.connected");

    binaryProxy.cut({ reset: true });
    await waitFor("a reconnecting status", () => statuses.at(-1)?.fill === "yellow", 20_000, 100);
    const down = statuses.at(-1);
    assert.match(down?.text ?? "", /^reconnecting: /, "translated through the catalog, with the reason");
    helper.getNode("out")?.receive({ payload: "sent while down" });
    await new Promise((r) => setTimeout(r, 3000));
    assert.ok(!green(), `still not green while down: ${JSON.stringify(statuses.slice(-3))}`);
    assert.equal(acked.length, 0);

    binaryProxy.heal();
    await waitFor("the msg acknowledged", () => acked.length === 1, 60_000, 100);
    await waitFor("green again", green, 10_000, 100);
    assert.equal(statuses.at(-1)?.text, "node-red:common.status.connected");
  } finally {
    binaryProxy.heal();
    await unloadFlow();
  }
  assert.deepEqual(await storedPayloads(reader, topic), ["sent while down"]);
});
