// A minimal consumer (tests, and a later pulsar-in): subscribe, flow permits, receive with batch and
// compression decoding, individual ack, close. Partitioned topics get one consumer per partition.
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
  encodeSubscribe,
  type Inbound,
} from "./protocol/commands";
import { decodeBatchPayload, decodeEntryMetadata } from "./protocol/metadata";
import { simpleFrame, type InboundFrame } from "./protocol/frame";
import { AlreadyClosedError, ChecksumError, PulsarError, TimeoutError } from "./errors";
import { parseTopicName } from "./service-url";
import type { Consumer, ConsumerOptions, ReceivedMessage } from "./types";

type Waiting = { resolve: (m: ReceivedMessage) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout };

/** Messages from one or more partition subscriptions, handed out in arrival order. */
class Inbox {
  private readonly queue: ReceivedMessage[] = [];
  private readonly waiting: Waiting[] = [];
  closedWith: Error | undefined;

  push(m: ReceivedMessage): void {
    const w = this.waiting.shift();
    if (w) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(m);
    } else this.queue.push(m);
  }

  take(timeoutMs?: number): Promise<ReceivedMessage> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
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
  private permitsUsed = 0;
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
    void this.decode(cmd, frame).catch((err: unknown) => {
      this.client.log("error", `cannot decode a message from ${this.topic}: ${(err as Error).message}`);
    });
  }

  private async decode(
    cmd: Extract<Inbound, { type: typeof CommandType.MESSAGE }>,
    frame: InboundFrame,
  ): Promise<void> {
    if (!frame.metadata || !frame.payload)
      throw new PulsarError("MESSAGE without payload", "ProtocolError", false);
    if (frame.checksumOk === false) throw new ChecksumError("checksum mismatch on a received message");
    const md = decodeEntryMetadata(frame.metadata);
    // Permits count messages, not entries; give them back in halves, as the official clients do.
    this.permitsUsed += md.numMessagesInBatch ?? 1;
    if (this.permitsUsed >= this.queueSize / 2) {
      this.conn?.write(simpleFrame(encodeFlow(this.consumerId, this.permitsUsed)));
      this.permitsUsed = 0;
    }
    let payload = frame.payload;
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
      this.inbox.push({
        ...base,
        payload,
        key: md.partitionKey,
        keyBytes: keyBytes(md.partitionKey, md.partitionKeyB64),
        orderingKey: md.orderingKey,
        properties: md.properties ?? {},
        eventTime: md.eventTime,
        sequenceId: md.sequenceId,
        messageId: {
          ledgerId: cmd.messageId.ledgerId,
          entryId: cmd.messageId.entryId,
          partition: this.partition,
          batchIndex: -1,
        },
      });
      return;
    }
    decodeBatchPayload(payload, md.numMessagesInBatch).forEach(({ metadata: s, payload: p }, i) => {
      this.inbox.push({
        ...base,
        payload: p,
        key: s.partitionKey,
        keyBytes: keyBytes(s.partitionKey, s.partitionKeyB64),
        orderingKey: s.orderingKey,
        properties: s.properties ?? {},
        eventTime: s.eventTime,
        sequenceId: s.sequenceId ?? md.sequenceId + i,
        messageId: {
          ledgerId: cmd.messageId.ledgerId,
          entryId: cmd.messageId.entryId,
          partition: this.partition,
          batchIndex: i,
        },
      });
    });
  }

  /** Acks the whole entry: with batches, that is every message of the batch (the consumer acks them all). */
  ack(m: ReceivedMessage): void {
    this.conn?.write(simpleFrame(encodeAck(this.consumerId, m.messageId)));
  }

  async close(): Promise<void> {
    this.closed = true;
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
    const part = this.parts.length === 1 ? this.parts[0] : this.parts[message.messageId.partition];
    part?.ack(message);
    return Promise.resolve();
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
