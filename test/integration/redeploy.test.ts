// Redeploys on a real node-red process: full, flows and nodes deployments, 20 in a row, leave the number of
// connections to the brokers flat, the bridge keeps working after them, and the nodes' status (read over
// /comms, as the editor gets it) says so.
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { kafkaBrokers, pulsarAdmin, pulsarUrl, uniqueName } from "../support/brokers";
import { createTopic, produce } from "../support/kafka";
import { makeUserDir, startNodeRed } from "../support/node-red-process";
import { connections } from "../support/sockets";

test("20 redeploys (full, flows, nodes) leave broker connections flat; the bridge still works", async (t) => {
  const kafkaTopic = uniqueName("redeploy");
  const pulsarTopic = uniqueName("redeploy");
  await createTopic(kafkaTopic, 2);
  const userDir = makeUserDir();
  t.after(() => fs.rmSync(userDir, { recursive: true, force: true }));
  const red = await startNodeRed({ userDir });
  t.after(() => red.stop());
  const kafkaPort = Number((kafkaBrokers[0] ?? "").split(":")[1]);
  const pulsarPort = Number(new URL(pulsarUrl.replace("pulsar://", "http://")).port);
  const flow = (label: string) => [
    { id: "tab", type: "tab", label },
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(",") },
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl },
    {
      id: "in",
      type: "kafka-in",
      z: "tab",
      name: label,
      cluster: "kc",
      topics: kafkaTopic,
      groupId: "redeploy-group",
      startFrom: "earliest",
      wires: [["out"]],
    },
    { id: "out", type: "pulsar-out", z: "tab", name: label, cluster: "pc", topic: pulsarTopic, wires: [] },
  ];
  const stored = async () =>
    (
      (await pulsarAdmin("GET", `/admin/v2/persistent/public/default/${pulsarTopic}/stats`)).json as {
        msgInCounter?: number;
      }
    ).msgInCounter ?? 0;
  const waitStored = async (n: number) => {
    const deadline = Date.now() + 60_000;
    while ((await stored()) < n) {
      if (Date.now() > deadline) throw new Error(`only ${await stored()} of ${n} bridged`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };

  await red.deploy(flow("v0"));
  await produce(kafkaTopic, [{ value: "warm-up" }]);
  await waitStored(1);
  const baseline = connections(red.process.pid ?? 0, [kafkaPort, pulsarPort]);
  assert.ok(baseline > 0, "the bridge holds connections");

  const types = ["full", "flows", "nodes"] as const;
  for (let i = 1; i <= 20; i++) {
    await red.deploy(flow(`v${i}`), types[i % 3]);
    await new Promise((r) => setTimeout(r, 500));
  }
  await produce(kafkaTopic, [{ value: "after redeploys" }]);
  await waitStored(2);
  await new Promise((r) => setTimeout(r, 2000));
  const after = connections(red.process.pid ?? 0, [kafkaPort, pulsarPort]);
  t.diagnostic(`broker connections: ${baseline} before, ${after} after 20 redeploys`);
  assert.ok(after <= baseline + 1, `connections stay flat (${baseline} -> ${after})`);
  // What the editor shows under the nodes, read over /comms as the editor reads it.
  const statuses = await red.statuses();
  t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
  assert.match(statuses.get("in")?.text ?? "", /consuming 2 partition/);
  assert.equal(statuses.get("in")?.fill, "green");
  assert.equal(statuses.get("out")?.fill, "green");
  assert.match(statuses.get("out")?.text ?? "", /status\.connected$/, "a catalog key the editor translates");
  assert.doesNotMatch(red.output(), /Unhandled|uncaught/i);
});

test("a kafka-in removed while it still joins its group leaves no connection behind (it used to finish connecting and consume, unowned)", async (t) => {
  const kafkaTopic = uniqueName("quick-remove");
  await createTopic(kafkaTopic, 1);
  const userDir = makeUserDir();
  t.after(() => fs.rmSync(userDir, { recursive: true, force: true }));
  const red = await startNodeRed({ userDir });
  t.after(() => red.stop());
  const kafkaPort = Number((kafkaBrokers[0] ?? "").split(":")[1]);
  const empty = [{ id: "tab", type: "tab", label: "empty" }];
  for (let i = 0; i < 10; i++) {
    await red.deploy([
      { id: "tab", type: "tab", label: `v${i}` },
      { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(",") },
      {
        id: `in${i}`,
        type: "kafka-in",
        z: "tab",
        cluster: "kc",
        topics: kafkaTopic,
        groupId: uniqueName("quick-group"),
        wires: [[]],
      },
    ]);
    // removed soon: its consumer is still connecting, subscribing or joining (each time a little later)
    await new Promise((r) => setTimeout(r, 100 * i));
    await red.deploy(empty);
  }
  // a consumer that finished connecting after its node was gone would hold its connections from here on
  const deadline = Date.now() + 20_000;
  let open = connections(red.process.pid ?? 0, [kafkaPort]);
  while (open > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    open = connections(red.process.pid ?? 0, [kafkaPort]);
  }
  assert.equal(open, 0, "no connection to Kafka once no Kafka node is deployed");
});
