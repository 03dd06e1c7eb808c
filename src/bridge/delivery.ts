// kafka-in's delivery logic, free of Node-RED (DESIGN §4): records from the group consumer become msgs;
// the settlement tracker says when the flow finished with each; settled records are released to the
// offset ledger; failed ones go through the failure policy (retry with back-off, dead-letter, or block
// the partition); records the flow holds past the settle deadline fail, naming the nodes holding them.
import type { KafkaMessage } from "kafkajs";
import { BridgeError, describeError, failureScope, isConsequential, isWait } from "../common/errors";
import { compareOffsets, type OffsetLedger } from "./offsets";
import { FailurePolicy, type Decision, type FailurePolicyOptions } from "./failure-policy";
import { SettlementTracker, type NodeKinds, type Reach } from "./settlement";
import type { RecordMsg } from "./record-to-msg";
import type { CarriedRecord, OrderedSource } from "./effectively-once";

export interface DeliveryRecord {
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
  /** Which emission of the record this is (1 = the first); msg.kafka.attempt. */
  readonly attempt: number;
  /** Failed tries so far that count against maxAttempts. */
  readonly tries: number;
  /** Interruptions (a deploy stopped a node holding it) in a row; free up to MAX_FREE_INTERRUPTIONS. */
  readonly interruptions: number;
}

/** What the partition consumer must do for the delivery logic. */
export interface PartitionControl {
  /** Records were settled: room in the window, a commit to make. */
  settled(): void;
  block(topic: string, partition: number): void;
  unblock(topic: string, partition: number): void;
  /** The id of the topic the consumer reads the partition as, once it looked (see GroupConsumer). */
  topicIdOf?(topic: string, partition: number): string | undefined;
}

export interface Blocked {
  topic: string;
  partition: number;
  offset: string;
  reason: string;
  /** When the next try is made (ms clock), or undefined when it waits for a redeploy. */
  retryAt: number | undefined;
}

export interface Retrying {
  topic: string;
  partition: number;
  offset: string;
  attempt: number;
  reason: string;
}

export interface DeliveryEvents {
  /** Hands a msg to the flow (node.send). */
  send(msg: Record<string, unknown> & { _msgid: string }): void;
  /** A record could not be decoded: the raw record goes to Catch (the failure policy follows). */
  decodeFailed(record: DeliveryRecord, error: unknown): void;
  deadLettered(record: DeliveryRecord, reason: string): void;
  deadLetterFailed(record: DeliveryRecord, error: unknown): void;
  /** A partition was blocked at a record; logged once per block. */
  blocked(b: Blocked): void;
  /** A record was not settled in time (the error names the nodes holding it); the failure policy follows. */
  expired(record: DeliveryRecord, error: unknown): void;
  /** A failure in auto-commit mode: reported, not retried. */
  lost(record: DeliveryRecord, error: unknown): void;
  /** Retries or blocks changed: the status should be drawn again. */
  changed(): void;
}

export interface DeliveryOptions extends Omit<FailurePolicyOptions, "deadLetter"> {
  /** settled: offsets follow settlement; auto: nothing is tracked (at-most-once). */
  settled: boolean;
  batchOutput: boolean;
  batchSize: number;
  /** A record not settled this long after it was emitted fails (0: no deadline). */
  settleTimeoutMs: number;
  groupId: string;
  cluster: string;
  decode(record: DeliveryRecord): RecordMsg;
  nextMsgId(): string;
  /** Writes the record to the dead-letter target (rejects when it could not); none: no target. */
  writeDeadLetter?: (record: DeliveryRecord, reason: string) => Promise<void>;
  /** A node id -> how the status and log name it. */
  describeNode(id: string): string;
  ledger: OffsetLedger;
  /** Replay a partition in order after a failure from the start (see requireOrdered). */
  ordered?: boolean;
  /** msg.kafka.source in ordered mode: the id an effectively-once pulsar-out finds this node by. */
  sourceId?: string;
  /** How long a replay waits at most for the flow to let go of the pass it discarded (REPLAY_DRAIN_MS). */
  replayDrainMs?: number;
  /**
   * The cluster's and a topic's ids (see OrderedSource.identityOf); with `topicId`, the one the consumer
   * reads the topic's partition as (PartitionControl.topicIdOf) stands for the topic's.
   */
  identity?: (topic: string, topicId?: string) => Promise<string>;
  /** What the flow's nodes are (SettlementOptions: independent, groups, sequences, collects). */
  kinds?: NodeKinds;
  /**
   * What the deployed flows let each node do with a msg (see setReach); asked at the start and after every
   * deploy. Undefined, or its answer undefined: every record blocks its partition's later ones in ordered mode.
   */
  reach?: () => ((nodeId: string) => Reach) | undefined;
  /** Told after every deploy, once the tracker knows the new flows (kafka-in sizes its window again). */
  flowsStarted?: () => void;
}

