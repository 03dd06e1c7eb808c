// Producers: one PartitionProducer per (partition) topic with batching, compression, a bounded pending
// queue, receipts matched in order, reconnect with in-order resend; a PartitionedProducer routes over N.
import { Queue } from "./queue";
import { SequenceRanges } from "./sequence-ranges";
import type { BuiltinClient } from "./client";
import { DEFAULT_MAX_MESSAGE_SIZE, type Connection, type ProducerListener } from "./connection";
import { Backoff, retryWithin } from "./backoff";
import { loadCodec, type Codec } from "./compression";
import {
  CommandType,
  encodeCloseProducer,
  encodeProducer,
  encodeSend,
  type Inbound,
} from "./protocol/commands";
import { ProtoWriter } from "./protocol/protobuf";
import { appendBatchEntry, encodeEntryMetadata, type EntryMetadata } from "./protocol/metadata";
import { payloadFrame, simpleFrame } from "./protocol/frame";
import {
  AlreadyClosedError,
  ConfigError,
  endsReconnection,
  MessageTooBigError,
  ProducerQueueFullError,
  PulsarError,
  TimeoutError,
} from "./errors";
import { parseTopicName } from "./service-url";
import { javaStringHash, murmur3Hash32 } from "./hash";
import type {
  MessageId,
  OutgoingMessage,
  Producer,
  ProducerOptions,
  ProducerSchema,
  ProducerState,
  SendReceipt,
} from "./types";

interface Settings {
  batching: boolean;
  batchMaxMessages: number;
  batchMaxBytes: number;
  batchDelayMs: number;
  maxPending: number;
  block: boolean;
  sendTimeoutMs: number;
  /** The schema declared in PRODUCER (ProducerOptions.schema). */
  schema?: { type: ProducerSchema["type"]; name: string; data: Buffer; properties?: Record<string, string> };
}

/** One send() awaiting its receipt. */
/** How many merging messages written fresh on one connection are remembered for a reconnect's proofs. */
const MAX_FRESH_COVERING = 4096;

interface Waiter {
  resolve: (receipt: SendReceipt) => void;
  reject: (err: Error) => void;
  sequenceId: number;
  /** OutgoingMessage.covers. */
  covers: readonly number[] | undefined;
}

/** A send() waiting for room in the pending queue (blockIfQueueFull). */
interface Blocked {
  message: OutgoingMessage;
  resolve: (receipt: SendReceipt) => void;
  reject: (err: Error) => void;
}

/** One entry on the wire (a single message or a batch), kept until its receipt arrives. */
interface PendingOp {
  frame: Buffer;
  firstSeq: number;
  lastSeq: number;
  waiters: Waiter[];
  createdAt: number;
  batched: boolean;
  /** When last written: every id of it had been written fresh before on the same connection (see write). */
  freshBefore: boolean;
}

/** One writer for every producer's batch payloads: a batch is encoded and copied out synchronously. */
const batchScratch = new ProtoWriter(256 * 1024);

function keyOf(m: OutgoingMessage): { key?: string; b64: boolean } {
  if (m.key === undefined) return { b64: false };
  return Buffer.isBuffer(m.key) ? { key: m.key.toString("base64"), b64: true } : { key: m.key, b64: false };
}

const reasonOf = (s: ProducerState): string | undefined =>
  s.state === "reconnecting" || s.state === "failed" ? s.reason.message : undefined;

/** Whether two states read the same to whoever shows them. */
export function sameState(a: ProducerState, b: ProducerState): boolean {
  return a.state === b.state && reasonOf(a) === reasonOf(b);
}

