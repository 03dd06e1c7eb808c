// The Kafka side of kafka-in, free of Node-RED: a supervised kafkajs consumer-group member that hands each
// record to the node, pauses fetching while too many records are unsettled, and commits per partition
// only up to the highest contiguous settled offset.
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from "kafkajs";
import { Backoff } from "../pulsar/backoff";
import type { OffsetLedger } from "../bridge/offsets";
import { type GroupCommit, KafkaIdentityError, TopicIdWatch } from "./identity";

export type ConsumerState =
  | { kind: "connecting" }
  | { kind: "consuming"; partitions: number }
  | { kind: "paused"; inFlight: number }
  | { kind: "rebalancing" }
  | { kind: "reconnecting"; error: string; retryInMs: number }
  | { kind: "stopped" };

/** How long a fetched batch waits for beforeBatch (a schema registry answering slowly) at most. */
const BEFORE_BATCH_MAX_MS = 25_000;

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
  /** Awaited before a fetched batch's records are handed over (kafka-in loads their schemas); never rejects. */
  beforeBatch?: (messages: KafkaMessage[]) => Promise<void>;
  /** The group gave this member its partitions (after every rebalance): those missing were revoked. */
  onAssignment?: (assigned: { topic: string; partition: number }[]) => void;
  onState: (state: ConsumerState) => void;
  onError: (error: unknown) => void;
  sessionTimeoutMs?: number;
  commitIntervalMs?: number;
  /**
   * A topic deleted and created again under its name while consumed, the new one filled past the old
   * position before the next fetch, goes unnoticed by kafkajs (the positions are valid offsets of the new
   * topic too) and its first records would be skipped. So each partition is read as one topic id (KIP-516),
   * and the ids are looked at before a batch is handed over when the last look is older than this (and
   * before a partition's first batch): a partition whose topic has a new id has its records in flight
   * forgotten (onTopicRecreated) and is read from offset 0. See lookAtTopicIds. Default 1000; 0: never.
   */
  topicCheckMs?: number;
  /**
   * Every batch is handed over only after a look at the topics' ids that started after it was fetched and
   * found its topic (ordered mode: effectively-once must not publish a record of a recreated topic under
   * the old topic's producer names). Costs a metadata request per fetch, shared by the batches fetched
   * together; a batch waits (heartbeating) while the look fails.
   */
  topicCheckEveryBatch?: () => boolean;
  /**
   * The topics' ids can never be looked at (an error no retry mends): a topic deleted and created again
   * goes unnoticed from now on.
   */
  onIdsUnavailable?: (reason: string) => void;
  /** Partitions of a topic found deleted and created again: they are read from offset 0. */
  onTopicRecreated?: (topic: string, partitions: number[]) => void;
  /** Where the topics' ids and the group's commits are asked (tests); a TopicIdWatch of `kafka` by default. */
  idWatch?: TopicIds;
  /**
   * Per topic, the id this member's predecessors read it as (the consumers of this group and cluster the
   * process ran before, across redeploys): see lastIds.
   */
  lastIds?: Map<string, string>;
  /** The resets to 0 its predecessors still owed (see resets), shared with them. */
  resets?: Map<string, { topic: string; partition: number }>;
  /** The topic ids the group reads from their start (see fromStart), shared with its predecessors. */
  fromStart?: Set<string>;
  /** Ordered mode: how long answered looks must miss a topic before its batches go on (30 s; tests). */
  deletedAfterMs?: number;
  /** How long a full window is waited out before the partitions are paused. Default 3000. */
  pauseAfterMs?: number;
  /** Longest wait for in-flight records on stop. */
  drainTimeoutMs?: number;
}