interface BlockEntry {
  r: DeliveryRecord;
  b: Blocked;
  timer: NodeJS.Timeout | undefined;
  inFlight: boolean;
}

/**
 * A partition waiting to be replayed in order: every record of it the flow had not settled, emitted again
 * from the lowest offset once the failed record's next try is due (or a redeploy, when blocked).
 */
interface Replay {
  topic: string;
  partition: number;
  /** In offset order; `failed` is among them unless it went to the dead-letter target. */
  records: DeliveryRecord[];
  failed: DeliveryRecord;
  reason: string;
  blocked: boolean;
  retryAt: number | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Until when the re-emission waits for the flow to let go of the discarded pass (see runReplay). */
  drainUntil: number;
}

/** How long a replay waits at most for the flow to let go of the pass it discarded, and how often it looks. */
export const REPLAY_DRAIN_MS = 10_000;
const DRAIN_POLL_MS = 50;

const MAX_FREE_INTERRUPTIONS = 10;

const byOffset = (a: DeliveryRecord, b: DeliveryRecord) => compareOffsets(a.message.offset, b.message.offset);

const partKey = (topic: string, partition: number) => `${partition}\u0000${topic}`;

export class Delivery implements OrderedSource {
  private readonly policy: FailurePolicy;
  private readonly tracker: SettlementTracker<DeliveryRecord>;
  private readonly retries = new Map<DeliveryRecord, { timer: NodeJS.Timeout; reason: string }>();
  /**
   * Per partition, by offset, the records it is blocked at: waiting for their next try (timer), for a
   * redeploy (neither), or being tried again (inFlight, until they settle or fail again).
   */
  private readonly blocks = new Map<string, Map<string, BlockEntry>>();
  private pendingBatch: DeliveryRecord[] = [];
  /** Ordered mode: partitions waiting for their replay, and each partition's epoch (by topic). */
  private ordered: boolean;
  private readonly replays = new Map<string, Replay>();
  private readonly epochs = new Map<string, Map<number, number>>();
  private lastEpoch = 0;
  private readonly revokeListeners = new Set<
    (revoked: { topic: string; partition: number }[], closing: boolean) => void
  >();
  private readonly assignListeners = new Set<
    (assigned: readonly { topic: string; partition: number }[]) => void
  >();
  /** The group's last assignment (undefined before the first). */
  private assignment: readonly { topic: string; partition: number }[] | undefined;
  /** Per topic, its identity as last asked; asked again after each rebalance (a topic may be recreated). */
  private readonly identities = new Map<string, Promise<string>>();
  private deadlineTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private stoppedRetrying = false;
  control: PartitionControl | undefined;

  constructor(
    private readonly o: DeliveryOptions,
    private readonly events: DeliveryEvents,
  ) {
    this.policy = new FailurePolicy({ ...o, deadLetter: o.writeDeadLetter !== undefined });
    this.ordered = o.ordered === true;
    this.tracker = new SettlementTracker<DeliveryRecord>(
      {
        settled: (r) => this.settle(r),
        failed: (r, error, cause) => {
          if (cause === "expired") this.events.expired(r, error);
          this.fail(r, error, cause === "interrupted" || isConsequential(error));
        },
        passive: (r, passive) => {
          this.o.ledger.setPassive(r.topic, r.partition, r.message.offset, passive);
          if (passive) this.progressed();
        },
      },
      { ...o.kinds },
    );
    if (o.reach) this.setReach(o.reach());
    if (o.settled && o.settleTimeoutMs > 0) {
      const every = Math.min(1000, Math.max(50, Math.floor(o.settleTimeoutMs / 4)));
      this.deadlineTimer = setInterval(() => this.expire(), every);
      this.deadlineTimer.unref?.();
    }
  }

  // ---- from the consumer ----

  /** A record fetched from Kafka, in offset order per partition. */
  onRecord(topic: string, partition: number, message: KafkaMessage): void {
    const r: DeliveryRecord = { topic, partition, message, attempt: 1, tries: 0, interruptions: 0 };
    if (this.o.batchOutput) {
      this.pendingBatch.push(r);
      if (this.pendingBatch.length >= Math.max(1, this.o.batchSize)) this.onBatchEnd();
    } else this.emitRecord(r);
  }

  /** The records of a fetched batch were all handed over. */
  onBatchEnd(): void {
    const batch = this.pendingBatch;
    this.pendingBatch = [];
    if (batch.length > 0) this.emitBatch(batch);
  }

