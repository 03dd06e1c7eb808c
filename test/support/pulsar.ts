// Reading a Pulsar topic back in tests with our own consumer.
import assert from "node:assert/strict";
import type { PulsarClient } from "../../src/pulsar/types";
import { pulsarAdmin, runToolOk, uniqueName } from "./brokers";

/** Every payload stored in `topic`, as text, from the earliest; stops after `quietMs` without a message. */
export async function storedPayloads(client: PulsarClient, topic: string, quietMs = 3000): Promise<string[]> {
  const consumer = await client.subscribe({ topic, subscription: "check", initialPosition: "earliest" });
  const stored: string[] = [];
  try {
    for (;;) stored.push((await consumer.receive(quietMs)).payload.toString());
  } catch {
    // no more messages
  } finally {
    await consumer.close();
  }
  return stored;
}

/** A new namespace of tenant public with deduplication on (effectively-once needs it); its name. */
export async function dedupNamespace(prefix: string, admin = pulsarAdmin): Promise<string> {
  const ns = uniqueName(prefix);
  assert.equal((await admin("PUT", `/admin/v2/namespaces/public/${ns}`, {})).status, 204);
  assert.equal((await admin("POST", `/admin/v2/namespaces/public/${ns}/deduplication`, true)).status, 204);
  return ns;
}

/** Creates `subscription` on `topic` at its earliest message, with the official pulsar-admin tool. */
export async function subscribeEarliest(topic: string, subscription: string): Promise<void> {
  await runToolOk("pulsar-admin", [
    "topics",
    "create-subscription",
    "-s",
    subscription,
    "-m",
    "earliest",
    topic,
  ]);
}
