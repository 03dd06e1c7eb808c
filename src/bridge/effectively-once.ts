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
 * What effectively-once cannot store, refused with a clear error instead of being dropped by the broker
 * as a duplicate (its sequence id is the Kafka offset, and the broker drops any id at or below the highest
 * it stored for the producer):
 * - a record the flow split into several msgs (two msgs of one offset and attempt in a row). A retry (a
 *   higher attempt) is not a split, nor is Kafka delivering the partition again from an earlier offset;
 * - a retried record (attempt > 1) that arrives after a higher offset of its partition was acknowledged:
 *   the broker would drop it although it may never have been stored. It goes to kafka-in's failure policy.
 */
export class EffectivelyOnceGuard {
  private readonly seen = new Map<string, { offset: bigint; attempt: number }>();
  private readonly highestAcknowledged = new Map<string, bigint>();

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
    const highest = this.highestAcknowledged.get(producerName);
    if (attempt > 1 && highest !== undefined && o < highest) {
      throw new BridgeError(
        "pulsar-out.errors.behind",
        `Kafka offset ${offset} (try ${attempt}) reached pulsar-out after offset ${highest} of its partition was stored: ` +
          "in effectively-once mode Pulsar would drop it as a duplicate, so it is refused (kafka-in's failure policy decides)",
        false,
      );
    }
    this.seen.set(producerName, { offset: o, attempt });
  }

  /** Pulsar acknowledged the record at `offset` for this producer. */
  acknowledged(producerName: string, offset: string): void {
    const o = BigInt(offset);
    const highest = this.highestAcknowledged.get(producerName);
    if (highest === undefined || o > highest) this.highestAcknowledged.set(producerName, o);
  }
}
