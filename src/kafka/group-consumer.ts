// The Kafka side of kafka-in, free of Node-RED: a supervised kafkajs consumer-group member that hands each
// record to the node, pauses fetching while too many records are unsettled, and commits per partition
// only up to the highest contiguous settled offset.
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from "kafkajs";
import { Backoff } from "../pulsar/backoff";
import type { OffsetLedger } from "../bridge/offsets";
import { TopicIdWatch } from "./identity";

export type ConsumerState =
  | { kind: "connecting" }
  | { kind: "consuming"; partitions: number }
  | { kind: "paused"; inFlight: number }
  | { kind: "rebalancing" }
  | { kind: "reconnecting"; error: string; retryInMs: number }
  | { kind: "stopped" };

export interface GroupConsumerOptions {
  groupId: string;
  /** Topic names, or regular expressions. */
  topics: (string | RegExp)[];
  fromBeginning: boolean;
  /** settled: commit settled offsets; auto: commit on receipt (at-most-once). */
  commitMode: "settled" | "auto";
  maxInFlight: number;
  ledger: OffsetLedger;
  /** Called for each record, in offset order per partition. */
  onRecord: (topic: string, partition: number, message: KafkaMessage) => void;
  /** Called after the records of one fetched batch were handed over (for batch output). */
  onBatchEnd?: () => void;
  /** The group gave this member its partitions (after every rebalance): those missing were revoked. */
  onAssignment?: (assigned: { topic: string; partition: number }[]) => void;
  onState: (state: ConsumerState) => void;
  onError: (error: unknown) => void;
  sessionTimeoutMs?: number;
  commitIntervalMs?: number;
  /**
   * A topic deleted and created again under its name while consumed, the new one filled past the old
   * position before the next fetch, goes unnoticed by kafkajs (the positions are valid offsets of the new
   * topic too) and its first records would be skipped. So the topics' ids (KIP-516) are looked at before a
   * batch is handed over when the last look is older than this: a topic with a new id has its records in
   * flight forgotten (onTopicRecreated) and is read from offset 0. Default 1000; 0 looks never.
   */
  topicCheckMs?: number;
  /**
   * Every batch is handed over only after a look at the topics' ids that started after it was fetched
   * (ordered mode: effectively-once must not publish a record of a recreated topic under the old topic's
   * producer names). Costs a metadata request per fetch, shared by the batches fetched together.
   */
  topicCheckEveryBatch?: () => boolean;
  /** A topic was found deleted and created again: its partitions of this member are read from offset 0. */
  onTopicRecreated?: (topic: string, partitions: number[]) => void;
  /** How long a full window is waited out before the partitions are paused. Default 3000. */
  pauseAfterMs?: number;
  /** Longest wait for in-flight records on stop. */
  drainTimeoutMs?: number;
}

export class GroupConsumer {
  private consumer: Consumer | undefined;
  /** The current consumer's connect, subscribe and run (see connect). */
  private starting: Promise<unknown> | undefined;
  private running = false;
  private paused = false;
  private pausedTopics = new Set<string>();
  /** Partitions stopped at a record that cannot be delivered (`topic` NUL `partition`). */
  private readonly blocked = new Map<string, { topic: string; partition: number }>();
  private readonly seenTopics = new Set<string>();
  private commitTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> = Promise.resolve();
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  private assigned = 0;
  /** This member's partitions (the last assignment). */
  private assignment: { topic: string; partition: number }[] = [];
  /** Each consumed topic's id when last looked at, and when that was (see topicCheckMs). */
  private readonly topicIds = new Map<string, string>();
  private topicsCheckedAt = 0;
  private topicCheck: Promise<void> | undefined;
  /** Undefined once the brokers turned out to have no topic ids. */
  private idWatch: TopicIdWatch | undefined;
  private spaceWaiter: (() => void) | undefined;
  /**
   * The window level that wakes a waiting batch: 1/64 of the window below maxInFlight. Waking at every
   * settled record cost a promise, a timer and a heartbeat per record (a third more CPU per record with a
   * function node downstream); waking a quarter below maxInFlight saved that too, but left the window a
   * tenth emptier on average, which cost 15 % of the bridge's throughput where Pulsar's round trip bounds it.
   */
  private readonly lowWater: number;

