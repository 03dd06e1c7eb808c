// Our client behind the real Pulsar proxy (bin/pulsar proxy in front of the suite's standalone): lookups
// answer "connect through the service URL", so every socket goes to the proxy, which forwards to the broker
// named in CONNECT.proxy_to_broker_url. The official CLI reads the messages back from the broker directly.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { BuiltinClient } from "../../src/pulsar/client";
import type { ReceivedMessage } from "../../src/pulsar/types";
import { pulsarHttpUrl, pulsarUrl, runToolOk, uniqueName } from "../support/brokers";
import { startPulsarProxy, type PulsarProxy } from "../support/pulsar-proxy";
import { remotePorts } from "../support/sockets";

const COUNT = 1000;
const broker = new URL(pulsarUrl.replace(/^pulsar:/, "http:"));

let proxy: PulsarProxy;
before(async () => {
  proxy = await startPulsarProxy({ brokerServiceUrl: pulsarUrl, brokerWebServiceUrl: pulsarHttpUrl });
});
after(async () => {
  await proxy?.dispose();
});

/**
 * Distinct payloads of 0 to ~1.5 KB. Valid UTF-8 without line breaks, because the CLI prints content as
 * text, one message a line (its --hex option is ignored for raw bytes in 4.0.8).
 */
function payloads(): Buffer[] {
  return Array.from({ length: COUNT }, (_, i) =>
    i === 0
      ? Buffer.alloc(0)
      : Buffer.from(`${i}|${randomBytes((i * 37) % 1100).toString("base64")}|ünïcødé ✓ 😀`, "utf8"),
  );
}

/** Payloads as `pulsar-client consume` prints them, read straight from the broker (not the proxy). */
async function cliConsume(topic: string, subscription: string): Promise<Buffer[]> {
  const r = await runToolOk(
    "pulsar-client",
    ["consume", "-s", subscription, "-n", String(COUNT), "-q", "1000", topic],
    { timeoutMs: 180_000 },
  );
  const marker = ", content:";
  return r.stdout
    .split("\n")
    .filter((line) => line.startsWith("publishTime:["))
    .map((line) => Buffer.from(line.slice(line.indexOf(marker) + marker.length), "utf8"));
}

async function receive(consumer: {
  receive(ms: number): Promise<ReceivedMessage>;
}): Promise<ReceivedMessage[]> {
  const out: ReceivedMessage[] = [];
  while (out.length < COUNT) out.push(await consumer.receive(30_000));
  return out;
}

const sorted = (list: Buffer[]) => [...list].sort((a, b) => Buffer.compare(a, b));

/** Every established connection of this process goes to the proxy, at least `atLeast` of them. */
function assertOnlyProxyConnections(atLeast: number): void {
  const ports = remotePorts(process.pid);
  assert.ok(ports.length >= atLeast, `expected ≥ ${atLeast} connections, saw ports ${ports.join(", ")}`);
  assert.deepEqual(
    ports.filter((p) => p !== proxy.port),
    [],
    `connections only to the proxy port ${proxy.port} (the broker is on ${broker.port})`,
  );
}

test("non-partitioned topic through the proxy: lookup says proxied; 1000 batched messages reach the broker byte for byte", async () => {
  const topic = `persistent://public/default/${uniqueName("via-proxy")}`;
  await runToolOk("pulsar-admin", ["topics", "create-subscription", "-s", "oracle", "-m", "earliest", topic]);
  const client = new BuiltinClient({ serviceUrl: proxy.serviceUrl });
  try {
    assert.deepEqual(await client.lookup(topic), {
      logical: `${broker.hostname}:${broker.port}`,
      physical: { host: "127.0.0.1", port: proxy.port },
      proxied: true,
    });
    const consumer = await client.subscribe({ topic, subscription: "ours", initialPosition: "earliest" });
    const producer = await client.createProducer({ topic, batchingEnabled: true });
    const sent = payloads();
    const receipts = await Promise.all(sent.map((payload) => producer.send({ payload })));
    assert.equal(receipts.length, COUNT);
    const got = await receive(consumer);
    assert.deepEqual(
      got.map((m) => m.payload),
      sent,
      "our consumer, through the proxy, reads every payload in order",
    );
    // the lookup connection and the proxied one to the broker: both to the proxy, none to the broker
    assertOnlyProxyConnections(2);
    await producer.close();
    await consumer.close();
    const cli = await cliConsume(topic, "oracle");
    assert.equal(cli.length, COUNT, "the CLI read every message from the broker");
    assert.deepEqual(cli, sent, "the CLI reads the same bytes in the same order");
  } finally {
    await client.close();
  }
});

test("partitioned topic through the proxy: 1000 unbatched messages spread over 3 partitions, each in order", async () => {
  const topic = `persistent://public/default/${uniqueName("via-proxy-part")}`;
  await runToolOk("pulsar-admin", ["topics", "create-partitioned-topic", "-p", "3", topic]);
  await runToolOk("pulsar-admin", ["topics", "create-subscription", "-s", "oracle", "-m", "earliest", topic]);
  const client = new BuiltinClient({ serviceUrl: proxy.serviceUrl });
  try {
    assert.equal(await client.getPartitionCount(topic), 3, "partitioned metadata through the proxy");
    const consumer = await client.subscribe({ topic, subscription: "ours", initialPosition: "earliest" });
    const producer = await client.createProducer({ topic, batchingEnabled: false });
    const sent = payloads();
    const receipts = await Promise.all(sent.map((payload) => producer.send({ payload })));
    const perPartition = new Map<string, number>();
    for (const r of receipts) perPartition.set(r.topic, (perPartition.get(r.topic) ?? 0) + 1);
    assert.deepEqual(
      [...perPartition.keys()].sort(),
      [0, 1, 2].map((p) => `${topic}-partition-${p}`),
      "round-robin used every partition",
    );
    const got = await receive(consumer);
    assert.deepEqual(sorted(got.map((m) => m.payload)), sorted(sent), "our consumer read every payload");
    const index = new Map(sent.map((p, i) => [p.toString("latin1"), i]));
    for (const partition of perPartition.keys()) {
      const order = got
        .filter((m) => m.topic === partition)
        .map((m) => index.get(m.payload.toString("latin1")) ?? -1);
      assert.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
        `${partition} delivered in send order`,
      );
    }
    assertOnlyProxyConnections(2);
    await producer.close();
    await consumer.close();
    const cli = await cliConsume(topic, "oracle");
    assert.equal(cli.length, COUNT, "the CLI read every message from the broker");
    assert.deepEqual(sorted(cli), sorted(sent), "the CLI reads the same bytes");
  } finally {
    await client.close();
  }
});
