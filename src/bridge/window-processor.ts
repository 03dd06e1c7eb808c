// The window node's delivery (issue 14), free of Node-RED: per Kafka source partition, the engine
// (window.ts) and its durable state in the changelog (kafka/changelog.ts).
//
// - Records are applied in arrival order per partition. A record is done (its done() is called, so that
//   kafka-in may commit it) once a checkpoint that holds its contribution is committed: its windows'
//   state, or the results it closed.
// - A checkpoint is one changelog transaction: the changed keys' state, the partition's own (watermark,
//   the highest offset applied, the next result number, recent late offsets) and the results it made.
// - A result is sent only after the checkpoint that holds it was committed, and stays in the changelog
//   until the node tells that the flow settled it (Pulsar's receipt downstream); a failed one is sent
//   again after a pause. After a crash, a redeploy or a rebalance, the partition's new owner restores the
//   state and sends again the results not known to have settled: a result may come twice, never partial.
// - A record at or below the highest offset the restored state holds is not applied again (Kafka
//   delivers again from the committed offset): it is done at once, and a late one is sent to the late
//   output again.
// - A checkpoint that fails because another owner opened the partition (a rebalance) drops the partition:
//   the records waiting for it fail as interrupted, and the next record opens the partition again.
import { randomUUID } from "node:crypto";
import { BridgeError, ConfigurationError, describeError, failureScope } from "../common/errors";
import type { Aggregator } from "./aggregate";
import {
  PartitionWindows,
  type KeySnapshot,
  type PartitionSnapshot,
  type WindowResult,
  type WindowSpec,
} from "./window";

/** One record the node got, with what the node does with its msg. */
export interface WindowInput {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  time: number;
  value: unknown;
  /** kafka-in's pass of the partition (msg.kafka.epoch; a replay after a failure starts a new one). */
  epoch?: number;
  /** Which try of the record this msg is (msg.kafka.attempt): a second msg of one try is a split record. */
  attempt?: number;
  /** The id of the topic kafka-in read it from (msg.kafka.topicId; Kafka 2.8 and later). */
  topicId?: string;
}

export interface InputHandle {
  /** The record's contribution is durable (or it was late): done(), or done(err) when it failed. */
  done(error?: unknown): void;
  /** The record is late: the node sends it to its late output (then done() follows). */
  late(): void;
}

/** The changelog of one source partition, as window-processor needs it (PartitionLog). */
export interface StateLog {
  readonly restored: Map<string, Buffer>;
  write(records: { name: string; value: Buffer | null }[]): Promise<void>;
  close(): Promise<void>;
}

export interface ProcessorOptions {
  spec: WindowSpec;
  aggregator: Aggregator;
  /** Opens a source partition's changelog (fencing its previous owner). */
  openLog(topic: string, partition: number): Promise<StateLog>;
  /** How long applied records wait for their checkpoint at most (ms). Default 200. */
  checkpointMs?: number;
  /**
   * A checkpoint starts at once when this many applied records wait for one (default 256): kafka-in holds a
   * bounded number of records in flight, so under load waiting out checkpointMs would cap the rate at that
   * number per checkpointMs.
   */
  checkpointRecords?: number;
  /** Closes a partition's windows after this long without a record (ms); 0: never. */
  idleMs?: number;
  /**
   * Whether the source partition still has records the flow has not settled (Kafka's end offset above the
   * group's commit): a partition behind is not quiet (a consumer catching up after a restart, an outage),
   * and its windows' idle close waits. An answer that fails or takes too long counts as behind.
   */
  behind?(topic: string, partition: number): Promise<boolean>;
  /** Pause before a failed checkpoint or result is tried again (ms). Default 1000. */
  retryMs?: number;
  /** Whether an error means the partition was opened by another owner. */
  isFenced?(error: unknown): boolean;
  /**
   * What a custom reduce builds its accumulator with (its init and step expressions): state made by
   * another is not restored. Its result expression only reads the accumulator, so it may change.
   */
  reduceState?: string;
  /**
   * The source topic's identity (its Kafka topic id): a topic deleted and created again under the same name
   * has a new one, and its offsets start at 0 again, below what the state says it applied. `topicId`: the
   * id kafka-in read the partition's first record as (WindowInput.topicId), when it says.
   */
  identityOf?(topic: string, topicId: string | undefined): Promise<string>;
}