  constructor(
    private readonly kafka: Kafka,
    private readonly o: GroupConsumerOptions,
  ) {
    this.lowWater = o.maxInFlight - Math.max(1, Math.floor(o.maxInFlight / 64));
    if ((o.topicCheckMs ?? 1000) > 0) this.idWatch = new TopicIdWatch(kafka);
  }

  /** Joins the group and starts consuming; failures are retried with back-off (reported via onState). */
  start(): void {
    this.running = true;
    void this.connect();
    this.commitTimer = setInterval(() => void this.commit(), this.o.commitIntervalMs ?? 1000);
  }

  /** Called when records were settled: resumes fetching below the low-water mark and commits soon. */
  settled(): void {
    const waiter = this.spaceWaiter;
    if (waiter && this.o.ledger.inFlight <= this.lowWater) {
      // once: Pulsar's receipts settle records in bursts, each of which lands here
      this.spaceWaiter = undefined;
      waiter();
    }
    if (this.paused && this.o.ledger.inFlight <= this.o.maxInFlight / 2) this.resume();
  }

  private async connect(): Promise<void> {
    if (!this.running) return;
    this.o.onState({ kind: "connecting" });
    const consumer = this.kafka.consumer({
      groupId: this.o.groupId,
      sessionTimeout: this.o.sessionTimeoutMs ?? 30_000,
      // kafkajs sleeps this long when every partition is paused, so it bounds the resume latency
      // after backpressure (Kafka's Java consumer waits 500 ms by default too).
      maxWaitTimeInMs: 500,
      // One fetch response holds at most 1 MiB over all partitions (kafkajs: 10 MiB, 1 MiB per partition).
      // The decoded records of a fetch live until the window has taken them all, long enough for V8 to move
      // them to the old generation: smaller fetches lowered node-red's peak RSS in the bridge by ~35 MB at
      // no measurable CPU cost, and the in-flight window keeps the flow busy while the next fetch travels.
      maxBytes: 1024 * 1024,
      // kafkajs restarts on retriable errors itself; a CRASH without restart is handled below
      retry: { retries: 5 },
    });
    this.consumer = consumer;
    const { CRASH, GROUP_JOIN, REBALANCING, DISCONNECT } = consumer.events;
    consumer.on(GROUP_JOIN, (e) => {
      const assignment = e.payload.memberAssignment;
      const list = Object.entries(assignment).flatMap(([topic, partitions]) =>
        partitions.map((partition) => ({ topic, partition })),
      );
      for (const { topic } of list) this.seenTopics.add(topic);
      this.assigned = list.length;
      this.assignment = list;
      this.o.ledger.retain(list);
      const keep = new Set(list.map((a) => blockKey(a.topic, a.partition)));
      for (const [k, b] of this.blocked) {
        if (!keep.has(k)) {
          this.blocked.delete(k);
          consumer.resume([{ topic: b.topic, partitions: [b.partition] }]);
        }
      }
      this.o.onAssignment?.(list);
      this.backoff.reset();
      // revoked records no longer count: a window that was full may have room now
      this.settled();
      if (!this.paused) this.pauseBlocked();
      this.reportFlowing();
    });
    consumer.on(REBALANCING, () => {
      this.o.onState({ kind: "rebalancing" });
      // what is settled is committed while the partitions are still ours
      void this.commit();
    });
    consumer.on(CRASH, (e) => {
      if (!e.payload.restart) this.scheduleRestart(e.payload.error);
    });
    consumer.on(DISCONNECT, () => {
      if (this.running && this.consumer === consumer) this.o.onState({ kind: "connecting" });
    });
    // stop() while this runs (a node redeployed before it joined its group) waits for it, and a consumer
    // that was stopped meanwhile is disconnected here: kafkajs would finish connecting and run it, unowned
    const stale = () => !this.running || this.consumer !== consumer;
    const starting = (async () => {
      await consumer.connect();
      if (stale()) return;
      await consumer.subscribe({ topics: this.o.topics, fromBeginning: this.o.fromBeginning });
      if (stale()) return;
      await consumer.run({
        autoCommit: this.o.commitMode === "auto",
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: (payload) => this.eachBatch(payload),
      });
    })();
    this.starting = starting.catch(() => undefined);
    try {
      await starting;
      if (stale()) await consumer.disconnect().catch(() => undefined);
    } catch (err) {
      if (stale()) await consumer.disconnect().catch(() => undefined);
      else this.scheduleRestart(err);
    }
  }

