// Lookups across two real brokers of one cluster (test/support/pulsar-cluster.ts: a ZooKeeper standalone,
// which is the load manager's leader, plus a second broker on the same ZooKeeper and bookie). Our client's
// service URL is the second broker: for a bundle nobody owns yet it redirects to the leader, which either
// takes the bundle or redirects, authoritatively, back to the second broker.
//
// Not the standalone as service URL: a standalone answers "connect through the service URL" for every
// broker with a loopback address, so a lookup there for a topic the other broker owns sends any client
// (the Java CLI too) to the standalone, which refuses the topic.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { BuiltinClient } from "../../src/pulsar/client";
import type { Producer } from "../../src/pulsar/types";
import { runToolOk, uniqueName } from "../support/brokers";
import { startPulsarCluster, type PulsarCluster } from "../support/pulsar-cluster";
import { connections } from "../support/sockets";

const MESSAGES = 20;
const MAX_TOPICS = 40;

let cluster: PulsarCluster;
before(async () => {
  cluster = await startPulsarCluster();
});
after(async () => {
  await cluster?.dispose();
});

async function json(url: string, method = "GET", body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
}

test("through the second broker: redirects to the leader and back, producers on both brokers, one connection each", async (t) => {
  const [leader, second] = cluster.brokers;
  const addressOf = (b: typeof leader) => `127.0.0.1:${b.port}`;
  const namespace = `public/${uniqueName("multi")}`;
  // many bundles nobody owns yet: each first lookup in one asks the leader to place it
  const created = await json(`${leader.httpUrl}/admin/v2/namespaces/${namespace}`, "PUT", {
    bundles: { numBundles: 16 },
  });
  assert.equal(created.status, 204, JSON.stringify(created.body));

  const logs: string[] = [];
  const client = new BuiltinClient({
    serviceUrl: second.serviceUrl,
    log: (_level, message) => logs.push(message),
  });
  const producers = new Map<string, Producer>();
  const servedBy = new Map<string, string>();
  const lookupLines = (topic: string) => logs.filter((l) => l.startsWith(`lookup of ${topic}: `));
  const seen = { toLeaderThenLeader: false, toLeaderThenSecond: false };
  try {
    for (let i = 0; i < MAX_TOPICS; i++) {
      const topic = `persistent://${namespace}/t-${i}`;
      const producer = await client.createProducer({ topic });
      producers.set(topic, producer);
      const receipts = await Promise.all(
        Array.from({ length: MESSAGES }, (_, n) => producer.send({ payload: Buffer.from(`${topic}#${n}`) })),
      );
      assert.equal(receipts.length, MESSAGES);
      const lines = lookupLines(topic);
      const served = /served by (\S+)$/.exec(lines.at(-1) ?? "")?.[1];
      assert.ok(served, `a lookup of ${topic} ended on a broker: ${lines.join(" / ")}`);
      servedBy.set(topic, served);
      const path = lines.join(" / ");
      if (path.includes(`redirected to ${addressOf(leader)}`)) {
        if (served === addressOf(leader)) seen.toLeaderThenLeader = true;
        if (
          path.includes(`redirected to ${addressOf(second)} (authoritative)`) &&
          served === addressOf(second)
        )
          seen.toLeaderThenSecond = true;
      }
      if (seen.toLeaderThenLeader && seen.toLeaderThenSecond) break;
    }
    assert.ok(
      seen.toLeaderThenLeader,
      `a lookup was redirected to the leader, which took the bundle:\n${logs.join("\n")}`,
    );
    assert.ok(
      seen.toLeaderThenSecond,
      `a lookup was redirected to the leader and on to the second broker (authoritative):\n${logs.join("\n")}`,
    );

    const owned = (b: typeof leader) => [...servedBy.values()].filter((s) => s === addressOf(b)).length;
    t.diagnostic(
      `${servedBy.size} topics: ${owned(leader)} on the leader, ${owned(second)} on the second broker; ` +
        `${logs.filter((l) => l.includes("redirected to")).length} redirects`,
    );

    // One connection per broker: the lookups and the second broker's producers share one, the leader's
    // producers use the other (no connection to the second broker "proxying" for the leader).
    assert.equal(connections(process.pid, [second.port]), 1, "connections to the second broker");
    assert.equal(connections(process.pid, [leader.port]), 1, "connections to the leader");

    // The cluster agrees on who owns each topic, and each topic took its messages.
    for (const [topic, broker] of servedBy) {
      const local = topic.replace("persistent://", "");
      const lookup = await json(`${leader.httpUrl}/lookup/v2/topic/persistent/${local}`);
      assert.equal((lookup.body as { brokerUrl: string }).brokerUrl, `pulsar://${broker}`, topic);
      const stats = await json(`${leader.httpUrl}/admin/v2/persistent/${local}/stats`);
      assert.equal((stats.body as { msgInCounter: number }).msgInCounter, MESSAGES, `${topic} stored`);
    }
    // and the official CLI says the same about one topic of each broker
    for (const broker of [leader, second]) {
      const topic = [...servedBy].find(([, b]) => b === addressOf(broker))?.[0];
      assert.ok(topic, `a topic on ${addressOf(broker)}`);
      const cli = await runToolOk("pulsar-admin", ["topics", "lookup", topic], { env: cluster.toolEnv });
      assert.match(
        cli.stdout,
        new RegExp(`pulsar://${addressOf(broker)}\\b`),
        `pulsar-admin lookup of ${topic}`,
      );

      // a consumer of the same client reads it back from that broker
      const consumer = await client.subscribe({ topic, subscription: "check", initialPosition: "earliest" });
      try {
        for (let n = 0; n < MESSAGES; n++)
          assert.equal((await consumer.receive(20_000)).payload.toString(), `${topic}#${n}`);
      } finally {
        await consumer.close();
      }
    }
  } finally {
    for (const producer of producers.values()) await producer.close();
    await client.close();
  }
});
