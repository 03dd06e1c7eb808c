// The consumer (pulsar-in, and tests): subscribe, flow permits, receive with batch and compression decoding,
// individual ack, negative ack with a redelivery delay, reconnect (the broker then delivers again what is
// unacknowledged; nothing is handed out twice while the application holds it), close. Partitioned topics
// get one consumer per partition.
import type { BuiltinClient } from "./client";
import type { Connection, ConsumerListener } from "./connection";
import { Backoff, retryWithin } from "./backoff";
import { codecTypeFromWire, loadCodec } from "./compression";
import {
  CommandType,
  SubType,
  encodeAck,
  encodeCloseConsumer,
  encodeFlow,
  encodeRedeliver,
  encodeSubscribe,
  type Inbound,
} from "./protocol/commands";
import { decodeBatchPayload, decodeEntryMetadata, type EntryMetadata } from "./protocol/metadata";
import { simpleFrame, type InboundFrame } from "./protocol/frame";
import { AlreadyClosedError, ChecksumError, PulsarError, TimeoutError } from "./errors";
import { Queue } from "./queue";
import { parseTopicName } from "./service-url";
import type { Consumer, ConsumerOptions, ReceivedMessage } from "./types";

const idKey = (id: { ledgerId: number; entryId: number; batchIndex: number }) =>
  `${id.ledgerId}:${id.entryId}:${id.batchIndex}`;

type Waiting = { resolve: (m: ReceivedMessage) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout };

/** A received message and what to do once the application has taken it (give its flow permit back). */
interface Delivery {
  message: ReceivedMessage;
  taken(): void;
  /** The broker sends it again (a new subscription, a redelivery of everything unacknowledged): skipped. */
  stale(): boolean;
}

/** Messages from one or more partition subscriptions, handed out in arrival order. */
class Inbox {
  private readonly queue = new Queue<Delivery>();
  private readonly waiting: Waiting[] = [];
  closedWith: Error | undefined;

  push(d: Delivery): void {
    const w = this.waiting.shift();
    if (w) {
      if (w.timer) clearTimeout(w.timer);
      d.taken();
      w.resolve(d.message);
    } else this.queue.push(d);
  }

