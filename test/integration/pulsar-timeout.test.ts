// Send timeouts against a real Pulsar behind a TCP proxy the test controls (the broker advertises
// 127.0.0.2, where the proxy listens): when the oldest pending message times out, every pending one fails,
// so that a retry in order stores them all. Before, only the timed-out message failed; the newer ones were
// resent after the reconnect and stored, and the retry of the older one was then dropped by deduplication.
// And a redeploy whose old pulsar-out takes longer to close than Node-RED waits for it.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { createClient } from "../../src/pulsar/client";
import { TimeoutError } from "../../src/pulsar/errors";
import type { PulsarClient } from "../../src/pulsar/types";
import { uniqueName } from "../support/brokers";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";
import { makeUserDir, startNodeRed } from "../support/node-red-process";
import { storedPayloads } from "../support/pulsar";
import { tcpProxy, type TcpProxy } from "../support/tcp-proxy";

const PROXY_HOST = "127.0.0.2";
let pulsar: OwnBrokers;
const proxies: TcpProxy[] = [];
let binaryProxy: TcpProxy;

before(async () => {
  pulsar = await ownBrokers({ BROKERS_ADVERTISED_HOST: PROXY_HOST, PULSAR_DEDUP: "1" });
  const through = (port: number) => tcpProxy({ host: PROXY_HOST, port }, { host: "127.0.0.1", port });
  binaryProxy = await through(pulsar.pulsarPort);
  proxies.push(binaryProxy, await through(pulsar.pulsarHttpPort));
  await pulsar.brokers("start", "pulsar");
});
after(async () => {
  await pulsar.dispose();
  await Promise.all(proxies.map((p) => p.close()));
});

test("a send timeout fails every pending message; retried in order, all are stored once (deduplication on)", async () => {
  const client: PulsarClient = createClient({
    serviceUrl: `pulsar://${PROXY_HOST}:${pulsar.pulsarPort}`,
    initialBackoffMs: 100,
    maxBackoffMs: 500,
  });
  const topic = `persistent://public/default/${uniqueName("timeout")}`;
  try {
    const producer = await client.createProducer({
      topic,
      producerName: "timeouts",
      batchingEnabled: false,
      sendTimeoutMs: 2000,
    });
    const send = (i: number) => producer.send({ payload: Buffer.from(`m${i}`), sequenceId: i });
    for (let i = 0; i < 5; i++) await send(i);

    // The connection breaks and cannot be made again for a while; m5 waits longest.
    binaryProxy.cut({ reset: true });
    const outcomes: Promise<string>[] = [];
    const track = (p: Promise<unknown>) =>
      outcomes.push(
        p.then(
          () => "stored",
          (e: unknown) => (e instanceof TimeoutError ? "timeout" : String(e)),
        ),
      );
    track(send(5));
    await new Promise((r) => setTimeout(r, 1000));
    for (let i = 6; i < 10; i++) track(send(i));
    // m5 times out between 2 and 2.5 s (checked every 500 ms); alone, the others would between 3 and 3.5 s
    await new Promise((r) => setTimeout(r, 1750));
    binaryProxy.heal();
    assert.deepEqual(await Promise.all(outcomes), Array(5).fill("timeout"), "all pending failed together");

    // What kafka-in does: retry them in order.
    for (let i = 5; i < 10; i++) await send(i);
    await producer.close();

    const stored = await storedPayloads(client, topic);
    assert.deepEqual(
      stored,
      Array.from({ length: 10 }, (_, i) => `m${i}`),
    );
  } finally {
    await client.close();
  }
});

test("a redeployed pulsar-out keeps its client when the old instance's close ends after the new one started (Node-RED gave up waiting)", async (t) => {
  const topic = `persistent://public/default/${uniqueName("late-close")}`;
  const userDir = makeUserDir();
  t.after(() => fs.rmSync(userDir, { recursive: true, force: true }));
  // Node-RED waits 15 s for a node to close, then starts the new flows anyway; 1 ms makes that certain
  fs.writeFileSync(
    path.join(userDir, "settings.js"),
    `module.exports = { uiHost: "127.0.0.1", flowFile: "flows.json", credentialSecret: "e2e-secret", nodeCloseTimeout: 1, editorTheme: { tours: false }, telemetry: { enabled: false } };\n`,
  );
  const red = await startNodeRed({ userDir });
  t.after(() => red.stop());
  const flow = (label: string) => [
    { id: "tab", type: "tab", label: "late close" },
    { id: "pc", type: "pulsar-cluster", serviceUrl: `pulsar://${PROXY_HOST}:${pulsar.pulsarPort}` },
    // a new id per deploy: the new inject fires once, into the new pulsar-out
    {
      id: `inj-${label}`,
      type: "inject",
      z: "tab",
      once: true,
      onceDelay: 0.1,
      payload: label,
      payloadType: "str",
      topic: "",
      props: [{ p: "payload" }],
      wires: [["out"]],
    },
    { id: "out", type: "pulsar-out", z: "tab", name: label, cluster: "pc", topic, wires: [] },
  ];
  const client = createClient({ serviceUrl: `pulsar://${PROXY_HOST}:${pulsar.pulsarPort}` });
  t.after(() => client.close());
  const waitStored = async (want: string[], ms: number) => {
    const until = Date.now() + ms;
    let got: string[] = [];
    while (Date.now() < until) {
      got = await storedPayloads(client, topic, 1000);
      if (want.every((w) => got.includes(w))) return got;
    }
    return got;
  };
  await red.deploy(flow("a"));
  assert.deepEqual(await waitStored(["a"], 30_000), ["a"]);
  // the network stops: the old pulsar-out's close waits for Pulsar's answer, the new one starts beside it
  binaryProxy.cut();
  await red.deploy(flow("b"), "nodes");
  await new Promise((r) => setTimeout(r, 2000));
  binaryProxy.heal();
  // the old close ends now and lets go of its share of the client; the new instance's share stays
  assert.deepEqual((await waitStored(["b"], 40_000)).sort(), ["a", "b"]);
  assert.doesNotMatch(red.output(), /client is closed|was closed before Pulsar acknowledged/);
  // the old instance's close ended after the new instance showed its status: that status stays (the
  // editor read over /comms, as it gets it)
  await new Promise((r) => setTimeout(r, 1000));
  const status = (await red.statuses()).get("out");
  assert.match(status?.text ?? "", /status\.connected$/, `the status of out: ${JSON.stringify(status)}`);
});