  /** The group assigned these partitions: everything of the others is forgotten (Kafka redelivers it). */
  onAssignment(assigned: readonly { topic: string; partition: number }[]): void {
    const keep = new Set(assigned.map((a) => partKey(a.topic, a.partition)));
    this.identities.clear();
    this.forgetPartitions((topic, partition) => !keep.has(partKey(topic, partition)));
    if (this.ordered) this.restartRetained(keep);
    this.assignment = [...assigned];
    for (const listener of [...this.assignListeners]) {
      try {
        listener(assigned);
      } catch {
        // a listener's failure is its own: the others are still told
      }
    }
    this.events.changed();
  }

  onAssigned(listener: (assigned: readonly { topic: string; partition: number }[]) => void): () => void {
    this.assignListeners.add(listener);
    if (this.assignment) listener(this.assignment);
    return () => this.assignListeners.delete(listener);
  }

  /**
   * The consumer found `topic` deleted and created again and reads `partitions` of it from offset 0: what
   * the flow holds of them is forgotten as at a revoke (its settlements no longer count, its
   * effectively-once producers are closed), and the new topic's id names new ones.
   */
  topicRecreated(topic: string, partitions: readonly number[]): void {
    this.forgetIdentities(topic);
    const afresh = new Set(partitions);
    this.forgetPartitions((t, p) => t === topic && afresh.has(p));
    this.events.changed();
  }

  /** Forgets every record, retry, block, replay and drain of the partitions `revoked` names. */
  private forgetPartitions(revokedPart: (topic: string, partition: number) => boolean): void {
    const revoked = (r: DeliveryRecord) => revokedPart(r.topic, r.partition);
    const revokedKey = (k: string) => {
      const at = k.indexOf("\u0000");
      return revokedPart(k.slice(at + 1), Number(k.slice(0, at)));
    };
    for (const [r, { timer }] of this.retries)
      if (revoked(r)) {
        clearTimeout(timer);
        this.retries.delete(r);
      }
    for (const [k, records] of this.blocks)
      if (revokedKey(k)) {
        for (const { timer } of records.values()) if (timer) clearTimeout(timer);
        this.blocks.delete(k);
      }
    for (const [k, replay] of this.replays)
      if (revokedKey(k)) {
        if (replay.timer) clearTimeout(replay.timer);
        this.replays.delete(k);
      }
    for (const [k, timer] of this.draining)
      if (revokedKey(k)) {
        clearTimeout(timer);
        this.draining.delete(k);
      }
    const gone: { topic: string; partition: number }[] = [];
    for (const [topic, partitions] of this.epochs)
      for (const partition of partitions.keys())
        if (revokedPart(topic, partition)) {
          partitions.delete(partition);
          gone.push({ topic, partition });
        }
    // assigned partitions no record of which came yet are told too (a window node restored their state)
    const told = new Set(gone.map((g) => partKey(g.topic, g.partition)));
    for (const a of this.assignment ?? [])
      if (revokedPart(a.topic, a.partition) && !told.has(partKey(a.topic, a.partition))) gone.push(a);
    if (gone.length > 0) {
      this.tellRevoked(gone, false);
      this.progressed();
    }
    this.pendingBatch = this.pendingBatch.filter((r) => !revoked(r));
    this.tracker.forget(revoked);
  }

  // ---- from Node-RED's message hooks ----

  delivered(msgId: string, sourceId: string, destinationId: string, msg?: object): void {
    this.tracker.delivered(msgId, sourceId, destinationId, msg);
  }

  /**
   * A node is about to receive a msg (onReceive). False: drop it. In ordered mode a msg that holds nothing
   * but records of a discarded pass (a replay or a rebalance discarded it; the records come again) is
   * dropped before it reaches a node that would merge it with the new pass's msgs (a join). Not earlier
   * (preDeliver): a node that merges hands its other parts over to the msg it sends just after that. Not a
   * member of a msg.parts sequence either: a join in automatic mode would wait for it for ever.
   */
  receiving(msgId: string | undefined, nodeId: string, msg?: object): boolean {
    const drop =
      this.ordered &&
      msgId !== undefined &&
      this.tracker.discarded(msgId) &&
      (msg as { parts?: unknown } | undefined)?.parts === undefined;
    if (!drop) return true;
    this.tracker.completed(msgId, nodeId, undefined, msg);
    return false;
  }

  /** A node without done callback returned from its input handler for this msg. */
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

