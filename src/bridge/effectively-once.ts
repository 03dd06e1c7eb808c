// Effectively-once (DESIGN §4): one Pulsar producer per (Kafka cluster, topic, partition, Pulsar topic)
// with a stable name, and the Kafka offset as the sequence id, so Pulsar's deduplication drops what it
// already stored when a record is redelivered.
import { createHash } from "node:crypto";
import { BridgeError } from "../common/errors";

/** A producer name that is readable, stable across restarts and redeploys, and unique per source partition. */
export function producerNameFor(
  source: { cluster: string; topic: string; partition: number },
  pulsarTopic: string,
): string {
  const digest = createHash("sha256")
    .update(JSON.stringify([source.cluster, source.topic, source.partition, pulsarTopic]))
    .digest("hex")
    .slice(0, 16);
  const readable = source.topic.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 80);
  return `kafka-${readable}-${source.partition}-${digest}`;
}

/**
 * Refuses a record that the flow split into several msgs (two msgs of one offset and attempt in a row): its
 * sequence id is its offset, so they would collide. A retry (a higher attempt number) is not a split, nor is
 * Kafka delivering the partition again from an earlier offset.
 */
export class SplitGuard {
  private readonly seen = new Map<string, { offset: bigint; attempt: number }>();

  check(producerName: string, offset: string, attempt: number): void {
    const o = BigInt(offset);
    const prev = this.seen.get(producerName);
    if (prev && prev.offset === o && prev.attempt === attempt) {
      throw new BridgeError(
        "pulsar-out.errors.split-record",
        `a second msg from Kafka offset ${offset} reached pulsar-out in effectively-once mode: one record must give at most one Pulsar message`,
        false,
      );
    }
    this.seen.set(producerName, { offset: o, attempt });
  }
}