/** What GroupConsumer asks of the topics' ids and the group's commits (TopicIdWatch). */
export type TopicIds = Pick<TopicIdWatch, "ids" | "commits" | "close">;

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
  /** Per assigned partition (blockKey), the id of the topic this member reads it as (see lookAtTopicIds). */
  private readonly readIds = new Map<string, string>();
  /**
   * Per topic, its id when this member (or a predecessor: GroupConsumerOptions.lastIds) last read one of
   * its partitions (kept across rebalances).
   */
  private readonly lastIds: Map<string, string>;
  /**
   * Per topic, the ids it had before this member found it created again: a look naming one of them was
   * answered by a broker whose metadata lags (a topic's id never comes back), and is not acted on.
   */
  private readonly retiredIds = new Map<string, Set<string>>();
  /** Per topic, since when the looks that answered have not named it (see checkTopicIds). */
  private readonly missingSince = new Map<string, number>();
  /**
   * Partitions read again from offset 0 whose commit of 0 Kafka has not confirmed yet (by blockKey); kept
   * by the predecessors of this member too (GroupConsumerOptions.resets).
   */
  private readonly resets: Map<string, { topic: string; partition: number }>;
  /**
   * The topic ids this group reads from their first record because it read the topic across a recreate:
   * a partition of one without a commit has none because no record of it was committed, not because the
   * group begins at "latest", so it is read from 0. Said in the commits' metadata (COMMIT_FROM_START), so
   * that members in other processes know it too.
   */
  private readonly fromStart: Set<string>;
  /**
   * Partitions sought to 0 whose seek kafkajs may still hold (no batch of theirs came since): kafkajs keeps
   * a seek of a partition revoked before the next fetch and applies it when the partition comes back.
   */
  private readonly sought = new Set<string>();
  private topicsCheckedAt = 0;
  private topicCheck: Promise<Look> | undefined;
  private looksStarted = 0;
  /** Undefined once the brokers turned out to have no topic ids. */
  private idWatch: TopicIds | undefined;
  private spaceWaiter: (() => void) | undefined;
  /**
   * The window level that wakes a waiting batch: 1/64 of the window below maxInFlight. Waking at every
   * settled record cost a promise, a timer and a heartbeat per record (a third more CPU per record with a
   * function node downstream); waking a quarter below maxInFlight saved that too, but left the window a
   * tenth emptier on average, which cost 15 % of the bridge's throughput where Pulsar's round trip bounds it.
   */
  private lowWater = 0;
  private maxInFlight = 1;

  constructor(
    private readonly kafka: Kafka,
    private readonly o: GroupConsumerOptions,
  ) {
    this.setMaxInFlight(o.maxInFlight);
    this.lastIds = o.lastIds ?? new Map<string, string>();
    this.resets = o.resets ?? new Map<string, { topic: string; partition: number }>();
    this.fromStart = o.fromStart ?? new Set<string>();
    if ((o.topicCheckMs ?? 1000) > 0) this.idWatch = o.idWatch ?? new TopicIdWatch(kafka);
  }

  /** Joins the group and starts consuming; failures are retried with back-off (reported via onState). */
  start(): void {
    this.running = true;
    void this.connect();
    this.commitTimer = setInterval(() => {
      void this.commit();
      // a topic recreated shorter than the old position gives kafkajs an "offset out of range" and a
      // reset to its end, and then no batch may come that would make a look: looked at while idle too
      if (this.idWatch && this.assignment.length > 0 && Date.now() - this.topicsCheckedAt > IDLE_LOOK_MS)
        void this.lookAfterNow();
    }, this.o.commitIntervalMs ?? 1000);
  }

  /** The window: records in flight at most (a deploy may change what the flow needs). */
  setMaxInFlight(n: number): void {
    this.maxInFlight = Math.max(1, n);
    this.lowWater = this.maxInFlight - Math.max(1, Math.floor(this.maxInFlight / 64));
    this.settled();
  }

  /** Called when records were settled: resumes fetching below the low-water mark and commits soon. */
  settled(): void {
    const waiter = this.spaceWaiter;
    if (waiter && this.o.ledger.inFlight <= this.lowWater) {
      // once: Pulsar's receipts settle records in bursts, each of which lands here
      this.spaceWaiter = undefined;
      waiter();
    }
    if (this.paused && this.o.ledger.inFlight <= this.maxInFlight / 2) this.resume();
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
      for (const k of this.readIds.keys()) if (!keep.has(k)) this.readIds.delete(k);
      // A reset owed for a partition revoked is kept: whoever of this process gets it next pays it (one in
      // another process finds the recreate in the commits' metadata: see fromStart).
      // kafkajs resumes every partition from the group's commit after a rebalance, kept ones too: one whose
      // reset to 0 is still owed (its commit was refused, as it often is while a deletion makes the group
      // rebalance) would go on from the old topic's commit. It is judged again, and read from 0 again.
      for (const k of this.resets.keys()) this.readIds.delete(k);
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
      // The partitions new to this member are looked at now, not only before their first batch: one of a
      // topic recreated while this member did not read it has no commit (Kafka deletes a topic's commits
      // with it), and kafkajs would wait at its end for a record that may never come.
      if (this.idWatch && this.running) void this.lookAfterNow();
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
    this.readIds.clear();
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
    // a batch of a topic found recreated is stale (its partitions were sought to offset 0); one that is not
    // came after every seek of its partition
    if (!payload.isStale()) {
      if (this.sought.size > 0) this.sought.delete(blockKey(topic, partition));
      if (payload.isRunning()) await this.checkTopicIds(payload);
      if (this.o.beforeBatch && payload.isRunning()) await this.before(payload);
    }
    if (payload.isRunning() && !payload.isStale()) {
      const blocked = this.blocked.size > 0 && this.blocked.has(blockKey(topic, partition));
      for (let i = 0; i < messages.length && this.running && !blocked; i++) {
        const message = messages[i];
        if (settled && ledger.inFlight >= this.maxInFlight) {
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
   * beforeBatch, heartbeating while it takes, for BEFORE_BATCH_MAX_MS at most: then the batch goes on (its
   * records fail as they would without it, and are tried again).
   */
  private async before(payload: EachBatchPayload): Promise<void> {
    let finished = false;
    const work = (this.o.beforeBatch as NonNullable<GroupConsumerOptions["beforeBatch"]>)(
      payload.batch.messages,
    )
      .catch(() => undefined)
      .finally(() => (finished = true));
    const until = Date.now() + BEFORE_BATCH_MAX_MS;
    while (!finished && Date.now() < until && payload.isRunning()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([work, new Promise((r) => (timer = setTimeout(r, 1000)))]);
      clearTimeout(timer);
      if (!finished) await payload.heartbeat().catch(() => undefined);
    }
  }

  /**
   * Before a batch is handed over: a look at the topics' ids (lookAtTopicIds) when the last one is older
   * than topicCheckMs or the batch's partition was not looked at yet; a failure to look is no reason to
   * stop then. In ordered mode (topicCheckEveryBatch) a look that started after the batch was fetched and
   * found its topic, tried again (heartbeating, the status saying why) until one does or the batch is stale.
   */
  private async checkTopicIds(payload: EachBatchPayload): Promise<void> {
    const { topic, partition } = payload.batch;
    if (!this.idWatch || !this.running) return;
    if (!this.o.topicCheckEveryBatch?.()) {
      const fresh = Date.now() - this.topicsCheckedAt < (this.o.topicCheckMs ?? 1000);
      if (!fresh || !this.readIds.has(blockKey(topic, partition))) await this.lookAfterNow();
      return;
    }
    const live = () => this.running && payload.isRunning() && !payload.isStale();
    let waitMs = 250;
    let waited = false;
    for (;;) {
      const look = await this.lookAfterNow();
      if (look.found.has(topic)) this.missingSince.delete(topic);
      if (look.found.has(topic) || !this.idWatch || !live()) break;
      // Looks that answered and do not name the topic for a while: it was deleted (and not created again),
      // so the batch holds the records of the topic the partition is read as. (A topic created again is
      // named by every broker within moments; a failed look proves nothing and is waited out.) Counted per
      // topic, not per batch: the batches of its other partitions do not wait as long again, one by one.
      if (look.error === undefined) {
        const since = this.missingSince.get(topic) ?? Date.now();
        this.missingSince.set(topic, since);
        if (Date.now() - since >= (this.o.deletedAfterMs ?? DELETED_AFTER_MS)) break;
      } else this.missingSince.delete(topic);
      waited = true;
      this.o.onState({
        kind: "reconnecting",
        error: look.error ?? `Kafka gives no id for topic "${topic}" right now (deleted?)`,
        retryInMs: waitMs,
      });
      await new Promise((r) => setTimeout(r, waitMs));
      waitMs = Math.min(waitMs * 2, 5000);
      if (!live()) break;
      await payload.heartbeat();
    }
    if (waited && this.running) this.reportFlowing();
  }

  /** A look at the topics' ids that starts after this call (shared with the other callers waiting). */
  private lookAfterNow(): Promise<Look> {
    if (!this.running) return Promise.resolve({ n: this.looksStarted, found: new Set() });
    const current = this.topicCheck;
    if (!current) return (this.topicCheck = this.lookAtTopicIds());
    return current.then(() => (this.topicCheck ??= this.lookAtTopicIds()));
  }

  /**
   * One look at the ids of the topics this member reads. Each assigned partition is read as one topic id:
   * - a partition read as another id than its topic has now (deleted and created again) is read afresh
   *   from offset 0 (restartPartitions);
   * - a partition new to this member (after a rebalance or a restart of the consumer) is judged by the
   *   group's commit of it, which names the topic id it was made for (see commit): a commit made for
   *   another id, none at all where this member read the topic as another id before (Kafka deletes a
   *   topic's commits with it), or a reset to 0 still owed, has it read from offset 0 too. A commit
   *   without an id (an older version of this node, or auto-commit) is trusted.
   * Never rejects: a failure is reported (onError) and named in the answer.
   */
  private lookAtTopicIds(): Promise<Look> {
    const n = ++this.looksStarted;
    const watch = this.idWatch;
    const consumer = this.consumer;
    const look: Promise<Look> = (async (): Promise<Look> => {
      if (!watch) return { n, found: new Set() };
      try {
        const topics = [...new Set([...this.seenTopics, ...this.assignment.map((a) => a.topic)])];
        const ids = await watch.ids(topics);
        if (!ids) {
          // brokers before Kafka 2.8: nothing to look at
          this.idWatch = undefined;
          await watch.close();
          return { n, found: new Set() };
        }
        await this.judgePartitions(watch, consumer, ids);
        // a topic named with an id it had before it was recreated (a lagging broker) is not found
        const found = new Set([...ids].filter(([t, i]) => !this.retiredIds.get(t)?.has(i)).map(([t]) => t));
        return { n, found };
      } catch (err) {
        this.o.onError(err);
        if (err instanceof KafkaIdentityError && !err.retriable && this.idWatch === watch) {
          // no look will ever answer (kafkajs's internals changed): read, commit and warn as without ids
          this.idWatch = undefined;
          void watch.close();
          this.o.onIdsUnavailable?.(errorText(err));
          return { n, found: new Set() };
        }
        return { n, found: new Set(), error: `cannot look at the Kafka topics' ids: ${errorText(err)}` };
      } finally {
        this.topicsCheckedAt = Date.now();
      }
    })().finally(() => {
      if (this.topicCheck === look) this.topicCheck = undefined;
    });
    return look;
  }

  private async judgePartitions(
    watch: TopicIds,
    consumer: Consumer | undefined,
    ids: Map<string, string>,
  ): Promise<void> {
    // a look that ends while stop() makes its last commit restarts nothing (that commit would miss it)
    const current = () => (this.running && consumer && this.consumer === consumer ? this.assignment : []);
    const idOf = (topic: string) => {
      const id = ids.get(topic);
      // a topic gone right now (deleted, not yet created again) is judged when it is back; an id it had
      // before it was created again, when a broker that has caught up answers
      return id === undefined || id === NO_TOPIC_ID || this.retiredIds.get(topic)?.has(id) ? undefined : id;
    };
    const restart = new Map<string, number[]>();
    const toRestart = (topic: string, partition: number) =>
      restart.set(topic, [...(restart.get(topic) ?? []), partition]);
    const unjudged: { topic: string; partition: number }[] = [];
    for (const a of current()) {
      const id = idOf(a.topic);
      const read = this.readIds.get(blockKey(a.topic, a.partition));
      if (id === undefined) continue;
      if (read === undefined) unjudged.push(a);
      else if (read !== id) toRestart(a.topic, a.partition);
    }
    if (unjudged.length > 0) {
      const settled = this.o.commitMode === "settled";
      const commits = settled
        ? await watch.commits(this.o.groupId, [...new Set(unjudged.map((a) => a.topic))])
        : undefined;
      const still = new Set(current().map((a) => blockKey(a.topic, a.partition)));
      for (const { topic, partition } of unjudged) {
        const k = blockKey(topic, partition);
        const id = idOf(topic);
        if (!still.has(k) || id === undefined || this.readIds.has(k)) continue;
        const commit = commits?.get(topic)?.get(partition);
        const others = [...(commits?.get(topic)?.values() ?? [])];
        // a member of the group (here or elsewhere) reads this topic id from its start
        if (others.some((c) => commitIdOf(c) === id && commitFromStart(c))) this.fromStart.add(id);
        // an owed reset is paid by a commit of the new topic made by a member reading it from its start
        if (commit && commitIdOf(commit) === id && commitFromStart(commit)) this.resets.delete(k);
        const judged = {
          lastId: this.lastIds.get(topic),
          resetOwed: this.resets.has(k),
          fromStart: this.fromStart.has(id),
          // Kafka deleted the topic's commits with it: one that names another id was made since, by a
          // member still at its old place, so the group reads across the recreate and "start from" is not
          // for it. (One naming this id proves nothing: a partition no record reached since a group began
          // at "latest" has no commit either.)
          groupRecreated: others.some((c) => {
            const named = commitIdOf(c);
            return named !== undefined && named !== id;
          }),
        };
        if (settled && readAfresh(commit, id, judged)) toRestart(topic, partition);
        else {
          this.readIds.set(k, id);
          this.lastIds.set(topic, id);
          // a seek to 0 kafkajs kept from before a revoke would read the partition again from its start
          if (this.sought.delete(k) && consumer && commit && !commit.offset.startsWith("-"))
            consumer.seek({ topic, partition, offset: commit.offset });
        }
      }
    }
    for (const [topic, partitions] of restart) {
      if (!this.running || !consumer || this.consumer !== consumer) return;
      const id = idOf(topic);
      if (id) await this.restartPartitions(consumer, topic, partitions, id);
    }
  }

  /**
   * `partitions` of `topic` are to be read as the topic `id` from offset 0: what this member holds of them
   * belongs to another topic of the name, so it is forgotten (ledger, blocks, and the node's records in
   * flight: onTopicRecreated). The group's commit is set to 0 (see commit: tried until Kafka confirms it),
   * since the old topic's commit would make the next consumer (a redeploy, a restart, another member after
   * a rebalance) skip the new topic's records below it.
   */
  private async restartPartitions(
    consumer: Consumer,
    topic: string,
    partitions: number[],
    id: string,
  ): Promise<void> {
    const settled = this.o.commitMode === "settled";
    let retired = this.retiredIds.get(topic);
    if (!retired) this.retiredIds.set(topic, (retired = new Set()));
    // only ids this member read itself: the last id in lastIds may be a sibling's, which a look of this
    // one that lags would retire
    for (const partition of partitions) {
      const k = blockKey(topic, partition);
      const before = this.readIds.get(k);
      if (before !== undefined && before !== id) retired.add(before);
      this.o.ledger.restart(topic, partition);
      if (this.blocked.delete(k) && !this.paused) consumer.resume([{ topic, partitions: [partition] }]);
      consumer.seek({ topic, partition, offset: "0" });
      this.sought.add(k);
      this.readIds.set(k, id);
      if (settled) this.resets.set(k, { topic, partition });
    }
    this.lastIds.set(topic, id);
    if (settled) this.fromStart.add(id);
    this.o.onTopicRecreated?.(topic, partitions);
    this.settled();
    if (settled) await this.commit();
  }

  /**
   * Waits up to pauseAfterMs for room in the window; false when there is none. It wakes when the window has
   * drained to the low-water mark (one wake-up per several settled records rather than one per record) or
   * every 200 ms (heartbeat, and progress in a slow flow), and then goes on if there is any room.
   */
  private async waitForSpace(payload: EachBatchPayload): Promise<boolean> {
    const deadline = Date.now() + (this.o.pauseAfterMs ?? 3000);
    while (this.o.ledger.inFlight >= this.maxInFlight) {
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

  /** Looks at the topics' ids now (kafka-in: Kafka reset a partition's offset, the topic may be new). */
  lookSoon(): void {
    if (this.idWatch && this.running) void this.lookAfterNow();
  }

  /** The id of the topic this member reads the partition as, once a look judged it (lookAtTopicIds). */
  topicIdOf(topic: string, partition: number): string | undefined {
    return this.readIds.get(blockKey(topic, partition));
  }

  isBlocked(topic: string, partition: number): boolean {
    return this.blocked.has(blockKey(topic, partition));
  }

  private reportFlowing(): void {
    if (this.paused) this.o.onState({ kind: "paused", inFlight: this.o.ledger.inFlight });
    else this.o.onState({ kind: "consuming", partitions: this.assigned });
  }

  /**
   * Commits every partition's contiguous settled prefix, and offset 0 of the partitions read afresh
   * (restartPartitions) until one commit of theirs is confirmed. Each commit names the topic id the
   * partition is read as (its metadata: see lookAtTopicIds). Serialised; errors are reported, not thrown.
   */
  commit(): Promise<void> {
    this.committing = this.committing.then(async () => {
      const consumer = this.consumer;
      if (!consumer || this.o.commitMode !== "settled") return;
      const offsets: { topic: string; partition: number; offset: string; metadata: string | null }[] = [];
      const metadata = (topic: string, partition: number) => {
        const id = this.readIds.get(blockKey(topic, partition));
        if (id === undefined) return null;
        return `${COMMIT_ID_PREFIX}${id}${this.fromStart.has(id) ? COMMIT_FROM_START : ""}`;
      };
      const tokens = new Map<string, object | undefined>();
      for (const { topic, partition } of this.o.ledger.dirty()) {
        const k = blockKey(topic, partition);
        // Not before a look judged the partition (its commit could be the old topic's, a reset owed):
        // a commit naming no topic id would be trusted by the next consumer and pay no reset.
        if (this.idWatch && !this.readIds.has(k)) continue;
        tokens.set(k, this.o.ledger.token(topic, partition));
        const offset = this.o.ledger.takeCommittable(topic, partition);
        if (offset !== undefined)
          offsets.push({ topic, partition, offset, metadata: metadata(topic, partition) });
      }
      // the resets owed now: one owed by a restart while the commit travels is not paid by it
      const owed = new Map(this.resets);
      const withOffset = new Set(offsets.map((o) => blockKey(o.topic, o.partition)));
      for (const [k, { topic, partition }] of owed)
        // not while a look is to judge it again (after a rebalance): a reset naming no topic id would be
        // trusted, and pay what the look is to seek
        if (!withOffset.has(k) && this.readIds.has(k))
          offsets.push({ topic, partition, offset: "0", metadata: metadata(topic, partition) });
      if (offsets.length === 0) return;
      try {
        await consumer.commitOffsets(offsets);
        for (const o of offsets) {
          const k = blockKey(o.topic, o.partition);
          this.o.ledger.commitConfirmed(o.topic, o.partition, o.offset, tokens.get(k));
          if (owed.has(k) && this.resets.get(k) === owed.get(k)) this.resets.delete(k);
        }
      } catch (err) {
        // Retried at the next interval while the partition is ours. After a rebalance it may belong to
        // another member, which starts from the last commit: records are redelivered there, never lost.
        for (const o of offsets)
          this.o.ledger.commitFailed(
            o.topic,
            o.partition,
            o.offset,
            tokens.get(blockKey(o.topic, o.partition)),
          );
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
    // a look under way ends before the watch closes (it restarts nothing now: the last commit names the id
    // each partition was read as, which the next consumer judges; waited for a while at most: Node-RED
    // gives a closing node 15 s)
    if (this.topicCheck)
      await Promise.race([this.topicCheck, new Promise((r) => setTimeout(r, 2000).unref())]);
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

/** The answer of one look at the topics' ids: its number, the topics it found, what failed. */
interface Look {
  n: number;
  found: ReadonlySet<string>;
  error?: string;
}

/** How a commit's metadata names the topic id it was made for. */
const COMMIT_ID_PREFIX = "topic-id:";
/** How long a kafka-in with partitions and no batch goes without a look at the topics' ids. */
const IDLE_LOOK_MS = 5000;
/** How long looks that answered must miss a topic before a batch of it is taken for the deleted topic's. */
const DELETED_AFTER_MS = 30_000;

/** What a commit's metadata adds when the group reads the topic id from its start (see fromStart). */
const COMMIT_FROM_START = ";from-start";

/** The topic id a commit names (see commit), if it names one. */
function commitIdOf(commit: GroupCommit): string | undefined {
  const meta = commit.metadata ?? "";
  if (!meta.startsWith(COMMIT_ID_PREFIX)) return undefined;
  const id = meta.slice(COMMIT_ID_PREFIX.length);
  return id.endsWith(COMMIT_FROM_START) ? id.slice(0, -COMMIT_FROM_START.length) : id;
}

/** Whether a commit says that the group reads the topic id it names from its start. */
function commitFromStart(commit: GroupCommit): boolean {
  return (commit.metadata ?? "").endsWith(COMMIT_FROM_START);
}

/**
 * Whether a partition new to this member, of the topic `id`, is read from offset 0 rather than from the
 * group's commit: a reset of it to 0 is still owed, or the commit was made for another topic of the name,
 * or there is none where this member read the topic as another id before (Kafka deletes a topic's commits
 * with it), where the group commits other partitions of the old topic since, or where the group reads
 * this topic id from its start (fromStart: it read the topic across a recreate, so "start from" is not
 * for it: the partition's records were never committed).
 */
export function readAfresh(
  commit: GroupCommit | undefined,
  id: string,
  known: { lastId: string | undefined; resetOwed: boolean; groupRecreated: boolean; fromStart?: boolean },
): boolean {
  if (known.resetOwed) return true;
  if (!commit || commit.offset.startsWith("-"))
    return (
      known.groupRecreated || known.fromStart === true || (known.lastId !== undefined && known.lastId !== id)
    );
  const named = commitIdOf(commit);
  return named !== undefined && named !== id;
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err)).trim();

/** The id Kafka gives a topic it has none for (the zero UUID, in the base64url of identity.ts). */
const NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA";