export interface ProcessorEvents {
  /** Send the result (again, when it failed or after a restore); report back with settled/failed. */
  result(r: PendingResult): void;
  /** Something the status should show changed. */
  changed(): void;
  /** A checkpoint failed (it is tried again). */
  checkpointFailed(topic: string, partition: number, error: unknown): void;
  /** Something the user should know that is no error (a state given up for a recreated topic). */
  warn?(message: string): void;
}

/** A result waiting for the flow to settle it. */
export interface PendingResult {
  topic: string;
  partition: number;
  /** Its number in the partition (in the changelog and in msg.window.seq). */
  seq: number;
  result: WindowResult;
  /**
   * The partition's state's incarnation (Partition.incarnation): results numbered from 0 again by a state
   * begun afresh are told apart from the earlier ones (effectively-once names its producer by it).
   */
  incarnation?: string;
}

interface Meta {
  applied: string | null;
  seq: number;
  partition: PartitionSnapshot;
  late: string[];
  /** The window settings the state was made with (STATE_SETTINGS; a restore under others would mix them). */
  settings?: string;
  /** Offset ranges [from, to] below `applied` that were not applied (see Partition.skipped). */
  skipped?: [string, string][];
  /** The source topic's identity (ProcessorOptions.identityOf) the state was made from. */
  source?: string;
  /** Partition.incarnation. */
  incarnation?: string;
}

/** How long the idle close waits for an answer to whether the partition is behind (see behind). */
const BEHIND_TIMEOUT_MS = 5000;

/** Skipped ranges a partition remembers at most (the oldest go first). */
const SKIPPED_KEPT = 10_000;

/** Late offsets a partition remembers (to send them again when Kafka delivers them again). */
const LATE_KEPT = 10_000;
const META = "meta";
const KEY = "k:";
const RESULT = "r:";

/**
 * The settings the state depends on: where windows start and end, whose time closes them, what the
 * accumulators hold. The grace period, the emit mode and the open-window limit only say when windows close
 * or what is sent: they may change between runs.
 */
const STATE_SETTINGS = ["type", "by", "size", "advance", "watermark", "aggregations", "reduce"] as const;

/** The state settings that differ between what the state was made with and now, as "name a → b". */
function changedSettings(then: string, now: string): string[] {
  let before: Record<string, unknown>;
  try {
    before = JSON.parse(then) as Record<string, unknown>;
  } catch {
    return [`settings ${then}`];
  }
  const after = JSON.parse(now) as Record<string, unknown>;
  const text = (v: unknown) => (v === undefined ? "none" : JSON.stringify(v));
  return STATE_SETTINGS.filter((k) => text(before[k]) !== text(after[k])).map(
    (k) => `${k} ${text(before[k])} → ${text(after[k])}`,
  );
}

const partKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

class Partition {
  engine: PartitionWindows;
  log: StateLog | undefined;
  opening: Promise<void> | undefined;
  /** Highest offset whose contribution is durable, and the highest applied in memory. */
  durable = -1n;
  applied = -1n;
  /**
   * The offsets applied above `durable`, with the try they came in: Kafka delivers them again after a
   * failure; an offset below `applied` missing here never was applied (it came out of order).
   */
  appliedTries = new Map<string, string>();
  /**
   * Offsets below `applied` that were passed over (in order, non-overlapping): dropped by the flow before
   * the window, or overtaken by a later record (an async node). One of them that comes later is applied
   * then, not taken for a record the state holds.
   */
  skipped: [bigint, bigint][] = [];
  /** A record failed to apply: later records of its pass wait for it (or for a pass past it). */
  failedAt: { offset: bigint; epoch: number | undefined } | undefined;
  seq = 0;
  /**
   * A random id drawn when the partition's state begins (no state in the changelog: a first run, or a
   * changelog topic deleted and created again) and kept in it: result numbers start at 0 again then.
   */
  incarnation: string | undefined;
  /** The source topic's identity (ProcessorOptions.identityOf). */
  source: string | undefined;
  /** The id of the topic its first record was read from (WindowInput.topicId). */
  topicId: string | undefined;
  /** Names in the changelog to delete with the next checkpoint (the state of a deleted source topic). */
  tombstones = new Set<string>();
  late: string[] = [];
  lateSet = new Set<string>();
  /** Applied since the last checkpoint began: done once the next one is committed. */
  waiting: InputHandle[] = [];
  /** Results made since the last checkpoint began. */
  fresh: PendingResult[] = [];
  pending = new Map<number, PendingResult>();
  /** Settled results to remove from the changelog with the next checkpoint. */
  settled = new Set<number>();
  dirty = false;
  writing = false;
  timer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  /** The next resend of failed results, from the lowest failed seq; failures since one settled. */
  retryTimer: NodeJS.Timeout | undefined;
  retryFrom: number | undefined;
  resultFailures = 0;
  /** Records are applied one after the other. */
  chain: Promise<void> = Promise.resolve();
  dropped = false;