  /** Node-RED is stopping the nodes `isStopping` names (a deploy); undefined once flows started again. */
  setStopping(isStopping: ((nodeId: string) => boolean) | undefined): void {
    this.deploying = isStopping !== undefined;
    this.tracker.setStopping(isStopping);
  }

  /** Whether a deploy is under way (between flows:stopping and flows:started). */
  deploying = false;

  /** The flows were deployed again: blocked records get a fresh set of tries. */
  flowsStarted(): void {
    this.setStopping(undefined);
    if (this.o.reach) this.setReach(this.o.reach());
    this.o.flowsStarted?.();
    for (const records of this.blocks.values())
      for (const entry of records.values()) {
        if (entry.inFlight) continue;
        if (entry.timer) clearTimeout(entry.timer);
        entry.timer = undefined;
        entry.inFlight = true;
        this.emitAgain({ ...entry.r, tries: 0 });
      }
    for (const replay of [...this.replays.values()]) {
      replay.failed = { ...replay.failed, tries: 0 };
      replay.records = replay.records.map((r) => (r.message === replay.failed.message ? replay.failed : r));
      this.runReplay(replay);
    }
    this.events.changed();
  }

  // ---- ordered mode (effectively-once) ----

  /** Whether the partitions run as ordered pipelines (effectively-once or windows). */
  get isOrdered(): boolean {
    return this.ordered;
  }

  requireOrdered(sinkId?: string): void {
    this.ordered = true;
    if (sinkId !== undefined) this.sinks.add(sinkId);
  }

  /** The nodes that publish in ordered mode (they drop a discarded pass themselves). */
  private readonly sinks = new Set<string>();

  epochOf(topic: string, partition: number): number | undefined {
    return this.epochs.get(topic)?.get(partition);
  }

  /**
   * Kafka no longer holds the partition's next record (kafka-in's offset reset): the topic may have been
   * deleted and created again without a rebalance, so its identity is asked for again.
   */
  forgetIdentity(topic: string): void {
    this.forgetIdentities(topic);
  }

  /**
   * The identity of the topic the partition's records are read from: the id the consumer reads the
   * partition as when it has one (so a topic recreated after the look does not rename the records read
   * before), the topic's id as Kafka gives it now otherwise. One promise per topic and id, kept.
   */
  identityOf(topic: string, partition: number): Promise<string> | undefined {
    const identity = this.o.identity;
    if (!identity) return undefined;
    const topicId = this.control?.topicIdOf?.(topic, partition);
    const key = topicId === undefined ? topic : `${topic}\u0000${topicId}`;
    let id = this.identities.get(key);
    if (!id) {
      const asked = identity(topic, topicId);
      this.identities.set(key, (id = asked));
      asked.catch(() => {
        if (this.identities.get(key) === asked) this.identities.delete(key);
      });
    }
    return id;
  }

  /** Forgets the identities asked for `topic` (identityOf). */
  private forgetIdentities(topic: string): void {
    for (const key of this.identities.keys())
      if (key === topic || key.startsWith(`${topic}\u0000`)) this.identities.delete(key);
  }

  carried(msgId: string): { records: CarriedRecord[]; live: boolean; tainted: boolean } | undefined {
    const c = this.tracker.carried(msgId);
    if (!c) return undefined;
    const records = c.alone.map((r) => ({
      topic: r.topic,
      partition: r.partition,
      offset: r.message.offset,
      attempt: r.attempt,
    }));
    return { records, live: c.live, tainted: c.tainted };
  }

  unsettledBetween(
    topic: string,
    partition: number,
    after: string | undefined,
    before: string,
    except?: ReadonlySet<string>,
  ): boolean {
    return this.o.ledger.openBetween(topic, partition, after, before, except);
  }

  onProgress(listener: () => void): () => void {
    this.progressListeners.add(listener);
    return () => this.progressListeners.delete(listener);
  }

  private readonly progressListeners = new Set<() => void>();

  /**
   * What each node can still do with a msg it holds (flow-shape.ts reachOf), or undefined: every record
   * blocks the later ones of its partition until it settles. Set again after every deploy.
   */
  setReach(reach: ((nodeId: string) => Reach) | undefined): void {
    this.o.ledger.clearPassive();
    this.tracker.setReach(reach);
  }

  /** The sink `sinkId` admitted the msg `msgId` (it sends it now): see OrderedSource.admitted. */
  admitted(msgId: string | undefined, sinkId: string, msg?: object): void {
    this.tracker.admitted(msgId, sinkId, msg);
  }
  private progressScheduled = false;

  /** Tells the progress listeners, once per turn. */
  private progressed(): void {
    if (this.progressScheduled || this.progressListeners.size === 0) return;
    this.progressScheduled = true;
    queueMicrotask(() => {
      this.progressScheduled = false;
      for (const listener of [...this.progressListeners]) listener();
    });
  }

