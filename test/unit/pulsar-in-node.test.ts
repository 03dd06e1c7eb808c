// pulsar-in's node glue (src/nodes/pulsar-in.ts) with a stand-in Node-RED API and a stand-in Pulsar
// client: what happens when subscribing fails at deploy.
import assert from "node:assert/strict";
import { test } from "node:test";
import { registerPulsarIn } from "../../src/nodes/pulsar-in";
import { ConnectionError, ConsumerBusyError } from "../../src/pulsar/errors";
import type { Consumer, PulsarClient, ReceivedMessage } from "../../src/pulsar/types";
import { fakeRed } from "../support/fake-red";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function idleConsumer(topic: string): Consumer {
  let closed: ((e: Error) => void) | undefined;
  return {
    topic,
    subscription: "s",
    receive: () => new Promise<ReceivedMessage>((_, reject) => (closed = reject)),
    acknowledge: () => Promise.resolve(),
    negativeAcknowledge: () => undefined,
    close: () => {
      closed?.(new Error("closed"));
      return Promise.resolve();
    },
  };
}

for (const [what, error] of [
  [
    "Pulsar unreachable for longer than the operation timeout at deploy (Node-RED boots before Pulsar)",
    new ConnectionError("connect ECONNREFUSED 127.0.0.1:6650"),
  ],
  [
    "an Exclusive subscription still held by the consumer of a crashed instance the broker has not dropped yet",
    new ConsumerBusyError("Exclusive consumer is already connected"),
  ],
] as const)
  test(`F3 stall: pulsar-in never subscribes again after ${what}`, async () => {
    const subscribes: string[] = [];
    let failing = true;
    const client = {
      subscribe: (o: { topic: string }) => {
        subscribes.push(o.topic);
        if (failing) return Promise.reject(error);
        return Promise.resolve(idleConsumer(o.topic));
      },
      createProducer: () => Promise.reject(new Error("unused")),
    } as unknown as PulsarClient;
    const cluster = {
      acquireClient: () => Promise.resolve(client),
      releaseClient: () => Promise.resolve(),
    };
    const { red, create } = fakeRed({ pc: cluster });
    registerPulsarIn(red);
    const node = create("pulsar-in", {
      id: "in1",
      cluster: "pc",
      topics: "persistent://public/default/a",
      subscription: "s",
      subscriptionType: "exclusive",
    });
    await sleep(50);
    failing = false; // Pulsar is back / the old consumer is gone
    await sleep(3000); // the client's own back-off is 100 ms .. 30 s; a supervisor would have tried again
    await node.close();
    assert.ok(
      subscribes.length > 1,
      `subscribed ${subscribes.length} time(s); the node shows "${node.statuses.at(-2)?.text}" until the next redeploy`,
    );
  });