  constructor(
    readonly topic: string,
    readonly partition: number,
    spec: WindowSpec,
    aggregator: Aggregator,
  ) {
    this.engine = new PartitionWindows(spec, aggregator);
  }
}

export class WindowProcessor {
  private readonly partitions = new Map<string, Partition>();
  /** What the state depends on (STATE_SETTINGS), as stored with it. */
  private readonly settings: string;
  private closed = false;

  constructor(
    private readonly o: ProcessorOptions,
    private readonly events: ProcessorEvents,
  ) {
    const aggregations = o.aggregator.specs.map((a) => `${a.name}:${a.kind}${a.limit ? `(${a.limit})` : ""}`);
    const all: Record<string, unknown> = {
      ...o.spec,
      aggregations,
      reduce: o.aggregator.hasCustom ? (o.reduceState ?? true) : false,
    };
    this.settings = JSON.stringify(Object.fromEntries(STATE_SETTINGS.map((k) => [k, all[k]])));
  }

  /** Open windows, all partitions. */
  get openWindows(): number {
    let n = 0;
    for (const p of this.partitions.values()) n += p.engine.openWindows;
    return n;
  }

  /** Results sent and not settled yet. */
  get pendingResults(): number {
    let n = 0;
    for (const p of this.partitions.values()) n += p.pending.size;
    return n;
  }

  /** A record for the window: applied in its partition's order; the handle hears when it is done. */
  input(r: WindowInput, handle: InputHandle): void {
    if (this.closed) {
      handle.done(new Error("the window node is closing"));
      return;
    }
    const p = this.partitionOf(r.topic, r.partition);
    p.chain = p.chain.then(() => this.apply(p, r, handle)).catch((err: unknown) => handle.done(err));
  }

  /**
   * A rebalance took these partitions away, or kept them and kafka-in reads them again from their commit:
   * their state here is given up (what it applied and did not checkpoint comes again from Kafka, to this
   * node or to the partition's new owner, which restores the rest from the changelog).
   */
  async revoked(partitions: readonly { topic: string; partition: number }[]): Promise<void> {
    const gone = partitions
      .map((r) => this.partitions.get(partKey(r.topic, r.partition)))
      .filter((p): p is Partition => p !== undefined);
    await Promise.allSettled(gone.map((p) => this.drop(p, new Error("the partition was revoked"))));
  }

  /**
   * The source's group gave these partitions to it: their state is restored now, not with their next
   * record (a quiet partition's results pending since a restart, a redeploy or a rebalance are sent again,
   * and its windows close at the idle timeout). A partition that fails to open is opened by its next record.
   */
  assigned(partitions: readonly { topic: string; partition: number }[]): void {
    if (this.closed) return;
    for (const { topic, partition } of partitions) {
      if (this.partitions.has(partKey(topic, partition))) continue;
      const p = this.partitionOf(topic, partition);
      p.chain = p.chain.then(async () => {
        if (p.dropped || p.log) return;
        p.opening ??= this.open(p, undefined);
        try {
          await p.opening;
        } catch (err) {
          p.opening = undefined;
          this.events.checkpointFailed(topic, partition, err);
          await this.drop(p, err);
          return;
        }
        this.idle(p);
      });
    }
  }

  /** The flow settled a result: it leaves the changelog with the next checkpoint. */
  resultSettled(topic: string, partition: number, seq: number): void {
    const p = this.partitions.get(partKey(topic, partition));
    if (!p || p.dropped || !p.pending.delete(seq)) return;
    p.resultFailures = 0;
    p.settled.add(seq);
    this.schedule(p);
    this.events.changed();
  }