  get replaysFailures(): boolean {
    return this.o.settled;
  }

  onRevoked(
    listener: (revoked: readonly { topic: string; partition: number }[], closing: boolean) => void,
  ): () => void {
    this.revokeListeners.add(listener);
    return () => this.revokeListeners.delete(listener);
  }

  /** The partition's epoch; a partition seen for the first time (or again after a revoke) gets a new one. */
  private epochFor(topic: string, partition: number): number {
    let partitions = this.epochs.get(topic);
    if (!partitions) this.epochs.set(topic, (partitions = new Map<number, number>()));
    let epoch = partitions.get(partition);
    if (epoch === undefined) partitions.set(partition, (epoch = this.nextEpoch()));
    return epoch;
  }

  private newEpoch(topic: string, partition: number): void {
    let partitions = this.epochs.get(topic);
    if (!partitions) this.epochs.set(topic, (partitions = new Map<number, number>()));
    partitions.set(partition, this.nextEpoch());
    this.progressed();
  }

  /** Increasing within the process, so a later kafka-in (a redeploy) starts above an earlier one. */
  private nextEpoch(): number {
    this.lastEpoch = Math.max(performance.timeOrigin + performance.now(), this.lastEpoch + 0.001);
    return this.lastEpoch;
  }

  /**
   * A record of an ordered partition failed (for a reason other than the record itself): everything the
   * flow still holds of the partition is discarded (a new epoch makes it stale), fetching stops, and the
   * unsettled records are emitted again in offset order when the failed one's next try is due. Pulsar's
   * deduplication drops what an earlier pass stored; nothing later is stored before an earlier record.
   */
  private replay(r: DeliveryRecord, error: unknown, decision: Decision, next: DeliveryRecord): void {
    const k = partKey(r.topic, r.partition);
    const same = (x: DeliveryRecord) => x.topic === r.topic && x.partition === r.partition;
    this.newEpoch(r.topic, r.partition);
    const held = new Map<string, DeliveryRecord>();
    const previous = this.replays.get(k);
    if (previous) {
      if (previous.timer) clearTimeout(previous.timer);
      this.replays.delete(k);
      for (const x of previous.records) held.set(x.message.offset, x);
    }
    for (const [x, { timer }] of this.retries)
      if (same(x)) {
        clearTimeout(timer);
        this.retries.delete(x);
        held.set(x.message.offset, x);
      }
    for (const x of this.tracker.forget(same)) held.set(x.message.offset, x);
    held.delete(r.message.offset);
    const reason = describeError(error).message;
    const rest = [...held.values()];
    const replay: Replay = {
      topic: r.topic,
      partition: r.partition,
      records: [],
      failed: next,
      reason,
      blocked: decision.kind === "block",
      retryAt: undefined,
      timer: undefined,
      drainUntil: 0,
    };
    if (decision.kind === "dead-letter") void this.deadLetter(next, reason);
    else rest.push(next);
    replay.records = rest.sort(byOffset);
    if (replay.records.length === 0) return;
    const delayMs =
      decision.kind === "retry" ? decision.delayMs : decision.kind === "block" ? decision.retryInMs : 0;
    this.replays.set(k, replay);
    replay.drainUntil = Date.now() + (delayMs ?? 0) + (this.o.replayDrainMs ?? REPLAY_DRAIN_MS);
    this.control?.block(r.topic, r.partition);
    if (delayMs === undefined) {
      // blocked until a redeploy
      if (!previous?.blocked || previous.reason !== reason) this.events.blocked(this.blockedOf(replay));
    } else {
      replay.retryAt = Date.now() + delayMs;
      replay.timer = setTimeout(() => this.runReplay(replay), delayMs);
      if (replay.blocked && (!previous?.blocked || previous.reason !== reason))
        this.events.blocked(this.blockedOf(replay));
    }
    this.events.changed();
  }