export class PartitionProducer {
  producerName = "";
  /** What the broker named the version of the schema this producer declared. */
  private schemaVersion: Buffer | undefined;
  lastSequenceId = -1;
  private readonly producerId: number;
  private conn: Connection | undefined;
  private ready = false;
  /** start() succeeded: from then on a broken link is repaired in the background, whatever refuses it. */
  private started = false;
  /** Meaningful once started. */
  state: ProducerState = { state: "connected" };
  private closed = false;
  private failed: Error | undefined;
  private epoch = 0;
  private nextSequenceId = 0;
  /**
   * What proves that a duplicate receipt stands for a stored message (see provenStored): the broker's last
   * sequence id when this producer first connected; the ids known stored since; and the ids written fresh on
   * the current connection: above the broker's last sequence id at its connect and above everything written
   * on it before, so the broker, which takes a connection's frames in order, stores them if they reach it.
   */
  private firstLastSequenceId: number | undefined;
  private readonly stored = new SequenceRanges();
  private fresh = new SequenceRanges();
  /** Every id written fresh by this producer, on any connection (see the holes). */
  private readonly everFresh = new SequenceRanges();
  private freshAbove = -1;
  /**
   * What fresh writes of messages that merge several records (OutgoingMessage.covers) stand for on this
   * connection: their covered ids, and which message covers which (a reconnect counts them stored when
   * the broker's last id shows that message stored). Bounded: past it, proofs are lost, never invented.
   */
  private freshCovered = new SequenceRanges();
  private freshCovering: { sequenceId: number; covers: readonly number[] }[] = [];
  private readonly pending: PendingOp[] = [];
  private pendingMessages = 0;
  /** The open batch: its waiters, and their messages at the same index until the batch is encoded. */
  private batch: Waiter[] = [];
  private batchMessages: OutgoingMessage[] = [];
  private batchBytes = 0;
  private batchTimer: NodeJS.Timeout | undefined;
  /** Sends waiting for room, in call order: they are admitted before any later send. */
  private readonly blocked = new Queue<Blocked>();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private readonly listener: ProducerListener;

  constructor(
    private readonly client: BuiltinClient,
    readonly topic: string,
    readonly partition: number,
    private readonly requestedName: string | undefined,
    private readonly codec: Codec,
    private readonly s: Settings,
    private readonly producerProperties: Record<string, string> | undefined,
    /** Told when `state` changed (after start). */
    private readonly onStateChange: () => void = () => undefined,
  ) {
    this.producerId = client.newId();
    this.backoff = new Backoff({
      initialMs: client.options.initialBackoffMs,
      maxMs: client.options.maxBackoffMs,
    });
    this.listener = {
      onReceipt: (cmd) => this.onReceipt(cmd),
      onSendError: (cmd) => this.onSendError(cmd),
      onDisconnect: (reason) => this.onDisconnect(reason),
    };
    if (s.sendTimeoutMs > 0) {
      // checked four times per timeout (at most once a second): a send fails within a quarter of it late
      this.timeoutTimer = setInterval(() => this.expire(), Math.max(50, Math.min(1000, s.sendTimeoutMs / 4)));
      this.timeoutTimer.unref();
    }
  }

  /** Creates the producer on the broker (first time: errors are thrown to the caller). */
  async start(): Promise<void> {
    await retryWithin(this.client.options.operationTimeoutMs, this.backoff, () => this.connectOnce());
    this.nextSequenceId = this.lastSequenceId + 1;
    this.started = true;
  }

  private setState(next: ProducerState): void {
    if (sameState(this.state, next)) return;
    this.state = next;
    if (this.started) this.onStateChange();
  }

  private async connectOnce(): Promise<void> {
    const address = await this.client.lookup(this.topic);
    const conn = await this.client.getConnection(address);
    conn.addProducer(this.producerId, this.listener);
    let res: Inbound;
    try {
      res = await conn.request(
        (requestId) =>
          encodeProducer({
            topic: this.topic,
            producerId: this.producerId,
            requestId,
            producerName: this.producerName || this.requestedName,
            userProvidedName: this.requestedName !== undefined,
            epoch: this.epoch,
            metadata: this.producerProperties,
            schema: this.s.schema,
          }),
        `creating a producer on ${this.topic}`,
      );
    } catch (err) {
      conn.removeProducer(this.producerId);
      if (err instanceof TimeoutError) conn.write(simpleFrame(encodeCloseProducer(this.producerId, 0)));
      throw err;
    }
    if (res.type !== CommandType.PRODUCER_SUCCESS) {
      conn.removeProducer(this.producerId);
      throw new PulsarError("unexpected answer to PRODUCER", "ProtocolError", true);
    }
    if (this.closed) {
      // closed while this reconnection was under way: the broker must not keep a producer nobody uses
      conn.removeProducer(this.producerId);
      conn.write(simpleFrame(encodeCloseProducer(this.producerId, 0)));
      return;
    }
    this.producerName = res.producerName;
    this.schemaVersion = res.schemaVersion;
    this.lastSequenceId = res.lastSequenceId;
    // An id written fresh on the previous connection and at or below the broker's last id now reached it
    // (what raised that id was written on that connection no earlier), so it is stored; the rest did not.
    if (this.firstLastSequenceId === undefined) this.firstLastSequenceId = res.lastSequenceId;
    else {
      this.stored.addFrom(this.fresh, res.lastSequenceId);
      for (const c of this.freshCovering)
        if (c.sequenceId <= res.lastSequenceId) for (const id of c.covers) this.stored.add(id);
    }
    this.resetFresh();
    this.freshAbove = res.lastSequenceId;
    this.conn = conn;
    this.ready = true;
    this.backoff.reset();
    if (this.started) this.client.log("info", `producer on ${this.topic} reconnected`);
    this.setState({ state: "connected" });
    // Resend, in order and byte-identical, everything not yet acknowledged.
    for (const op of this.pending) this.write(conn, op);
  }