  /** The flow failed a result: it is sent again after a pause. */
  resultFailed(topic: string, partition: number, seq: number): void {
    const p = this.partitions.get(partKey(topic, partition));
    const pending = p?.pending.get(seq);
    if (!p || p.dropped || !pending) return;
    // The partition's results go again from the lowest failed one, in their order (a later one sent first
    // would be stored first: with effectively-once, Pulsar would then drop the earlier one as a duplicate),
    // after a pause that doubles with each failure (up to a minute) until one settles.
    p.retryFrom = p.retryFrom === undefined ? seq : Math.min(p.retryFrom, seq);
    if (p.retryTimer) return;
    p.resultFailures++;
    const delay = Math.min(60_000, (this.o.retryMs ?? 1000) * 2 ** Math.min(p.resultFailures - 1, 16));
    p.retryTimer = setTimeout(() => {
      p.retryTimer = undefined;
      const from = p.retryFrom ?? Infinity;
      p.retryFrom = undefined;
      if (p.dropped) return;
      for (const r of [...p.pending.values()].filter((x) => x.seq >= from).sort((a, b) => a.seq - b.seq))
        this.events.result(r);
    }, delay);
  }

  /** Stops: what waits for a checkpoint is not done (Kafka delivers it again); the logs are closed. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.partitions.values()];
    this.partitions.clear();
    await Promise.allSettled(all.map((p) => this.drop(p, new Error("the window node was stopped"))));
  }

  /** Per partition (partKey), the ids its topic had before it was found recreated (see apply). */
  private readonly retiredIds = new Map<string, Set<string>>();

  private partitionOf(topic: string, partition: number): Partition {
    const k = partKey(topic, partition);
    let p = this.partitions.get(k);
    if (!p) {
      p = new Partition(topic, partition, this.o.spec, this.o.aggregator);
      this.partitions.set(k, p);
    }
    return p;
  }

  private async open(p: Partition, topicId: string | undefined): Promise<void> {
    p.topicId = topicId;
    const source = await this.o.identityOf?.(p.topic, topicId);
    const log = await this.o.openLog(p.topic, p.partition);
    if (p.dropped || this.closed) {
      await log.close();
      throw new Error("the partition was dropped while it was opened");
    }
    p.log = log;
    p.source = source;
    const metaBytes = log.restored.get(META);
    // the state of a topic of this name that was deleted since: its offsets are not the new topic's
    let recreated = false;
    if (!metaBytes) p.incarnation = randomUUID();
    if (metaBytes) {
      const meta = JSON.parse(metaBytes.toString("utf8")) as Meta;
      const changed = meta.settings === undefined ? [] : changedSettings(meta.settings, this.settings);
      if (changed.length > 0)
        throw new ConfigurationError(
          "kafka-window.errors.settings-changed",
          `the changelog holds the state of ${p.topic} partition ${p.partition} for other window settings (${changed.join(", ")}); to start afresh with these, give the node a new changelog topic`,
        );
      // numbers go on, and so does the incarnation: the results pending are still sent
      p.seq = meta.seq;
      p.incarnation = meta.incarnation;
      recreated = meta.source !== undefined && p.source !== undefined && meta.source !== p.source;
      if (!recreated) {
        p.engine.restorePartition(meta.partition);
        if (meta.applied !== null) {
          p.durable = p.applied = BigInt(meta.applied);
        }
        p.late = meta.late;
        p.lateSet = new Set(meta.late);
        p.skipped = (meta.skipped ?? []).map(([a, b]) => [BigInt(a), BigInt(b)]);
      }
    }
    let dropped = 0;
    for (const [name, bytes] of log.restored) {
      if (name.startsWith(KEY)) {
        if (recreated) {
          p.tombstones.add(name);
          dropped++;
        } else p.engine.restoreKey(name.slice(KEY.length), JSON.parse(bytes.toString("utf8")) as KeySnapshot);
      } else if (name.startsWith(RESULT)) {
        const pending = JSON.parse(bytes.toString("utf8")) as PendingResult;
        p.pending.set(pending.seq, pending);
      }
    }
    if (recreated) {
      this.events.warn?.(
        `${p.topic} was deleted and created again since the window state of its partition ${p.partition} was saved: the state of ${dropped} key(s) of the old topic is dropped, and the new topic's records start windows afresh`,
      );
      // the new identity is saved with the first checkpoint, and the old keys go with it
      p.dirty = true;
    }
    for (const pending of [...p.pending.values()].sort((a, b) => a.seq - b.seq)) this.events.result(pending);
  }

