// Reading a Pulsar topic back in tests with our own consumer.
import type { PulsarClient } from "../../src/pulsar/types";

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
