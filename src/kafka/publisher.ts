// kafka-out's writer: records go to Kafka in order through one idempotent producer (acks=all, one request
// in flight, kafkajs's retries), gathered into batches while the one before is on its way: a msg arriving
// when nothing is in flight goes at once, a burst shares requests. A batch is bounded in records and bytes
// (under Kafka's default max.message.bytes), so one large record goes alone; a request Kafka refuses for
// one record's sake is sent again a record at a time, so that only that record fails. send() settles only
// with Kafka's acknowledgement (or the error of the request that carried the record).
import type { CompressionTypes, Kafka, Message, Producer, TopicMessages } from "kafkajs";
import { BridgeError, failureScope } from "../common/errors";

/**
 * kafka-out's producer: idempotent, one request in flight (order kept), no topic created by writing to it,
 * and kafkajs's retries bounded (about a minute: 300 ms doubling up to 30 s, 8 times): unbounded, as kafkajs
 * makes an idempotent producer's by default, a missing topic or a Kafka away would never fail a send, and
 * the retry loop would outlive the node's close. The error that ends them says the destination is away,
 * so the node upstream waits and tries again without using up the record's tries.
 */
export function publisherProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    retry: { retries: 8, initialRetryTime: 300, maxRetryTime: 30_000 },
  });
}

export interface PublisherOptions {
  compression: CompressionTypes;
  /** Records per request (default 1000). */
  maxBatchRecords?: number;
  /** Bytes of keys, values and headers per request (default 512 KiB). */
  maxBatchBytes?: number;
}

export interface OutgoingRecord extends Message {
  topic: string;
}

interface Queued {
  record: OutgoingRecord;
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

const sizeOf = (r: OutgoingRecord): number => {
  const len = (v: Buffer | string | null | undefined) =>
    v == null ? 0 : Buffer.isBuffer(v) ? v.length : Buffer.byteLength(v);
  let n = len(r.key) + len(r.value) + 64;
  for (const [name, v] of Object.entries(r.headers ?? {}))
    for (const one of Array.isArray(v) ? v : [v]) n += Buffer.byteLength(name) + len(one);
  return n;
};

export class KafkaPublisher {
  private readonly queue: Queued[] = [];
  private inFlight: Queued[] = [];
  private sending: Promise<void> | undefined;
  private closed = false;
  private readonly maxRecords: number;
  private readonly maxBytes: number;

  constructor(
    /** The producer, connected; called for every request (a failed open is asked again next time). */
    private readonly producer: () => Promise<Producer>,
    private readonly o: PublisherOptions,
    /** Told when records start and stop waiting for Kafka (for the node's status). */
    private readonly onPending?: (records: number) => void,
  ) {
    this.maxRecords = Math.max(1, o.maxBatchRecords ?? 1000);
    this.maxBytes = Math.max(1, o.maxBatchBytes ?? 512 * 1024);
  }

  /** Writes `record`; settles with Kafka's acknowledgement. */
  send(record: OutgoingRecord): Promise<void> {
    if (this.closed)
      return Promise.reject(new BridgeError("kafka-out.errors.closing", "kafka-out is closing", true));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ record, bytes: sizeOf(record), resolve, reject });
      this.onPending?.(this.pendingCount);
      this.pump();
    });
  }

  get pendingCount(): number {
    return this.queue.length + this.inFlight.length;
  }

  private pump(): void {
    if (this.sending || this.queue.length === 0) return;
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < this.maxRecords) {
      const next = this.queue[n].bytes;
      if (n > 0 && bytes + next > this.maxBytes) break;
      bytes += next;
      n++;
    }
    const batch = this.queue.splice(0, n);
    this.inFlight = batch;
    this.sending = this.write(batch).finally(() => {
      this.sending = undefined;
      this.inFlight = [];
      this.onPending?.(this.pendingCount);
      this.pump();
    });
  }

  private async write(batch: Queued[]): Promise<void> {
    const byTopic = new Map<string, Message[]>();
    for (const { record } of batch) {
      const { topic, ...message } = record;
      let messages = byTopic.get(topic);
      if (!messages) byTopic.set(topic, (messages = []));
      messages.push(message);
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    let written: { topicName: string; partition: number }[];
    try {
      const producer = await this.producer();
      written = await producer.sendBatch({ topicMessages, acks: -1, compression: this.o.compression });
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      // Kafka refuses a whole request for one record (too large, invalid, a timestamp out of bounds): each
      // record goes again alone, in order, so only the one at fault fails and its neighbours are written
      if (batch.length > 1 && failureScope(e) === "record") {
        for (const q of batch) await this.write([q]);
        return;
      }
      for (const q of batch) q.reject(e);
      return;
    }
    // kafkajs leaves out, without an error, a record for a partition the topic does not have: such a record
    // was not written (Kafka acknowledges each partition it took)
    const took = new Set(written.map((w) => `${w.partition}\u0000${w.topicName}`));
    for (const q of batch) {
      const { partition, topic } = q.record;
      if (partition === undefined || took.has(`${partition}\u0000${topic}`)) q.resolve();
      else
        q.reject(
          new BridgeError(
            "kafka-out.errors.record",
            `topic ${topic} has no partition ${partition}: the record was not written`,
            false,
          ),
        );
    }
  }

  /**
   * Stops taking records; what is on its way is waited for (at most `waitMs`), what is still queued fails
   * as "closing" (its sender tries again after the redeploy).
   */
  async close(waitMs = 10_000): Promise<void> {
    this.closed = true;
    const closing = new BridgeError("kafka-out.errors.closing", "kafka-out is closing", true);
    for (const q of this.queue.splice(0)) q.reject(closing);
    if (this.sending) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.sending,
        new Promise<void>((r) => {
          timer = setTimeout(r, waitMs);
        }),
      ]);
      clearTimeout(timer);
    }
  }
}