  private onDisconnect(reason: Error): void {
    this.ready = false;
    this.conn = undefined;
    // before start() succeeded, its own retries (within the operation timeout) are the only ones
    if (this.closed || this.failed || !this.started) return;
    this.client.log("warn", `producer on ${this.topic} disconnected (${reason.message}); reconnecting`);
    this.setState({ state: "reconnecting", reason });
    this.scheduleReconnect();
  }

  /**
   * One reconnection attempt after the back-off delay, then another while it fails, without end: pending sends
   * wait (or meet their send timeout) and are resent in order once the broker takes the producer back.
   */
  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.closed) return;
    const delay = this.backoff.next();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closed) return;
      this.epoch++;
      this.connectOnce().catch((err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        if (this.closed) return;
        if (endsReconnection(e)) {
          this.client.log("error", `producer on ${this.topic} stopped: ${e.message}`);
          this.fail(e);
          return;
        }
        if (reasonOf(this.state) !== e.message)
          this.client.log("warn", `producer on ${this.topic} cannot reconnect yet (${e.message}); retrying`);
        this.setState({ state: "reconnecting", reason: e });
        this.scheduleReconnect();
      });
    }, delay);
  }

  /** A permanent error: every pending and future send fails with it. */
  private fail(err: Error): void {
    this.failed = err;
    this.ready = false;
    this.setState({ state: "failed", reason: err });
    for (const op of this.pending.splice(0)) for (const w of op.waiters) w.reject(err);
    this.rejectBatch(err);
    this.pendingMessages = 0;
    this.rejectBlocked(err);
    this.wakeIdle();
  }

  private onReceipt(cmd: Extract<Inbound, { type: typeof CommandType.SEND_RECEIPT }>): void {
    const op = this.pending[0];
    if (!op) return;
    if (cmd.sequenceId < op.firstSeq) return; // a late receipt for an op that already timed out
    if (cmd.sequenceId > op.lastSeq) {
      // out of step with the broker: reconnect and resend
      this.conn?.shutdown(
        new PulsarError(
          `receipt for sequence ${cmd.sequenceId} while waiting for ${op.firstSeq}`,
          "ProtocolError",
          true,
        ),
      );
      return;
    }
    this.pending.shift();
    this.pendingMessages -= op.waiters.length;
    const duplicate = cmd.messageId.ledgerId === -1 && cmd.messageId.entryId === -1;
    if (!duplicate)
      for (const w of op.waiters) {
        this.stored.add(w.sequenceId);
        if (w.covers) for (const id of w.covers) this.stored.add(id);
      }
    op.waiters.forEach((w, i) => {
      const proven = duplicate && this.provenStored(w.sequenceId, op);
      // a hole, unless this producer wrote it fresh before (on a connection that broke before the broker
      // had persisted it: stored by now, maybe)
      if (duplicate && !proven && !this.everFresh.has(w.sequenceId))
        this.client.holes.of(this.topic, this.producerName).add(w.sequenceId);
      const messageId: MessageId = {
        ledgerId: cmd.messageId.ledgerId,
        entryId: cmd.messageId.entryId,
        partition: this.partition,
        batchIndex: op.batched ? i : -1,
      };
      w.resolve({
        messageId,
        sequenceId: w.sequenceId,
        topic: this.topic,
        producerName: this.producerName,
        duplicate,
        duplicateProven: proven,
      });
    });
    this.wakeSpace();
    if (this.pending.length === 0 && this.batch.length === 0) this.wakeIdle();
  }

  private onSendError(cmd: Extract<Inbound, { type: typeof CommandType.SEND_ERROR }>): void {
    const op = this.pending[0];
    if (cmd.error === 9 && op && cmd.sequenceId >= op.firstSeq && cmd.sequenceId <= op.lastSeq) {
      this.pending.shift();
      this.pendingMessages -= op.waiters.length;
      for (const w of op.waiters)
        w.reject(new PulsarError(`checksum error: ${cmd.message}`, "ChecksumError", false));
      // a write the broker refused: what was written fresh on this connection no longer proves anything
      this.resetFresh();
      this.wakeSpace();
      return;
    }
    // Any other send error: the official clients drop the connection, then resend after reconnecting.
    this.conn?.shutdown(new PulsarError(`send error ${cmd.error}: ${cmd.message}`, "SendError", true));
  }

  /**
   * When the oldest pending message has waited longer than the send timeout, every pending message fails
   * (and every send waiting for room), not only the timed-out ones: were the newer ones stored while the older are retried later, the broker's
   * deduplication would drop the retries (their sequence ids are lower) although they were never stored.
   */
  private expire(): void {
    const head = this.pending[0];
    if (!head || Date.now() - head.createdAt <= this.s.sendTimeoutMs) return;
    // While the broker refuses to take the producer back for a reason that is not passing (a schema the topic
    // no longer accepts, a permission taken away), the sends fail with that reason: it says what to fix, and
    // their user must not take them for a hiccup (as a timeout is).
    const refused =
      this.state.state === "reconnecting" &&
      this.state.reason instanceof PulsarError &&
      !this.state.reason.retriable
        ? this.state.reason
        : undefined;
    const err =
      refused ??
      new TimeoutError(`no receipt from Pulsar for ${this.topic} within ${this.s.sendTimeoutMs} ms`);
    for (const op of this.pending.splice(0)) for (const w of op.waiters) w.reject(err);
    this.pendingMessages = 0;
    if (this.batchTimer) {
      clearTimeout(this.batchTimer);
      this.batchTimer = undefined;
    }
    this.rejectBatch(err);
    // sends still waiting for room came after the failed ones: they fail too, for the same reason
    this.rejectBlocked(err);
    this.wakeIdle();
  }

  private hasSpace(): boolean {
    return this.pendingMessages + this.batch.length < this.s.maxPending;
  }

  /**
   * Admits blocked sends, oldest first, while there is room (in the queue and the client's memory). True
   * when it stopped for want of memory (it waits for other producers' receipts then).
   */
  private wakeSpace(servedByMemory = false): boolean {
    while (this.blocked.length > 0 && this.hasSpace()) {
      const b = this.blocked.peek();
      if (!b) break;
      // while others wait for memory, this producer takes its turn among them (the memory limit's order)
      const queued = !servedByMemory && this.client.memory.contended;
      if (queued || !this.client.memory.tryTake(b.message.payload.length)) {
        this.waitForRoom();
        return true;
      }
      this.blocked.shift();
      try {
        this.admitHeld(b.message, b.resolve, b.reject);
      } catch (err) {
        b.reject(err as Error);
      }
    }
    // nothing blocked, or blocked on this producer's own queue (its receipts wake it): not on memory
    this.noMoreWaiting();
    return false;
  }

  private noMoreWaiting(): void {
    this.stopWaitingForRoom?.();
    this.stopWaitingForRoom = undefined;
  }

  private rejectBatch(err: Error): void {
    const waiters = this.batch;
    this.batch = [];
    this.batchMessages = [];
    this.batchBytes = 0;
    for (const w of waiters) w.reject(err);
  }

  private rejectBlocked(err: Error): void {
    while (this.blocked.length > 0) this.blocked.shift()?.reject(err);
    this.noMoreWaiting();
  }

  private wakeIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private checkUsable(): void {
    if (this.closed) throw new AlreadyClosedError(`the producer on ${this.topic} is closed`);
    if (this.failed) throw this.failed;
  }

  /** Never throws: every failure is a rejection. */
  send(message: OutgoingMessage): Promise<SendReceipt> {
    return new Promise<SendReceipt>((resolve, reject) => {
      this.checkUsable();
      const space = this.blocked.length === 0 && this.hasSpace();
      if (space && !this.client.memory.contended && this.client.memory.tryTake(message.payload.length))
        this.admitHeld(message, resolve, reject);
      else if (!this.s.block)
        throw new ProducerQueueFullError(
          space
            ? `the Pulsar client's memory limit (${this.client.memory.limitBytes} bytes of messages waiting for Pulsar) is reached`
            : `the pending queue of ${this.topic} is full (${this.s.maxPending} messages)`,
        );
      else {
        this.blocked.push({ message, resolve, reject });
        if (space) this.waitForRoom();
      }
    });
  }

  /** admit() for a message whose bytes were taken from the client's memory limit: given back once it ends. */
  private admitHeld(
    message: OutgoingMessage,
    resolve: (receipt: SendReceipt) => void,
    reject: (err: Error) => void,
  ): void {
    const bytes = message.payload.length;
    let held = true;
    const free = () => {
      if (!held) return;
      held = false;
      this.client.memory.give(bytes);
    };
    try {
      this.admit(
        message,
        (r) => {
          free();
          resolve(r);
        },
        (e) => {
          free();
          reject(e);
        },
      );
    } catch (err) {
      free();
      throw err;
    }
  }

  /** Sends wait for other producers' receipts to free room in the client's memory limit. */
  private waitForRoom(): void {
    this.stopWaitingForRoom ??= this.client.memory.onRoom(() => this.wakeSpace(true));
  }

  private stopWaitingForRoom: (() => void) | undefined;

  /**
   * Gives a message its sequence id and adds it to the batch (or sends it alone). Throws, before taking
   * anything, only for an oversize message.
   */
  private admit(
    message: OutgoingMessage,
    resolve: (receipt: SendReceipt) => void,
    reject: (err: Error) => void,
  ): void {
    const maxSize = this.conn?.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    if (message.payload.length > maxSize) {
      throw new MessageTooBigError(
        `message of ${message.payload.length} bytes exceeds the broker's maximum of ${maxSize} bytes`,
      );
    }
    const sequenceId = message.sequenceId ?? this.nextSequenceId;
    // An explicit sequence id below the next one may be a duplicate. The broker judges a whole batch by its
    // lowest sequence id, so such a message is sent alone (as the Java client does): in a batch, newer
    // messages, or other potential duplicates that were never stored, would be dropped with it.
    const potentialDuplicate = sequenceId < this.nextSequenceId;
    this.nextSequenceId = Math.max(this.nextSequenceId, sequenceId + 1);
    const waiter: Waiter = { resolve, reject, sequenceId, covers: message.covers };
    const delayed = message.deliverAt !== undefined || message.deliverAfterMs !== undefined;
    if (!this.s.batching || delayed || potentialDuplicate) {
      this.flushBatch();
      this.enqueueSingle(message, waiter);
      return;
    }
    const size = message.payload.length + 64;
    if (this.batch.length > 0 && this.batchBytes + size > this.s.batchMaxBytes) this.flushBatch();
    this.batch.push(waiter);
    this.batchMessages.push(message);
    this.batchBytes += size;
    if (this.batch.length >= this.s.batchMaxMessages || this.batchBytes >= this.s.batchMaxBytes)
      this.flushBatch();
    else if (!this.batchTimer) this.batchTimer = setTimeout(() => this.flushBatch(), this.s.batchDelayMs);
  }

  private enqueueSingle(m: OutgoingMessage, waiter: Waiter): void {
    const { key, b64 } = keyOf(m);
    const payload = this.codec.compress(m.payload);
    const md: EntryMetadata = {
      producerName: this.producerName,
      schemaVersion: this.schemaVersion,
      sequenceId: waiter.sequenceId,
      publishTime: Date.now(),
      properties: m.properties,
      partitionKey: key,
      partitionKeyB64: b64,
      orderingKey: m.orderingKey,
      eventTime: m.eventTime,
      nullValue: m.nullValue,
      deliverAtTime:
        m.deliverAt ?? (m.deliverAfterMs !== undefined ? Date.now() + m.deliverAfterMs : undefined),
    };
    if (this.codec.wireValue !== 0) {
      md.compression = this.codec.wireValue;
      md.uncompressedSize = m.payload.length;
    }
    this.enqueueOp(md, payload, [waiter], waiter.sequenceId, waiter.sequenceId);
  }

  private flushBatch(): void {
    if (this.batchTimer) {
      clearTimeout(this.batchTimer);
      this.batchTimer = undefined;
    }
    const items = this.batch;
    const messages = this.batchMessages;
    if (items.length === 0) return;
    this.batch = [];
    this.batchMessages = [];
    this.batchBytes = 0;
    let low = Infinity;
    let high = -Infinity;
    // Encoded in the shared scratch writer: the payload is copied (or compressed) into the frame below,
    // before anything else can use the writer.
    const w = batchScratch.reset();
    for (let i = 0; i < items.length; i++) {
      const m = messages[i];
      const sequenceId = items[i].sequenceId;
      if (sequenceId < low) low = sequenceId;
      if (sequenceId > high) high = sequenceId;
      const key = m.key;
      appendBatchEntry(
        w,
        {
          properties: m.properties,
          partitionKey: key === undefined ? undefined : Buffer.isBuffer(key) ? key.toString("base64") : key,
          partitionKeyB64: Buffer.isBuffer(key),
          orderingKey: m.orderingKey,
          eventTime: m.eventTime,
          nullValue: m.nullValue,
          sequenceId,
          payloadSize: 0,
        },
        m.payload,
      );
    }
    const raw = w.finish();
    const payload = this.codec.compress(raw);
    const first = messages[0];
    const firstKey = keyOf(first);
    const md: EntryMetadata = {
      producerName: this.producerName,
      schemaVersion: this.schemaVersion,
      sequenceId: low,
      highestSequenceId: high,
      publishTime: Date.now(),
      numMessagesInBatch: items.length,
      partitionKey: firstKey.key,
      partitionKeyB64: firstKey.b64,
      orderingKey: first.orderingKey,
    };
    if (this.codec.wireValue !== 0) {
      md.compression = this.codec.wireValue;
      md.uncompressedSize = raw.length;
    }
    this.enqueueOp(md, payload, items, low, high);
  }

  private enqueueOp(
    md: EntryMetadata,
    payload: Buffer,
    waiters: Waiter[],
    firstSeq: number,
    lastSeq: number,
  ): void {
    const metadata = encodeEntryMetadata(md);
    const maxSize = this.conn?.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    if (metadata.length + payload.length > maxSize) {
      const err = new MessageTooBigError(
        `message of ${metadata.length + payload.length} bytes exceeds the broker's maximum of ${maxSize} bytes`,
      );
      for (const w of waiters) w.reject(err);
      return;
    }
    const command = encodeSend({
      producerId: this.producerId,
      sequenceId: firstSeq,
      numMessages: waiters.length,
      highestSequenceId: lastSeq,
    });
    const op: PendingOp = {
      frame: payloadFrame(command, metadata, payload),
      firstSeq,
      lastSeq,
      waiters,
      createdAt: Date.now(),
      batched: md.numMessagesInBatch !== undefined,
      freshBefore: false,
    };
    this.pending.push(op);
    this.pendingMessages += waiters.length;
    if (this.ready && this.conn) this.write(this.conn, op);
  }

  private write(conn: Connection, op: PendingOp): void {
    op.freshBefore = op.waiters.every(
      (w) => this.fresh.has(w.sequenceId) || this.freshCovered.has(w.sequenceId),
    );
    // The broker judges an entry by its lowest id: fresh when that is above all it can have of this producer.
    if (op.firstSeq > this.freshAbove) {
      for (const w of op.waiters) {
        this.fresh.add(w.sequenceId);
        this.everFresh.add(w.sequenceId);
        if (w.covers && w.covers.length > 0) {
          for (const id of w.covers) this.freshCovered.add(id);
          this.freshCovering.push({ sequenceId: w.sequenceId, covers: w.covers });
          if (this.freshCovering.length > MAX_FRESH_COVERING) this.freshCovering.shift();
        }
      }
      this.freshAbove = op.lastSeq;
    }
    conn.write(op.frame);
  }

  /** A new connection (or a refused write): what was written fresh on the last one proves nothing more. */
  private resetFresh(): void {
    this.fresh = new SequenceRanges();
    this.freshCovered = new SequenceRanges();
    this.freshCovering = [];
  }

  /**
   * Whether a duplicate receipt for `sequenceId` stands for a message the broker stored: it had it when this
   * producer first connected (stored before it existed); it stored it since (a receipt, or it had it at a
   * reconnect after a fresh write); or this connection carried a fresh write of it before (an earlier try
   * that timed out while the broker took it). Not proven, for one: an id first written when a later one was
   * stored already, as often as it is tried again, because the broker passes it without storing it; and the
   * broker's last id at the first connect proves nothing of an id a producer of this name on this client
   * found so passed before (the client's holes: a redeployed producer would take it for stored).
   */
  private provenStored(sequenceId: number, op: PendingOp): boolean {
    if (this.stored.has(sequenceId) || op.freshBefore) return true;
    return (
      sequenceId <= (this.firstLastSequenceId ?? -1) &&
      !this.client.holes.of(this.topic, this.producerName).has(sequenceId)
    );
  }

  /** Sends the current batch and resolves once every message sent before has its receipt (or failed). */
  async flush(): Promise<void> {
    this.flushBatch();
    if (this.pending.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      // bounded: Node-RED gives a node 15 s to close
      if (!this.failed)
        await withTimeout(this.flush(), Math.min(5000, this.client.options.operationTimeoutMs));
    } catch {
      // whatever is still pending fails below
    }
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.timeoutTimer) clearInterval(this.timeoutTimer);
    if (this.batchTimer) clearTimeout(this.batchTimer);
    const err = new AlreadyClosedError(
      `the producer on ${this.topic} was closed before Pulsar acknowledged the message`,
    );
    for (const op of this.pending.splice(0)) for (const w of op.waiters) w.reject(err);
    this.rejectBatch(err);
    this.rejectBlocked(err);
    this.wakeIdle();
    const conn = this.conn;
    this.conn = undefined;
    if (conn && !conn.closed) {
      conn.removeProducer(this.producerId);
      await conn
        .request(
          (id) => encodeCloseProducer(this.producerId, id),
          `closing the producer on ${this.topic}`,
          3000,
        )
        .catch(() => undefined);
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** The Producer the caller sees: one partition producer, or N with routing. */
class RoutedProducer implements Producer {
  private rrIndex: number;
  private rrCount = 0;
  private readonly single: number;
  private updateTimer: NodeJS.Timeout | undefined;
  private updating: Promise<void> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private reported: ProducerState = { state: "connected" };

  constructor(
    readonly topic: string,
    private readonly parts: PartitionProducer[],
    private readonly o: ProducerOptions,
    private readonly client: BuiltinClient,
    private readonly newPart: (index: number) => PartitionProducer,
    partitioned: boolean,
  ) {
    this.rrIndex = Math.floor(Math.random() * parts.length);
    this.single = Math.floor(Math.random() * parts.length);
    const interval = o.partitionsUpdateIntervalMs ?? 60_000;
    // a name carrying the partition count freezes the count for the producer's life
    if (partitioned && interval > 0 && !o.nameCarriesPartitionCount) {
      this.updateTimer = setInterval(() => {
        this.updating ??= this.addNewPartitions().finally(() => (this.updating = undefined));
      }, interval);
      this.updateTimer.unref();
    }
  }

  /**
   * Starts producers on partitions added to the topic since: they take part in routing only once started,
   * so no message waits on a partition that is not ready. Keyed messages then hash over the new count, as
   * with the Java client. A failed check is logged and tried again at the next interval.
   */
  private async addNewPartitions(): Promise<void> {
    let count: number;
    try {
      count = await this.client.getPartitionCount(this.topic);
    } catch (err) {
      this.client.log("warn", `cannot check the partitions of ${this.topic}: ${(err as Error).message}`);
      return;
    }
    if (count <= this.parts.length || this.closed) return;
    const added = Array.from({ length: count - this.parts.length }, (_, i) =>
      this.newPart(this.parts.length + i),
    );
    try {
      await Promise.all(added.map((p) => p.start()));
    } catch (err) {
      await Promise.allSettled(added.map((p) => p.close()));
      this.client.log(
        "warn",
        `cannot start producing to the new partitions of ${this.topic}: ${(err as Error).message}`,
      );
      return;
    }
    if (this.closed) {
      await Promise.allSettled(added.map((p) => p.close()));
      return;
    }
    this.client.log("info", `${this.topic} now has ${count} partitions (was ${this.parts.length})`);
    this.parts.push(...added);
  }

  /**
   * A partition's state changed: the whole producer is connected when every partition is, reconnecting when
   * one is (with its reason), failed when one stopped for good.
   */
  partChanged(): void {
    if (this.closed) return;
    const next =
      this.parts.find((p) => p.state.state === "failed")?.state ??
      this.parts.find((p) => p.state.state === "reconnecting")?.state ??
      ({ state: "connected" } as const);
    if (sameState(next, this.reported)) return;
    this.reported = next;
    this.tell(next);
  }

  private tell(state: ProducerState): void {
    try {
      this.o.onStateChange?.(state);
    } catch (err) {
      this.client.log("warn", `a state listener of ${this.topic} threw: ${(err as Error).message}`);
    }
  }

  get producerName(): string {
    return this.parts[0]?.producerName ?? "";
  }

  get lastSequenceIds(): readonly number[] {
    return this.parts.map((p) => p.lastSequenceId);
  }

  get lastSequenceId(): number {
    return this.parts.length === 1 ? this.parts[0].lastSequenceId : Math.max(...this.lastSequenceIds);
  }

  /** The partition a message goes to (exposed for effectively-once routing decisions). */
  route(m: OutgoingMessage): number {
    const n = this.parts.length;
    if (this.o.routingMode === "key-or-sequence" && m.key === undefined) {
      // refused on any partition count: whether a message is accepted does not depend on the topic's
      if (m.sequenceId === undefined)
        throw new ConfigError('routing mode "key-or-sequence" needs a sequence id on a message without key');
      return m.sequenceId % n;
    }
    if (n === 1) return 0;
    if (this.o.routingMode === "custom" && this.o.messageRouter) {
      const p = this.o.messageRouter(m, n);
      if (!Number.isInteger(p) || p < 0 || p >= n)
        throw new ConfigError(`the message router returned ${p}, not a partition in 0..${n - 1}`);
      return p;
    }
    if (m.key !== undefined) {
      const key = Buffer.isBuffer(m.key) ? m.key.toString("base64") : m.key;
      const h = this.o.hashingScheme === "murmur3" ? murmur3Hash32(key) : javaStringHash(key);
      return h % n;
    }
    if (this.o.routingMode === "single-partition") return this.single;
    // Round-robin that keeps a batch together: move on after a batch's worth of messages.
    const per = this.o.batchingEnabled === false ? 1 : (this.o.batchingMaxMessages ?? 1000);
    if (++this.rrCount >= per) {
      this.rrCount = 0;
      this.rrIndex = (this.rrIndex + 1) % n;
    }
    return this.rrIndex;
  }

  send(message: OutgoingMessage): Promise<SendReceipt> {
    let index: number;
    try {
      index = this.route(message);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.parts[index].send(message);
  }

  async flush(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.flush()));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.updateTimer) clearInterval(this.updateTimer);
      await this.updating;
      await Promise.allSettled(this.parts.map((p) => p.close()));
      this.client.untrack(this);
      this.tell({ state: "closed" });
    })();
    return this.closing;
  }
}