  /**
   * After a rebalance the consumer fetches every partition it keeps again from its committed offset, so
   * what the flow still holds of them comes once more: in ordered mode their pass is discarded (a new
   * epoch, their records forgotten, a pending replay or retry dropped) so that the copies do not race
   * each other to Pulsar.
   */
  private restartRetained(keep: Set<string>): void {
    const kept = (r: DeliveryRecord) => keep.has(partKey(r.topic, r.partition));
    const again: { topic: string; partition: number }[] = [];
    for (const [topic, partitions] of this.epochs)
      for (const partition of partitions.keys()) {
        this.newEpoch(topic, partition);
        this.o.ledger.restart(topic, partition);
        again.push({ topic, partition });
      }
    // their effectively-once producers open afresh (see OrderedSource.onRevoked)
    if (again.length > 0) this.tellRevoked(again, false);
    for (const [r, { timer }] of this.retries)
      if (kept(r)) {
        clearTimeout(timer);
        this.retries.delete(r);
      }
    for (const [k, replay] of this.replays) {
      if (replay.timer) clearTimeout(replay.timer);
      this.replays.delete(k);
      this.resumeIfFree(replay.topic, replay.partition);
    }
    this.tracker.forget(kept);
    // As a replay does, the refetch waits (bounded) while a node still holds msgs of the old pass, so
    // that a join does not merge them with the new ones.
    for (const [topic, partitions] of this.epochs)
      for (const partition of partitions.keys()) this.drain(topic, partition);
    // room in the in-flight window again: a consumer paused for it resumes and fetches them
    this.control?.settled();
  }

  /** Lets the partition be fetched again when nothing holds it back: no block, replay or drain. */
  private resumeIfFree(topic: string, partition: number): void {
    const k = partKey(topic, partition);
    if (!this.blocks.has(k) && !this.replays.has(k) && !this.draining.has(k))
      this.control?.unblock(topic, partition);
  }

  /** Partitions kept paused after a rebalance until the flow lets go of their discarded pass. */
  private readonly draining = new Map<string, NodeJS.Timeout>();

  private drain(topic: string, partition: number): void {
    const k = partKey(topic, partition);
    const same = (x: DeliveryRecord) => x.topic === topic && x.partition === partition;
    const previous = this.draining.get(k);
    if (previous) clearTimeout(previous);
    this.draining.delete(k);
    if (!this.tracker.holdsDiscarded(same, this.sinks)) {
      // an earlier rebalance's drain paused it: nothing is held any more, so it goes on
      if (previous) this.resumeIfFree(topic, partition);
      return;
    }
    const until = Date.now() + (this.o.replayDrainMs ?? REPLAY_DRAIN_MS);
    this.control?.block(topic, partition);
    const check = () => {
      if (Date.now() < until && this.tracker.holdsDiscarded(same, this.sinks)) {
        this.draining.set(k, setTimeout(check, DRAIN_POLL_MS));
        return;
      }
      this.draining.delete(k);
      this.resumeIfFree(topic, partition);
    };
    this.draining.set(k, setTimeout(check, DRAIN_POLL_MS));
  }

  private runReplay(replay: Replay): void {
    const k = partKey(replay.topic, replay.partition);
    if (this.replays.get(k) !== replay) return;
    if (replay.timer) clearTimeout(replay.timer);
    replay.timer = undefined;
    // A node still holding msgs of the discarded pass (a join's parts until its timeout, a delay node)
    // would merge them with the replay's: the replay waits for them to go (bounded), as msgs on their way
    // are dropped (receiving).
    const same = (x: DeliveryRecord) => x.topic === replay.topic && x.partition === replay.partition;
    if (Date.now() < replay.drainUntil && this.tracker.holdsDiscarded(same, this.sinks)) {
      replay.timer = setTimeout(() => this.runReplay(replay), DRAIN_POLL_MS);
      return;
    }
    this.replays.delete(k);
    for (const r of replay.records) this.emitAgain(r);
    this.resumeIfFree(replay.topic, replay.partition);
    this.events.changed();
  }

  private blockedOf(replay: Replay): Blocked {
    return {
      topic: replay.topic,
      partition: replay.partition,
      offset: replay.failed.message.offset,
      reason: replay.reason,
      retryAt: replay.retryAt,
    };
  }

  // ---- emitting ----

  private build(r: DeliveryRecord): RecordMsg | undefined {
    try {
      const fields = this.o.decode(r);
      fields.kafka.attempt = r.attempt;
      fields.kafka.cluster = this.o.cluster;
      const topicId = this.control?.topicIdOf?.(r.topic, r.partition);
      if (topicId !== undefined) fields.kafka.topicId = topicId;
      if (this.ordered) {
        fields.kafka.epoch = this.epochFor(r.topic, r.partition);
        fields.kafka.source = this.o.sourceId;
      }
      return fields;
    } catch (err) {
      this.events.decodeFailed(r, err);
      this.fail(r, err, false);
      return undefined;
    }
  }

  /** One msg per record: the hot path, so no intermediate arrays or copies. */
  private emitRecord(r: DeliveryRecord): void {
    if (this.closed || (r.attempt > 1 && this.stoppedRetrying)) return;
    const fields = this.build(r);
    if (!fields) return;
    const msg = {
      _msgid: this.o.nextMsgId(),
      payload: fields.payload,
      topic: fields.topic,
      key: fields.key,
      kafka: fields.kafka,
    };
    if (this.o.settled) this.tracker.track(msg._msgid, r);
    this.events.send(msg);
  }

