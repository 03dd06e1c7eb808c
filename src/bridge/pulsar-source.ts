// pulsar-in's delivery: Pulsar messages -> msgs, acknowledged only once everything the flow made of them
// settled (the settlement tracker kafka-in uses, fed by Node-RED's message hooks), negatively
// acknowledged on a failure so that Pulsar delivers them again after a delay, and after the last try
// written to a dead-letter topic (then acknowledged). At most `maxInFlight` messages are in the flow:
// the consumers are not asked for more until some settle (their flow permits do the rest).
import { BridgeError, describeError, failureScope, isConsequential } from "../common/errors";
import type { Consumer, ReceivedMessage } from "../pulsar/types";
import { decodeValue, type ValueFormat } from "./record-to-msg";
import { SettlementTracker, type NodeKinds } from "./settlement";

export interface PulsarMsg {
  _msgid: string;
  payload: unknown;
  topic: string;
  key?: string | Buffer;
  properties: Record<string, string>;
  eventTime?: number;
  publishTime: number;
  pulsar: {
    topic: string;
    messageId: string;
    redeliveryCount: number;
    producerName: string;
    sequenceId: number;
  };
}

export interface PulsarSourceOptions {
  /** What the flow's nodes are (SettlementOptions: independent, groups, sequences, collects). */
  kinds?: NodeKinds;
  valueFormat: Exclude<ValueFormat, "registry">;
  maxInFlight: number;
  /** How long a failed message waits before Pulsar delivers it again. */
  nackDelayMs: number;
  /** Tries of a message before it is dead-lettered; 0 (or no writer): tried without end. */
  maxTries: number;
  /** A msg the flow has not settled this long fails (and is delivered again); 0: never. */
  settleTimeoutMs: number;
  nextMsgId: () => string;
  describeNode: (id: string) => string;
  writeDeadLetter?: (m: ReceivedMessage, reason: string, tries: number) => Promise<void>;
}

export interface PulsarSourceEvents {
  send(msg: PulsarMsg): void;
  /** A message cannot be made into a msg (the value is not JSON): it goes to Catch with its bytes. */
  decodeFailed(m: ReceivedMessage, err: unknown): void;
  deadLettered(m: ReceivedMessage, reason: string): void;
  /** In flight changed, or a failure happened: for the status. */
  changed(): void;
}

interface Held {
  message: ReceivedMessage;
  consumer: Consumer;
}

/** The message id as text: ledger:entry:partition:batchIndex. */
export const messageIdText = (m: ReceivedMessage) =>
  `${m.messageId.ledgerId}:${m.messageId.entryId}:${m.messageId.partition}:${m.messageId.batchIndex}`;

/** Tries per message id kept (the oldest forgotten first): what a message failed before, here. */
const TRIES_KEPT = 100_000;

export class PulsarSource {
  private readonly tracker: SettlementTracker<Held>;
  private readonly consumers: Consumer[] = [];
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private running = true;
  /** Failures per message id on this node (Exclusive and Failover subscriptions count no redeliveries). */
  private readonly tries = new Map<string, number>();
  private deadlineTimer: NodeJS.Timeout | undefined;
  lastError: string | undefined;

  constructor(
    private readonly o: PulsarSourceOptions,
    private readonly events: PulsarSourceEvents,
  ) {
    this.tracker = new SettlementTracker<Held>(
      {
        settled: (h) => {
          // a consumer closing meanwhile: the message is delivered again (never an unhandled rejection)
          h.consumer.acknowledge(h.message).catch(() => undefined);
          this.done(h);
        },
        failed: (h, error, cause) => this.fail(h, error, cause),
      },
      { ...o.kinds },
    );
    if (o.settleTimeoutMs > 0) {
      const every = Math.min(1000, Math.max(50, Math.floor(o.settleTimeoutMs / 4)));
      this.deadlineTimer = setInterval(
        () =>
          this.tracker.expire(
            Date.now() - o.settleTimeoutMs,
            (holders) =>
              new BridgeError(
                "pulsar-in.errors.settle-timeout",
                `not settled within ${Math.round(o.settleTimeoutMs / 1000)} s` +
                  (holders.length ? `: held by ${holders.map((h) => o.describeNode(h)).join(", ")}` : ""),
                true,
              ),
          ),
        every,
      );
      this.deadlineTimer.unref?.();
    }
  }

  get pending(): number {
    return this.inFlight;
  }

  /** Reads `consumer` until close, each message a msg, within the in-flight bound shared by all. */
  start(consumer: Consumer): void {
    this.consumers.push(consumer);
    void this.pump(consumer);
  }

  /** Stops reading `consumer` and closes it (its topic is no longer wanted); what the flow holds of it settles as usual. */
  async stop(consumer: Consumer): Promise<void> {
    const i = this.consumers.indexOf(consumer);
    if (i >= 0) this.consumers.splice(i, 1);
    await consumer.close();
  }

