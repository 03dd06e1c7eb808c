// Send timeouts against a real Pulsar behind a TCP proxy the test controls (the broker advertises
// 127.0.0.2, where the proxy listens): when the oldest pending message times out, every pending one fails,
// so that a retry in order stores them all. Before, only the timed-out message failed; the newer ones were
// resent after the reconnect and stored, and the retry of the older one was then dropped by deduplication.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createClient } from "../../src/pulsar/client";
import { TimeoutError } from "../../src/pulsar/errors";
import type { PulsarClient } from "../../src/pulsar/types";
import { uniqueName } from "../support/brokers";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";
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