  /** One msg carrying the records (batch output). */
  private emitBatch(records: DeliveryRecord[]): void {
    if (this.closed || this.stoppedRetrying) return;
    const ready: { fields: RecordMsg; record: DeliveryRecord }[] = [];
    for (const r of records) {
      const fields = this.build(r);
      if (fields) ready.push({ fields, record: r });
    }
    if (ready.length === 0) return;
    const msg = {
      _msgid: this.o.nextMsgId(),
      topic: ready[0]?.record.topic,
      payload: ready.map((x) => x.fields),
      kafka: {
        records: ready.map((x) => x.fields.kafka),
        groupId: this.o.groupId,
        // ordered mode: an effectively-once pulsar-out finds this node and asks it what the msg carries
        ...(this.ordered ? { source: this.o.sourceId } : {}),
      },
    };
    if (this.o.settled)
      this.tracker.track(
        msg._msgid,
        ready.map((x) => x.record),
      );
    this.events.send(msg);
  }

  private emitAgain(r: DeliveryRecord): void {
    const again = { ...r, attempt: r.attempt + 1 };
    if (this.o.batchOutput) this.emitBatch([again]);
    else this.emitRecord(again);
  }

  // ---- outcomes ----

  private settle(r: DeliveryRecord): void {
    if (this.closed) return;
    this.o.ledger.settle(r.topic, r.partition, r.message.offset);
    this.progressed();
    this.unblockIfDone(r.topic, r.partition, r.message.offset);
    this.control?.settled();
  }

  private fail(r: DeliveryRecord, error: unknown, interrupted: boolean): void {
    // closing: the record stays unsettled and uncommitted, so Kafka delivers it again
    if (this.closed || this.stoppedRetrying) return;
    const d = describeError(error);
    if (!this.o.settled) {
      this.events.lost(r, error);
      return;
    }
    // interruptions are not the record's fault, unless they never end (a deploy that fails to start); a wait
    // for something outside the flow (isWait) is never its fault
    const interruptions = interrupted ? r.interruptions + 1 : 0;
    const counted = !interrupted || (interruptions > MAX_FREE_INTERRUPTIONS && !isWait(error));
    const tries = counted ? r.tries + 1 : r.tries;
    const scope = failureScope(error);
    const decision = this.policy.decide(tries, { scope, interrupted: !counted });
    const next: DeliveryRecord = { ...r, tries, interruptions };
    // A record that cannot be delivered as it is and goes to the dead-letter target does not hold up its
    // partition's order (nothing of it was stored). Any other failure in ordered mode replays the partition
    // from its lowest unsettled record: a blocked record too, or later ones would be stored before it.
    if (this.ordered && (scope !== "record" || decision.kind !== "dead-letter")) {
      this.replay(r, error, decision, next);
      return;
    }
    switch (decision.kind) {
      case "retry": {
        const timer = setTimeout(() => {
          this.retries.delete(next);
          this.events.changed();
          this.emitAgain(next);
        }, decision.delayMs);
        this.retries.set(next, { timer, reason: d.message });
        this.events.changed();
        return;
      }
      case "dead-letter":
        void this.deadLetter(next, d.message);
        return;
      case "block":
        this.block(next, d.message, decision.retryInMs);
        return;
    }
  }

  private async deadLetter(r: DeliveryRecord, reason: string): Promise<void> {
    try {
      if (!this.o.writeDeadLetter)
        throw new BridgeError("kafka-in.errors.no-dead-letter-topic", "no dead-letter target", false);
      await this.o.writeDeadLetter(r, reason);
    } catch (err) {
      if (this.closed) return;
      this.events.deadLetterFailed(r, err);
      // the record stays unsettled; its partition waits until the dead-letter write succeeds
      const d = describeError(err);
      this.block(r, `dead-letter write failed: ${d.message}`, this.policy.backoff(r.tries + 1), true);
      return;
    }
    if (this.closed) return;
    this.events.deadLettered(r, reason);
    this.settle(r);
  }