  private async pump(consumer: Consumer): Promise<void> {
    while (this.running) {
      if (this.inFlight >= this.o.maxInFlight) {
        await new Promise<void>((r) => this.waiting.push(r));
        continue;
      }
      let m: ReceivedMessage;
      try {
        m = await consumer.receive();
      } catch {
        // closed (close() ends the loop); nothing else rejects a receive without a timeout
        return;
      }
      if (!this.running) return;
      this.emit(consumer, m);
    }
  }

  private emit(consumer: Consumer, m: ReceivedMessage): void {
    const held: Held = { message: m, consumer };
    let payload: unknown;
    try {
      payload = m.nullValue ? null : decodeValue(m.payload, this.o.valueFormat);
    } catch (err) {
      this.inFlight++;
      this.events.decodeFailed(m, err);
      this.fail(held, err, "error");
      return;
    }
    const msg: PulsarMsg = {
      _msgid: this.o.nextMsgId(),
      payload,
      topic: m.topic,
      // the flow's own copy: what it changes is not what a dead-letter copy carries
      properties: { ...m.properties },
      publishTime: m.publishTime,
      pulsar: {
        topic: m.topic,
        messageId: messageIdText(m),
        redeliveryCount: m.redeliveryCount,
        producerName: m.producerName,
        sequenceId: m.sequenceId,
      },
    };
    if (m.key !== undefined) msg.key = m.keyBase64 ? m.keyBytes : m.key;
    if (m.eventTime) msg.eventTime = m.eventTime;
    this.inFlight++;
    this.tracker.track(msg._msgid, held);
    this.events.changed();
    this.events.send(msg);
  }

  private done(h: Held): void {
    this.tries.delete(messageIdText(h.message));
    this.release();
  }

  private fail(h: Held, error: unknown, cause: "error" | "interrupted" | "expired"): void {
    const id = messageIdText(h.message);
    const reason = describeError(error).message;
    this.lastError = reason;
    // an interruption (a redeploy), a failure because of others, or one about the deployment (a destination
    // that refuses every message) does not use up the message's tries: it waits
    const counts =
      cause !== "interrupted" && !isConsequential(error) && failureScope(error) !== "destination";
    // the broker's redelivery count also counts the nacks that were not to count: it is taken only for a
    // message this node has no count of (tried by another consumer, or before a redeploy)
    const tries = (this.tries.get(id) ?? h.message.redeliveryCount) + (counts ? 1 : 0);
    const last =
      this.o.writeDeadLetter !== undefined &&
      counts &&
      (failureScope(error) === "record" || (this.o.maxTries > 0 && tries >= this.o.maxTries));
    if (!last) {
      this.remember(id, tries);
      h.consumer.negativeAcknowledge(h.message, this.o.nackDelayMs);
      this.release();
      return;
    }
    const write = this.o.writeDeadLetter as NonNullable<PulsarSourceOptions["writeDeadLetter"]>;
    write(h.message, reason, tries).then(
      () => {
        this.events.deadLettered(h.message, reason);
        h.consumer.acknowledge(h.message).catch(() => undefined);
        this.tries.delete(id);
        this.release();
      },
      (err: unknown) => {
        // the dead-letter topic cannot be written: the message comes again
        this.lastError = `the dead letter cannot be written: ${describeError(err).message}`;
        this.remember(id, tries);
        h.consumer.negativeAcknowledge(h.message, this.o.nackDelayMs);
        this.release();
      },
    );
  }

  private release(): void {
    this.inFlight--;
    this.waiting.shift()?.();
    this.events.changed();
  }

  private remember(id: string, tries: number): void {
    this.tries.delete(id);
    this.tries.set(id, tries);
    if (this.tries.size > TRIES_KEPT) {
      const oldest = this.tries.keys().next().value;
      if (oldest !== undefined) this.tries.delete(oldest);
    }
  }

  // ---- from Node-RED's message hooks (flow-hooks.ts) ----

  deploying = false;

  delivered(msgId: string, sourceId: string, destinationId: string, msg?: object): void {
    this.tracker.delivered(msgId, sourceId, destinationId, msg);
  }
  received(msgId: string | undefined, nodeId: string, msg?: object): void {
    this.tracker.received(msgId, nodeId, msg);
  }
  routed(msgId: string, destinationId: string): void {
    this.tracker.routed(msgId, destinationId);
  }
  unhandled(msgId: string | undefined, nodeId: string, msg?: object): void {
    this.tracker.unhandled(msgId, nodeId, msg);
  }
  completed(msgId: string | undefined, nodeId: string, error?: unknown, msg?: object): void {
    this.tracker.completed(msgId, nodeId, error, msg);
  }
  setStopping(isStopping: ((nodeId: string) => boolean) | undefined): void {
    this.deploying = isStopping !== undefined;
    this.tracker.setStopping(isStopping);
  }
  flowsStarted(): void {
    this.setStopping(undefined);
  }

  /** Waits (at most `ms`) for the flow to settle what it holds; then stops and closes the consumers. */
  async close(ms = 5000): Promise<void> {
    this.running = false;
    for (const w of this.waiting.splice(0)) w();
    const deadline = Date.now() + ms;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (this.deadlineTimer) clearInterval(this.deadlineTimer);
    await Promise.allSettled(this.consumers.map((c) => c.close()));
  }
}