  private scheduleRestart(error: unknown): void {
    if (!this.running) return;
    const retryInMs = this.backoff.next();
    this.o.onState({
      kind: "reconnecting",
      // trimmed: OpenSSL's messages end with a newline
      error: (error instanceof Error ? error.message : String(error)).trim(),
      retryInMs,
    });
    const old = this.consumer;
    this.consumer = undefined;
    this.paused = false;
    this.pausedTopics.clear();
    // the next consumer starts over from the last commit: what is in flight is redelivered, so it is
    // forgotten here (as if every partition were revoked) and the blocks start afresh
    this.blocked.clear();
    this.assignment = [];
    this.o.ledger.retain([]);
    this.o.onAssignment?.([]);
    void (async () => {
      await old?.disconnect().catch(() => undefined);
      if (!this.running) return;
      this.restartTimer = setTimeout(() => void this.connect(), retryInMs);
    })();
  }

  // Per record, only what must be per record: the ledger entry and the hand-over. kafkajs's isRunning() and
  // isStale() can only change while this loop awaits, so they are checked at the start and after each wait;
  // resolveOffset keeps only the last offset given, so it is called before each wait and at the end.
  private eachBatch = async (payload: EachBatchPayload): Promise<void> => {
    const { topic, partition, messages } = payload.batch;
    const settled = this.o.commitMode === "settled";
    const ledger = this.o.ledger;
    let unresolved: string | undefined;
    // a batch of a topic found recreated is stale (its partitions were sought to offset 0)
    if (payload.isRunning() && !payload.isStale()) await this.checkTopicIds(topic);
    if (payload.isRunning() && !payload.isStale()) {
      const blocked = this.blocked.size > 0 && this.blocked.has(blockKey(topic, partition));
      for (let i = 0; i < messages.length && this.running && !blocked; i++) {
        const message = messages[i];
        if (settled && ledger.inFlight >= this.o.maxInFlight) {
          if (unresolved !== undefined) payload.resolveOffset(unresolved);
          unresolved = undefined;
          // A short stall is waited out here (heartbeating), which keeps the stream smooth; a long one pauses
          // the partitions. Unresolved records are fetched again after resume: nothing is skipped.
          if (!(await this.waitForSpace(payload))) {
            this.pause();
            break;
          }
          if (!payload.isRunning() || payload.isStale() || !this.running) break;
        }
        // stopped at a record the flow cannot deliver: the rest is fetched again once it is unblocked
        if (this.blocked.size > 0 && this.blocked.has(blockKey(topic, partition))) break;
        if (settled) ledger.add(topic, partition, message.offset);
        unresolved = message.offset;
        try {
          this.o.onRecord(topic, partition, message);
        } catch (err) {
          this.o.onError(err);
        }
      }
    }
    if (unresolved !== undefined) payload.resolveOffset(unresolved);
    this.o.onBatchEnd?.();
    await payload.heartbeat();
  };

  /**
   * Looks at the consumed topics' ids when the last look is older than topicCheckMs (or `topic` was not
   * looked at yet), or for every batch (topicCheckEveryBatch); a topic whose id changed is read again from
   * offset 0 (see restartTopic). A failure to look is no reason to stop: the next batch looks again.
   */
  private async checkTopicIds(topic: string): Promise<void> {
    if (!this.idWatch || !this.running) return;
    if (!this.o.topicCheckEveryBatch?.()) {
      if (Date.now() - this.topicsCheckedAt < (this.o.topicCheckMs ?? 1000) && this.topicIds.has(topic))
        return;
      await (this.topicCheck ??= this.lookAtTopicIds(topic));
      return;
    }
    // a look that starts after this batch was fetched: one still under way may have answered before
    const need = this.looksStarted + 1;
    while (this.looksDone < need && this.idWatch && this.running)
      await (this.topicCheck ??= this.lookAtTopicIds(topic));
  }