  private block(r: DeliveryRecord, reason: string, retryInMs: number | undefined, deadLetter = false): void {
    const k = partKey(r.topic, r.partition);
    let records = this.blocks.get(k);
    if (!records) this.blocks.set(k, (records = new Map<string, BlockEntry>()));
    const offset = r.message.offset;
    const previous = records.get(offset);
    if (previous?.timer) clearTimeout(previous.timer);
    const b: Blocked = {
      topic: r.topic,
      partition: r.partition,
      offset: r.message.offset,
      reason,
      retryAt: retryInMs === undefined ? undefined : Date.now() + retryInMs,
    };
    const timer =
      retryInMs === undefined
        ? undefined
        : setTimeout(() => {
            const entry = this.blocks.get(k)?.get(offset);
            if (!entry || entry.r !== r) return;
            entry.timer = undefined;
            entry.inFlight = true;
            if (deadLetter) void this.deadLetter(r, reason.replace(/^dead-letter write failed: /, ""));
            else this.emitAgain(r);
            this.events.changed();
          }, retryInMs);
    records.set(offset, { r, b, timer, inFlight: false });
    this.control?.block(r.topic, r.partition);
    if (!previous || previous.b.reason !== reason) this.events.blocked(b);
    this.events.changed();
  }

  private unblockIfDone(topic: string, partition: number, offset: string): void {
    const k = partKey(topic, partition);
    const records = this.blocks.get(k);
    if (!records) return;
    records.delete(offset);
    // still blocked while any record of it waits for a try, a redeploy or the outcome of its try
    if (records.size > 0) return;
    this.blocks.delete(k);
    this.resumeIfFree(topic, partition);
    this.events.changed();
  }

  private expire(): void {
    this.tracker.expire(Date.now() - this.o.settleTimeoutMs, (holders) => {
      const names = holders.map((h) => this.o.describeNode(h));
      return new BridgeError(
        "kafka-in.errors.settle-timeout",
        `not settled within ${Math.round(this.o.settleTimeoutMs / 1000)} s` +
          (names.length ? `: held by ${names.join(", ")}` : ""),
        true,
      );
    });
  }

  // ---- for the status ----

  get retrying(): Retrying[] {
    const out = [...this.retries].map(([r, { reason }]) => ({
      topic: r.topic,
      partition: r.partition,
      offset: r.message.offset,
      attempt: r.attempt + 1,
      reason,
    }));
    for (const { failed, reason, blocked } of this.replays.values())
      if (!blocked)
        out.push({
          topic: failed.topic,
          partition: failed.partition,
          offset: failed.message.offset,
          attempt: failed.attempt + 1,
          reason,
        });
    return out;
  }

  get blocked(): Blocked[] {
    const out: Blocked[] = [];
    for (const records of this.blocks.values())
      for (const { b, inFlight } of records.values()) if (!inFlight) out.push(b);
    for (const replay of this.replays.values()) if (replay.blocked) out.push(this.blockedOf(replay));
    return out;
  }

  /** Records being tracked (neither settled nor failed). */
  get tracking(): number {
    return this.tracker.records;
  }

  /** No retry, dead-letter write or re-emission starts any more (closing); settlement goes on. */
  stopRetrying(): void {
    this.stoppedRetrying = true;
    for (const { timer } of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
    for (const records of this.blocks.values())
      for (const entry of records.values()) {
        if (entry.timer) clearTimeout(entry.timer);
        entry.timer = undefined;
      }
    for (const replay of this.replays.values()) if (replay.timer) clearTimeout(replay.timer);
    this.replays.clear();
    for (const timer of this.draining.values()) clearTimeout(timer);
    this.draining.clear();
  }

  private tellRevoked(gone: { topic: string; partition: number }[], closing: boolean): void {
    for (const listener of [...this.revokeListeners]) {
      try {
        listener(gone, closing);
      } catch {
        // a listener's failure is its own: the others are still told
      }
    }
  }

  close(): void {
    // every partition goes with this node: the producers named after them are closed, so that the next
    // owner (this node redeployed, or another instance) can open them
    const all: { topic: string; partition: number }[] = [];
    for (const [topic, partitions] of this.epochs)
      for (const partition of partitions.keys()) all.push({ topic, partition });
    const told = new Set(all.map((g) => partKey(g.topic, g.partition)));
    for (const a of this.assignment ?? []) if (!told.has(partKey(a.topic, a.partition))) all.push(a);
    this.epochs.clear();
    this.tellRevoked(all, true);
    this.revokeListeners.clear();
    this.assignListeners.clear();
    // waiting msgs find their partitions gone (stale)
    for (const listener of [...this.progressListeners]) listener();
    this.progressListeners.clear();
    this.stopRetrying();
    this.closed = true;
    if (this.deadlineTimer) clearInterval(this.deadlineTimer);
    for (const { timer } of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
    for (const records of this.blocks.values())
      for (const { timer } of records.values()) if (timer) clearTimeout(timer);
    this.blocks.clear();
    this.tracker.clear();
  }
}