  take(timeoutMs?: number): Promise<ReceivedMessage> {
    let d = this.queue.shift();
    while (d?.stale()) d = this.queue.shift();
    if (d) {
      d.taken();
      return Promise.resolve(d.message);
    }
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<ReceivedMessage>((resolve, reject) => {
      const w: Waiting = { resolve, reject };
      if (timeoutMs !== undefined) {
        w.timer = setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(w), 1);
          reject(new TimeoutError(`no message within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.waiting.push(w);
    });
  }

  close(err: Error): void {
    this.closedWith = err;
    for (const w of this.waiting.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(err);
    }
  }
}

class PartitionConsumer {
  private readonly consumerId: number;
  private conn: Connection | undefined;
  private closed = false;
  /** Messages the application has taken since the last FLOW: the permits to give back. */
  private permitsUsed = 0;
  /** Counts successful subscribes: messages of an earlier one give no permits back on the new one. */
  private generation = 0;
  /** MESSAGE frames are decoded one after another, so that a codec loading asynchronously cannot reorder them. */
  private decoding: Promise<void> = Promise.resolve();
  /** Per batched entry ("ledger:entry"), the batch indexes not acknowledged yet. */
  private readonly unackedBatches = new Map<string, Set<number>>();
  /** Messages handed to the application and not acknowledged or negatively acknowledged yet, by id. */
  private readonly held = new Set<string>();
  /** Counts redeliveries of everything unacknowledged: what was queued before is sent again. */
  private rewinds = 0;
  /** Messages queued in the inbox (not taken yet), per (generation, rewind). */
  private queued = 0;
  /** Negatively acknowledged entries waiting for their redelivery request, and its timer. */
  private readonly nacked = new Map<string, { ledgerId: number; entryId: number }>();
  private nackTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly listener: ConsumerListener;

  constructor(
    private readonly client: BuiltinClient,
    readonly topic: string,
    private readonly partition: number,
    private readonly o: ConsumerOptions,
    private readonly inbox: Inbox,
  ) {
    this.consumerId = client.newId();
    this.backoff = new Backoff({
      initialMs: client.options.initialBackoffMs,
      maxMs: client.options.maxBackoffMs,
    });
    this.listener = {
      onMessage: (cmd, frame) => this.onMessage(cmd, frame),
      onDisconnect: () => this.onDisconnect(),
    };
  }

  private get queueSize(): number {
    return this.o.receiverQueueSize ?? 1000;
  }

  start(): Promise<void> {
    return retryWithin(this.client.options.operationTimeoutMs, this.backoff, () => this.subscribeOnce());
  }

  private async subscribeOnce(): Promise<void> {
    const address = await this.client.lookup(this.topic);
    const conn = await this.client.getConnection(address);
    conn.addConsumer(this.consumerId, this.listener);
    try {
      await conn.request(
        (requestId) =>
          encodeSubscribe({
            topic: this.topic,
            subscription: this.o.subscription,
            subType: SubType[this.o.subscriptionType ?? "exclusive"],
            consumerId: this.consumerId,
            requestId,
            consumerName: this.o.consumerName,
            initialPosition: this.o.initialPosition ?? "latest",
          }),
        `subscribing to ${this.topic}`,
      );
    } catch (err) {
      conn.removeConsumer(this.consumerId);
      throw err;
    }
    this.conn = conn;
    this.generation++;
    // what was queued of the last subscription comes again; what the application holds is not handed twice
    this.queued = 0;
    this.permitsUsed = 0;
    this.backoff.reset();
    conn.write(simpleFrame(encodeFlow(this.consumerId, this.queueSize)));
  }

  private onDisconnect(): void {
    this.conn = undefined;
    if (this.closed) return;
    const delay = this.backoff.next();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.subscribeOnce().catch(() => this.onDisconnect());
    }, delay);
  }

  private onMessage(cmd: Extract<Inbound, { type: typeof CommandType.MESSAGE }>, frame: InboundFrame): void {
    const generation = this.generation;
    const rewind = this.rewinds;
    this.decoding = this.decoding
      .then(() => this.decode(cmd, frame, generation, rewind))
      .catch((err: unknown) => {
        this.client.log("error", `cannot decode a message from ${this.topic}: ${(err as Error).message}`);
      });
  }

  /**
   * The application took `count` messages of subscription `generation`. Permits count messages, not entries,
   * and go back in halves of the queue, as in the official clients: the queue bounds what is held in memory.
   */
  private release(generation: number, count: number): void {
    if (generation !== this.generation || !this.conn) return;
    this.permitsUsed += count;
    if (this.permitsUsed >= Math.max(1, this.queueSize / 2)) {
      this.conn.write(simpleFrame(encodeFlow(this.consumerId, this.permitsUsed)));
      this.permitsUsed = 0;
    }
  }

  private async decode(
    cmd: Extract<Inbound, { type: typeof CommandType.MESSAGE }>,
    frame: InboundFrame,
    generation: number,
    rewind: number,
  ): Promise<void> {
    let messages: ReceivedMessage[];
    let count = 1;
    try {
      if (!frame.metadata || !frame.payload)
        throw new PulsarError("MESSAGE without payload", "ProtocolError", false);
      if (frame.checksumOk === false) throw new ChecksumError("checksum mismatch on a received message");
      const md = decodeEntryMetadata(frame.metadata);
      count = md.numMessagesInBatch ?? 1;
      messages = await this.unpack(cmd, md, frame.payload);
    } catch (err) {
      // The broker counted the dropped entry against the permits: without them back, bad entries stall the flow.
      this.release(generation, count);
      throw err;
    }
    // what the application already acknowledged (of a batch sent again) or still holds is not handed out twice
    const fresh = messages.filter((m) => !this.held.has(idKey(m.messageId)));
    this.release(generation, count - fresh.length);
    const stale = () => generation !== this.generation || rewind !== this.rewinds;
    for (const message of fresh) {
      this.queued++;
      this.inbox.push({
        message,
        stale,
        taken: () => {
          this.queued--;
          this.held.add(idKey(message.messageId));
          this.release(generation, 1);
        },
      });
    }
  }

  private async unpack(
    cmd: Extract<Inbound, { type: typeof CommandType.MESSAGE }>,
    md: EntryMetadata,
    entryPayload: Buffer,
  ): Promise<ReceivedMessage[]> {
    let payload = entryPayload;
    if (md.compression) {
      const codec = await loadCodec(codecTypeFromWire(md.compression));
      payload = codec.decompress(payload, md.uncompressedSize ?? 0);
    }
    const base = {
      publishTime: md.publishTime,
      producerName: md.producerName,
      topic: this.topic,
      redeliveryCount: cmd.redeliveryCount,
    };
    const keyBytes = (key: string | undefined, b64: boolean | undefined) =>
      key === undefined ? undefined : b64 ? Buffer.from(key, "base64") : Buffer.from(key, "utf8");
    if (md.numMessagesInBatch === undefined) {
      return [
        {
          ...base,
          payload,
          key: md.partitionKey,
          keyBytes: keyBytes(md.partitionKey, md.partitionKeyB64),
          keyBase64: md.partitionKeyB64 === true,
          orderingKey: md.orderingKey,
          properties: md.properties ?? {},
          eventTime: md.eventTime,
          nullValue: md.nullValue === true,
          sequenceId: md.sequenceId,
          messageId: {
            ledgerId: cmd.messageId.ledgerId,
            entryId: cmd.messageId.entryId,
            partition: this.partition,
            batchIndex: -1,
          },
        },
      ];
    }
    const items = decodeBatchPayload(payload, md.numMessagesInBatch);
    const entry = `${cmd.messageId.ledgerId}:${cmd.messageId.entryId}`;
    // a batch sent again (a redelivery): the indexes acknowledged since are left out
    const left = this.unackedBatches.get(entry) ?? new Set(items.map((_, i) => i));
    this.unackedBatches.set(entry, left);
    const all = items.map(({ metadata: s, payload: p }, i) => ({
      ...base,
      payload: p,
      key: s.partitionKey,
      keyBytes: keyBytes(s.partitionKey, s.partitionKeyB64),
      keyBase64: s.partitionKeyB64 === true,
      orderingKey: s.orderingKey,
      properties: s.properties ?? {},
      eventTime: s.eventTime,
      nullValue: s.nullValue === true,
      sequenceId: s.sequenceId ?? md.sequenceId + i,
      messageId: {
        ledgerId: cmd.messageId.ledgerId,
        entryId: cmd.messageId.entryId,
        partition: this.partition,
        batchIndex: i,
      },
    }));
    return all.filter((m) => left.has(m.messageId.batchIndex));
  }

  /**
   * The broker acknowledges whole entries: a batch's entry is acked once every message of it is, so acking
   * one message never acknowledges others the application has not processed.
   */
  ack(m: ReceivedMessage): void {
    this.held.delete(idKey(m.messageId));
    const { ledgerId, entryId, batchIndex } = m.messageId;
    if (batchIndex >= 0) {
      const key = `${ledgerId}:${entryId}`;
      const left = this.unackedBatches.get(key);
      if (left) {
        left.delete(batchIndex);
        if (left.size > 0) return;
        this.unackedBatches.delete(key);
      }
    }
    this.conn?.write(simpleFrame(encodeAck(this.consumerId, m.messageId)));
  }

  /**
   * Delivered again after `delayMs`: the entries nacked within that time are asked for together. Shared
   * and Key_Shared subscriptions redeliver those entries; Exclusive and Failover ones everything
   * unacknowledged, so what is queued here is dropped (and its permits given back) as the broker sends it
   * again.
   */
  nack(m: ReceivedMessage, delayMs: number): void {
    this.held.delete(idKey(m.messageId));
    const { ledgerId, entryId } = m.messageId;
    this.nacked.set(`${ledgerId}:${entryId}`, { ledgerId, entryId });
    this.nackTimer ??= setTimeout(() => {
      this.nackTimer = undefined;
      this.redeliver();
    }, delayMs);
  }

  private redeliver(): void {
    const ids = [...this.nacked.values()];
    this.nacked.clear();
    const conn = this.conn;
    // not connected: the new subscription delivers every unacknowledged message anyway
    if (!conn || ids.length === 0) return;
    const type = this.o.subscriptionType ?? "exclusive";
    if (type === "shared" || type === "key-shared") {
      conn.write(simpleFrame(encodeRedeliver(this.consumerId, ids)));
      return;
    }
    const dropped = this.queued;
    this.rewinds++;
    this.queued = 0;
    conn.write(simpleFrame(encodeRedeliver(this.consumerId, [])));
    if (dropped > 0) conn.write(simpleFrame(encodeFlow(this.consumerId, dropped)));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.nackTimer) clearTimeout(this.nackTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const conn = this.conn;
    this.conn = undefined;
    if (conn && !conn.closed) {
      conn.removeConsumer(this.consumerId);
      await conn
        .request(
          (id) => encodeCloseConsumer(this.consumerId, id),
          `closing the consumer on ${this.topic}`,
          3000,
        )
        .catch(() => undefined);
    }
  }
}

class MultiConsumer implements Consumer {
  constructor(
    readonly topic: string,
    readonly subscription: string,
    private readonly parts: PartitionConsumer[],
    private readonly inbox: Inbox,
    private readonly client: BuiltinClient,
  ) {}

  receive(timeoutMs?: number): Promise<ReceivedMessage> {
    return this.inbox.take(timeoutMs);
  }

  acknowledge(message: ReceivedMessage): Promise<void> {
    this.partOf(message)?.ack(message);
    return Promise.resolve();
  }

  negativeAcknowledge(message: ReceivedMessage, delayMs = 1000): void {
    this.partOf(message)?.nack(message, delayMs);
  }

  private partOf(message: ReceivedMessage): PartitionConsumer | undefined {
    return this.parts.length === 1 ? this.parts[0] : this.parts[message.messageId.partition];
  }

  async close(): Promise<void> {
    this.inbox.close(new AlreadyClosedError("the consumer is closed"));
    await Promise.allSettled(this.parts.map((p) => p.close()));
    this.client.untrack(this);
  }
}

export async function createConsumer(client: BuiltinClient, o: ConsumerOptions): Promise<Consumer> {
  const topic = parseTopicName(o.topic).fullName;
  const partitions = await client.partitionCountWithRetry(topic);
  const inbox = new Inbox();
  const parts =
    partitions === 0
      ? [new PartitionConsumer(client, topic, -1, o, inbox)]
      : Array.from(
          { length: partitions },
          (_, i) => new PartitionConsumer(client, `${topic}-partition-${i}`, i, o, inbox),
        );
  try {
    await Promise.all(parts.map((p) => p.start()));
  } catch (err) {
    await Promise.allSettled(parts.map((p) => p.close()));
    throw err;
  }
  return new MultiConsumer(topic, o.subscription, parts, inbox, client);
}