export async function createProducer(client: BuiltinClient, o: ProducerOptions): Promise<Producer> {
  const topic = parseTopicName(o.topic).fullName;
  const codec = await loadCodec(o.compression ?? "none");
  const settings: Settings = {
    batching: o.batchingEnabled ?? true,
    batchMaxMessages: o.batchingMaxMessages ?? 1000,
    batchMaxBytes: o.batchingMaxBytes ?? 128 * 1024,
    batchDelayMs: o.batchingMaxPublishDelayMs ?? 10,
    maxPending: o.maxPendingMessages ?? 1000,
    block: o.blockIfQueueFull ?? true,
    sendTimeoutMs: o.sendTimeoutMs ?? 30_000,
  };
  if (o.schema)
    settings.schema = {
      type: o.schema.type,
      name: o.schema.name ?? "",
      data: Buffer.from(o.schema.definition, "utf8"),
      properties: o.schema.properties,
    };
  const partitions = await client.partitionCountWithRetry(topic);
  const producerName =
    o.producerName && o.nameCarriesPartitionCount && partitions > 0
      ? `${o.producerName}-${partitions}p`
      : o.producerName;
  // the partitions' state listener, before the producer they make up exists
  const owner: { routed?: RoutedProducer } = {};
  const changed = () => owner.routed?.partChanged();
  const newPart = (i: number) =>
    new PartitionProducer(
      client,
      partitions === 0 ? topic : `${topic}-partition-${i}`,
      partitions === 0 ? -1 : i,
      producerName,
      codec,
      settings,
      o.properties,
      changed,
    );
  const parts = Array.from({ length: Math.max(1, partitions) }, (_, i) => newPart(i));
  try {
    await Promise.all(parts.map((p) => p.start()));
  } catch (err) {
    await Promise.allSettled(parts.map((p) => p.close()));
    throw err;
  }
  const routed = new RoutedProducer(topic, parts, o, client, newPart, partitions > 0);
  owner.routed = routed;
  // a partition may have lost its connection while the others were still starting
  routed.partChanged();
  return routed;
}