  private async apply(p: Partition, r: WindowInput, handle: InputHandle): Promise<void> {
    if (p.dropped) {
      // the partition was dropped while this record waited: it starts again with a fresh one
      this.input(r, handle);
      return;
    }
    if (p.log && r.topicId !== undefined && r.topicId !== p.topicId && (await this.idChanged(p, r, handle)))
      return;
    if (!p.log) {
      p.opening ??= this.open(p, r.topicId);
      try {
        await p.opening;
      } catch (err) {
        p.opening = undefined;
        void this.drop(p, err);
        throw err;
      }
    }
    const offset = BigInt(r.offset);
    const f = p.failedAt;
    if (f) {
      const newerPass = r.epoch !== undefined && f.epoch !== undefined && r.epoch > f.epoch;
      if (offset > f.offset && !newerPass)
        // applied past it, the failed record would count as applied when it comes again
        throw new BridgeError(
          "kafka-window.errors.waiting",
          `${r.topic}/${r.partition}@${r.offset} waits for offset ${f.offset}, which failed in the window`,
          true,
        );
      // the failed record again, or a replay past it (it was dead-lettered)
      p.failedAt = undefined;
    }
    const tryOf = `${r.epoch ?? ""}/${r.attempt ?? ""}`;
    const overtaken = offset <= p.applied && takeSkipped(p, offset);
    // applied since the last checkpoint began (an overtaken one may be below `durable`): not done before
    // the checkpoint that holds it
    const before = overtaken ? undefined : p.appliedTries.get(r.offset);
    if (!overtaken && before === undefined && offset <= p.durable) {
      // Kafka delivers it again (from the committed offset, or a retry): its contribution is in the state
      if (p.lateSet.has(r.offset)) handle.late();
      handle.done();
      return;
    }
    if (!overtaken && offset <= p.applied) {
      if (before === undefined)
        throw new BridgeError(
          "kafka-window.errors.out-of-order",
          `${r.topic}/${r.partition}@${r.offset} reached the window after offset ${p.applied} of its partition, and the window cannot tell whether it holds it`,
          false,
        );
      if (before === tryOf)
        throw new BridgeError(
          "kafka-window.errors.split-record",
          `a second msg of ${r.topic}/${r.partition}@${r.offset} reached the window: it takes one msg per record (no split before it)`,
          false,
        );
      if (p.lateSet.has(r.offset)) handle.late();
      p.waiting.push(handle);
      return;
    }
    let outcome;
    try {
      outcome = await p.engine.add({ key: r.key, time: r.time, offset, value: r.value });
    } catch (err) {
      // kafka-in replays failures (msg.kafka.epoch): later records wait for it. Without (auto commit) a
      // failed record is not delivered again, and nothing may wait for it
      if (r.epoch !== undefined) p.failedAt = { offset, epoch: r.epoch };
      if (overtaken) {
        p.skipped.push([offset, offset]);
        p.skipped.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      }
      throw err;
    }
    if (offset > p.applied) {
      // from the first record on: those below it may still be on their way (a node before the window
      // reordered them)
      if (offset > p.applied + 1n) {
        p.skipped.push([p.applied + 1n, offset - 1n]);
        if (p.skipped.length > SKIPPED_KEPT) p.skipped.shift();
      }
      p.applied = offset;
    }
    p.appliedTries.set(r.offset, tryOf);
    if (outcome.late) {
      p.late.push(r.offset);
      p.lateSet.add(r.offset);
      while (p.late.length > LATE_KEPT) p.lateSet.delete(p.late.shift() as string);
      handle.late();
    }
    for (const result of outcome.results) p.fresh.push(this.pendingOf(p, result));
    p.waiting.push(handle);
    p.dirty = true;
    this.schedule(p, p.waiting.length >= this.batch ? 0 : undefined);
    this.idle(p);
  }