  private looksStarted = 0;
  private looksDone = 0;

  /** One look at the consumed topics' ids (and `topic`'s); see checkTopicIds. */
  private lookAtTopicIds(topic: string): Promise<void> {
    const look = ++this.looksStarted;
    const watch = this.idWatch;
    return (async () => {
      if (!watch) return;
      const consumer = this.consumer;
      const topics = [...new Set([...this.seenTopics, topic])];
      let timer: NodeJS.Timeout | undefined;
      try {
        const ids = await Promise.race([
          watch.ids(topics),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("Kafka gave no topic ids in 5 s")), 5000);
          }),
        ]);
        if (!ids) {
          // brokers before Kafka 2.8: nothing to look at
          this.idWatch = undefined;
          await watch.close();
          return;
        }
        for (const t of topics) {
          const id = ids.get(t);
          // a topic gone right now (deleted, not yet created again) is judged when it is back
          if (id === undefined || id === NO_TOPIC_ID) continue;
          const known = this.topicIds.get(t);
          this.topicIds.set(t, id);
          if (known !== undefined && known !== id && consumer && this.consumer === consumer)
            await this.restartTopic(consumer, t);
        }
      } catch (err) {
        this.o.onError(err);
      } finally {
        clearTimeout(timer);
        this.topicsCheckedAt = Date.now();
      }
    })().finally(() => {
      this.looksDone = look;
      this.topicCheck = undefined;
    });
  }

  /**
   * `topic` was deleted and created again: what this member holds of it belongs to the old topic, so it is
   * forgotten (ledger, blocks, and the node's records in flight: onTopicRecreated) and every partition of
   * it is read from offset 0, the new topic's start. The group's commit is set to 0 as well (awaited, after
   * the commits queued before): the old topic's commit would make the next consumer (a redeploy, a
   * restart, another member after a rebalance) skip the new topic's records below it, and nothing is
   * committed for the new topic until one of its records settles.
   */
  private async restartTopic(consumer: Consumer, topic: string): Promise<void> {
    const partitions = this.assignment.filter((a) => a.topic === topic).map((a) => a.partition);
    for (const partition of partitions) {
      this.o.ledger.restart(topic, partition);
      if (this.blocked.delete(blockKey(topic, partition)) && !this.paused)
        consumer.resume([{ topic, partitions: [partition] }]);
      consumer.seek({ topic, partition, offset: "0" });
    }
    this.o.onTopicRecreated?.(topic, partitions);
    this.settled();
    if (this.o.commitMode !== "settled" || partitions.length === 0) return;
    const reset = partitions.map((partition) => ({ topic, partition, offset: "0" }));
    this.committing = this.committing.then(async () => {
      if (this.consumer !== consumer) return;
      try {
        await consumer.commitOffsets(reset);
      } catch (err) {
        this.o.onError(err);
      }
    });
    await this.committing;
  }

  /**
   * Waits up to pauseAfterMs for room in the window; false when there is none. It wakes when the window has
   * drained to the low-water mark (one wake-up per several settled records rather than one per record) or
   * every 200 ms (heartbeat, and progress in a slow flow), and then goes on if there is any room.
   */
  private async waitForSpace(payload: EachBatchPayload): Promise<boolean> {
    const deadline = Date.now() + (this.o.pauseAfterMs ?? 3000);
    while (this.o.ledger.inFlight >= this.o.maxInFlight) {
      if (!payload.isRunning() || payload.isStale() || !this.running || Date.now() >= deadline) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.spaceWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.spaceWaiter = undefined;
      await payload.heartbeat();
    }
    return true;
  }

  private pause(): void {
    const consumer = this.consumer;
    if (!consumer || this.paused) return;
    this.paused = true;
    const topics = [...this.seenTopics];
    for (const topic of topics) this.pausedTopics.add(topic);
    consumer.pause(topics.map((topic) => ({ topic })));
    this.o.onState({ kind: "paused", inFlight: this.o.ledger.inFlight });
  }

  private resume(): void {
    const consumer = this.consumer;
    this.paused = false;
    if (consumer && this.pausedTopics.size > 0)
      consumer.resume([...this.pausedTopics].map((topic) => ({ topic })));
    this.pausedTopics.clear();
    // a topic-wide resume resumes its blocked partitions too
    this.pauseBlocked();
    this.reportFlowing();
  }

  private pauseBlocked(): void {
    const consumer = this.consumer;
    if (!consumer) return;
    for (const b of this.blocked.values()) consumer.pause([{ topic: b.topic, partitions: [b.partition] }]);
  }

  /**
   * Stops fetching `partition` (a record of it can be neither delivered nor dead-lettered): records already
   * handed over go on settling, nothing past the blocking record is committed, and fetching resumes after
   * unblock (or when the partition is revoked).
   */
  block(topic: string, partition: number): void {
    const k = blockKey(topic, partition);
    if (this.blocked.has(k)) return;
    this.blocked.set(k, { topic, partition });
    // kafkajs: pausing a partition of a topic paused as a whole would resume the topic's other partitions
    if (!this.paused) this.consumer?.pause([{ topic, partitions: [partition] }]);
  }

  unblock(topic: string, partition: number): void {
    if (!this.blocked.delete(blockKey(topic, partition))) return;
    if (!this.paused) this.consumer?.resume([{ topic, partitions: [partition] }]);
  }

  isBlocked(topic: string, partition: number): boolean {
    return this.blocked.has(blockKey(topic, partition));
  }

  private reportFlowing(): void {
    if (this.paused) this.o.onState({ kind: "paused", inFlight: this.o.ledger.inFlight });
    else this.o.onState({ kind: "consuming", partitions: this.assigned });
  }

  /** Commits every partition's contiguous settled prefix. Serialised; errors are reported, not thrown. */
  commit(): Promise<void> {
    this.committing = this.committing.then(async () => {
      const consumer = this.consumer;
      if (!consumer || this.o.commitMode !== "settled") return;
      const offsets = [];
      for (const { topic, partition } of this.o.ledger.dirty()) {
        const offset = this.o.ledger.takeCommittable(topic, partition);
        if (offset !== undefined) offsets.push({ topic, partition, offset });
      }
      if (offsets.length === 0) return;
      try {
        await consumer.commitOffsets(offsets);
        for (const o of offsets) this.o.ledger.commitConfirmed(o.topic, o.partition, o.offset);
      } catch (err) {
        // Retried at the next interval while the partition is ours. After a rebalance it may belong to
        // another member, which starts from the last commit: records are redelivered there, never lost.
        for (const o of offsets) this.o.ledger.commitFailed(o.topic, o.partition, o.offset);
        this.o.onError(err);
      }
    });
    return this.committing;
  }

  /**
   * Stops fetching, waits up to drainTimeoutMs for in-flight records, calls `drained` (nothing settles
   * after it), commits what is settled, leaves the group.
   */
  async stop(drained?: () => void): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.commitTimer) clearInterval(this.commitTimer);
    // a consumer still connecting is disconnected once it has (see connect); waited for a while at most
    if (this.starting) await Promise.race([this.starting, new Promise((r) => setTimeout(r, 10_000).unref())]);
    const consumer = this.consumer;
    if (consumer) {
      const topics = [...this.seenTopics];
      if (topics.length) consumer.pause(topics.map((topic) => ({ topic })));
      const deadline = Date.now() + (this.o.drainTimeoutMs ?? 5000);
      while (this.o.ledger.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      drained?.();
      this.consumer = consumer;
      await this.commit();
      this.consumer = undefined;
      await consumer.disconnect().catch(() => undefined);
    } else drained?.();
    await this.idWatch?.close();
    this.o.ledger.clear();
    this.o.onState({ kind: "stopped" });
  }
}

const blockKey = (topic: string, partition: number) => `${partition}\u0000${topic}`;

/** The id Kafka gives a topic it has none for (the zero UUID, in the base64url of identity.ts). */
const NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA";