  /**
   * A record of the partition read as another topic id than its open state: kafka-in found the topic
   * deleted and created again and reads it from offset 0 (the state is the old topic's, whose offsets would
   * pass the new records over), or the record is a late msg of the old topic. Kafka's current id tells
   * which. True when the record was handled here (refused, or input again to the partition opened afresh).
   */
  private async idChanged(p: Partition, r: WindowInput, handle: InputHandle): Promise<boolean> {
    const id = r.topicId as string;
    const named = (identity: string | undefined) => identity !== undefined && identity.endsWith(`/${id}`);
    // opened from a record kafka-in had not judged yet: named by the id Kafka gave then
    if (p.topicId === undefined && (p.source === undefined || named(p.source))) {
      p.topicId = id;
      return false;
    }
    const key = partKey(p.topic, p.partition);
    let now: string | undefined;
    if (!this.retiredIds.get(key)?.has(id)) {
      try {
        now = await this.o.identityOf?.(p.topic, undefined);
      } catch (err) {
        handle.done(err);
        return true;
      }
    }
    if (now !== undefined && !named(now)) {
      // Kafka names another id: the record's is the old topic's (or the topic changed again: tried later)
      handle.done(
        new BridgeError(
          "kafka-window.errors.old-topic",
          `${r.topic}/${r.partition}@${r.offset} is a record of the topic before it was recreated`,
          now.endsWith(`/${p.topicId ?? ""}`) ? false : true,
        ),
      );
      return true;
    }
    if (now === undefined && this.retiredIds.get(key)?.has(id)) {
      handle.done(
        new BridgeError(
          "kafka-window.errors.old-topic",
          `${r.topic}/${r.partition}@${r.offset} is a record of the topic before it was recreated`,
          false,
        ),
      );
      return true;
    }
    // Opened again, the partition finds the state made from another topic and starts afresh (see open).
    let retired = this.retiredIds.get(key);
    if (!retired) this.retiredIds.set(key, (retired = new Set()));
    if (p.topicId !== undefined) retired.add(p.topicId);
    await this.drop(p, new Error(`${p.topic} was deleted and created again`));
    this.input(r, handle);
    return true;
  }

  /** The partition's next result. */
  private pendingOf(p: Partition, result: WindowResult): PendingResult {
    const r: PendingResult = { topic: p.topic, partition: p.partition, seq: p.seq++, result };
    if (p.incarnation !== undefined) r.incarnation = p.incarnation;
    return r;
  }

  private get batch(): number {
    return this.o.checkpointRecords ?? 256;
  }

  private idle(p: Partition): void {
    const ms = this.o.idleMs ?? 0;
    if (ms <= 0) return;
    if (p.idleTimer) clearTimeout(p.idleTimer);
    p.idleTimer = setTimeout(() => {
      p.idleTimer = undefined;
      p.chain = p.chain
        .then(async () => {
          if (p.dropped || !p.log || p.engine.openWindows === 0) return;
          if (await this.isBehind(p)) {
            // records of the partition are still on their way: not quiet, looked at again later
            this.idle(p);
            return;
          }
          if (p.dropped || !p.log) return;
          for (const result of await p.engine.closeIdle(Date.now())) p.fresh.push(this.pendingOf(p, result));
          p.dirty = true;
          this.schedule(p);
          // the windows still running close once the clock passed their end, if it stays quiet
          if (p.engine.openWindows > 0) this.idle(p);
        })
        .catch(() => undefined);
    }, ms);
    p.idleTimer.unref?.();
  }

  private async isBehind(p: Partition): Promise<boolean> {
    if (!this.o.behind) return false;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), BEHIND_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.o.behind(p.topic, p.partition).catch(() => true), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private schedule(p: Partition, delayMs = this.o.checkpointMs ?? 200): void {
    if (p.writing || p.dropped) return;
    if (p.timer && delayMs === 0) {
      clearTimeout(p.timer);
      p.timer = undefined;
    }
    if (p.timer) return;
    p.timer = setTimeout(() => {
      p.timer = undefined;
      void this.checkpoint(p);
    }, delayMs);
  }

  /** Writes what changed in one transaction; then the records it holds are done and its results sent. */
  private async checkpoint(p: Partition): Promise<void> {
    if (p.dropped || !p.log || (!p.dirty && p.settled.size === 0)) return;
    p.writing = true;
    const waiting = p.waiting;
    const fresh = p.fresh;
    const settled = [...p.settled];
    const applied = p.applied;
    p.waiting = [];
    p.fresh = [];
    p.settled = new Set();
    p.dirty = false;
    const json = (v: unknown) => Buffer.from(JSON.stringify(v), "utf8");
    const records: { name: string; value: Buffer | null }[] = [];
    const tombstones = [...p.tombstones];
    p.tombstones.clear();
    for (const name of tombstones) records.push({ name, value: null });
    for (const key of p.engine.takeChanged()) {
      const s = p.engine.snapshotKey(key);
      records.push({ name: `${KEY}${key}`, value: s ? json(s) : null });
    }
    for (const f of fresh) records.push({ name: `${RESULT}${f.seq}`, value: json(f) });
    for (const seq of settled) records.push({ name: `${RESULT}${seq}`, value: null });
    const meta: Meta = {
      settings: this.settings,
      applied: applied < 0n ? null : String(applied),
      seq: p.seq,
      partition: p.engine.snapshotPartition(),
      late: p.late,
      skipped: p.skipped.map(([a, b]) => [String(a), String(b)]),
      source: p.source,
      incarnation: p.incarnation,
    };
    records.push({ name: META, value: json(meta) });
    try {
      await p.log.write(records);
    } catch (err) {
      p.writing = false;
      if (p.dropped) {
        // given up meanwhile: what this checkpoint held is not durable
        for (const h of waiting) h.done(err);
        return;
      }
      if (failureScope(err) === "record") {
        // what this checkpoint holds cannot be stored (a key's state too large for the changelog): its
        // records fail with the reason (dead-lettered, or their partition stops), and the partition goes
        // back to its last durable state, from which the records after them are applied again
        for (const h of waiting) h.done(err);
        void this.drop(p, err);
        return;
      }
      if (this.o.isFenced?.(err)) {
        // another owner has the partition now: nothing of this one's state counts any more
        p.waiting = [...waiting, ...p.waiting];
        void this.drop(p, err);
        return;
      }
      // tried again: what it held waits for the next one
      this.events.checkpointFailed(p.topic, p.partition, err);
      p.waiting = [...waiting, ...p.waiting];
      p.fresh = [...fresh, ...p.fresh];
      for (const seq of settled) p.settled.add(seq);
      for (const name of tombstones) p.tombstones.add(name);
      p.dirty = true;
      // the keys it held changed: they go again (a restore would otherwise miss them)
      for (const r of records) if (r.name.startsWith(KEY)) p.engine.markChanged(r.name.slice(KEY.length));
      this.schedule(p, this.o.retryMs ?? 1000);
      return;
    }
    p.writing = false;
    if (p.dropped) {
      // given up meanwhile, but this checkpoint is committed: what it held is durable
      for (const h of waiting) h.done();
      return;
    }
    if (applied > p.durable) p.durable = applied;
    for (const o of p.appliedTries.keys()) if (BigInt(o) <= p.durable) p.appliedTries.delete(o);
    for (const f of fresh) p.pending.set(f.seq, f);
    for (const h of waiting) h.done();
    for (const f of fresh) this.events.result(f);
    this.events.changed();
    if (p.dirty || p.settled.size > 0) this.schedule(p, p.waiting.length >= this.batch ? 0 : undefined);
  }

  /** Forgets a partition: its waiting records fail as interrupted (Kafka delivers them again). */
  private async drop(p: Partition, error: unknown): Promise<void> {
    if (p.dropped) return;
    p.dropped = true;
    if (this.partitions.get(partKey(p.topic, p.partition)) === p)
      this.partitions.delete(partKey(p.topic, p.partition));
    if (p.timer) clearTimeout(p.timer);
    if (p.idleTimer) clearTimeout(p.idleTimer);
    if (p.retryTimer) clearTimeout(p.retryTimer);
    const reason = new Error(
      `the window state of ${p.topic} partition ${p.partition} is gone: ${describeError(error).message}`,
    );
    for (const h of p.waiting) h.done(reason);
    p.waiting = [];
    await p.log?.close().catch(() => undefined);
    this.events.changed();
  }
}

/** Removes `offset` from the partition's skipped ranges; whether it was in one. */
function takeSkipped(p: Partition, offset: bigint): boolean {
  const i = p.skipped.findIndex(([a, b]) => a <= offset && offset <= b);
  if (i < 0) return false;
  const [a, b] = p.skipped[i] ?? [0n, -1n];
  const parts: [bigint, bigint][] = [];
  if (a < offset) parts.push([a, offset - 1n]);
  if (offset < b) parts.push([offset + 1n, b]);
  p.skipped.splice(i, 1, ...parts);
  return true;
}
