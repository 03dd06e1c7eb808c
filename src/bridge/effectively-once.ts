// Effectively-once (DESIGN §4): one Pulsar producer per (Kafka cluster, topic, partition, Pulsar topic)
// with a stable name, and the Kafka offset as the sequence id, so Pulsar's deduplication drops what it
// already stored when a record is redelivered.
import { createHash } from "node:crypto";
import { BridgeError, ConfigurationError } from "../common/errors";
import { compareOffsets } from "./offsets";

/** A producer name that is readable, stable across restarts and redeploys, and unique per source partition. */
export function producerNameFor(
  source: { cluster: string; topic: string; partition: number },
  pulsarTopic: string,
  /** The pulsar-out node's id: two nodes writing one topic have producers of their own. */
  publisherId = "",
): string {
  const digest = createHash("sha256")
    .update(JSON.stringify([source.cluster, source.topic, source.partition, pulsarTopic, publisherId]))
    .digest("hex")
    .slice(0, 16);
  const readable = source.topic.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 80);
  return `kafka-${readable}-${source.partition}-${digest}`;
}

/**
 * What kafka-in offers an effectively-once pulsar-out, found through msg.kafka.source (the kafka-in node's
 * id): an ordered pipeline per source partition. After a failure kafka-in discards what the flow still
 * holds of the partition and replays it from the lowest unsettled record, in offset order, under a new
 * epoch; a msg of an older epoch still travelling through the flow is stale and must not be published.
 */
export interface OrderedSource {
  /**
   * From now on a failure replays its partition in order (instead of retrying the record alone); `sinkId`
   * is the node that publishes (a replay need not wait for it to let go of a discarded pass: it drops it).
   */
  requireOrdered(sinkId?: string): void;
  /** The partition's current epoch; undefined when it is not this node's (revoked, or never emitted). */
  epochOf(topic: string, partition: number): number | undefined;
  /**
   * Tells `listener` the partitions a rebalance took away, so that their named producers are closed and
   * the new owner (another instance) can open its own under the same names; and, after a rebalance, the
   * partitions kept, read again from their commit: their producers open afresh, so that the broker's last
   * sequence id proves stored what the new pass sends again (a producer remembers a bounded number of the
   * ranges it stored). Returns the way to stop.
   */
  onRevoked(
    listener: (revoked: readonly { topic: string; partition: number }[], closing: boolean) => void,
  ): () => void;
  /**
   * Tells `listener` the partitions the group gives this source, now (when it has them) and after every
   * rebalance: a window node restores their state without waiting for a record. Returns the way to stop.
   */
  onAssigned?(listener: (assigned: readonly { topic: string; partition: number }[]) => void): () => void;
  /** Whether failures are replayed at all (kafka-in commits settled offsets; not in auto-commit mode). */
  readonly replaysFailures: boolean;
  /**
   * What names the topic in producer names: its cluster's and its own id, so that a topic deleted and
   * recreated (offsets from 0 again) or a changed broker list give the right names. Undefined: unknown.
   */
  identityOf(topic: string, partition: number): Promise<string> | undefined;
  /**
   * What the flow's msg `msgId` carries (see SettlementTracker.carried): the records that settle with it
   * alone, and whether part of it is of a discarded pass. Undefined when kafka-in does not track the msg.
   */
  carried(msgId: string): { records: CarriedRecord[]; live: boolean; tainted: boolean } | undefined;
  /**
   * Whether a record of the partition strictly between offsets `after` (undefined: from the lowest) and
   * `before` is still unsettled, other than those in `except`: the flow may still bring it to pulsar-out.
   */
  unsettledBetween(
    topic: string,
    partition: number,
    after: string | undefined,
    before: string,
    except?: ReadonlySet<string>,
  ): boolean;
  /**
   * The sink `sinkId` admitted the msg `msgId` to its stream: held there, it cannot come to another one,
   * so it need not keep the partition's later records from other streams (unsettledBetween).
   */
  admitted?(msgId: string | undefined, sinkId: string, msg?: object): void;
  /** Calls `listener` (soon after) when a record settles or a partition gets a new pass. */
  onProgress(listener: () => void): () => void;
}

/** A record a msg carries. */
export interface CarriedRecord {
  topic: string;
  partition: number;
  offset: string;
  attempt: number;
}

/** Why a msg is not published: `stale` ones are discarded quietly (a replay brings their record again). */
export type Admission = "send" | "stale";

interface Stream {
  epoch: number;
  /** The offset admitted last in this epoch, and its try (offsets as Kafka writes them: compareOffsets). */
  last: string | undefined;
  lastAttempt: number;
  /** The lowest offset whose send failed in this epoch: nothing after it is sent until the replay. */
  failedAt: string | undefined;
}

/**
 * The publishing side of the ordered pipeline, one stream per producer name (source partition × Pulsar
 * topic). Pulsar drops a sequence id at or below the highest it stored for the producer, so a record may be
 * sent only after every earlier record of its partition was sent (or dropped by the flow on purpose):
 * - a second msg of one offset and try is a split record, refused (Pulsar would drop it as a duplicate);
 *   a lower offset than one admitted before (the flow reordered them, or a record came back after a node
 *   behind pulsar-out failed) is sent: the producer tells whether a duplicate receipt proves it stored;
 * - once a send failed, later msgs of the epoch are refused (transient): kafka-in replays the partition
 *   from the failed record under a new epoch, which starts the stream afresh;
 * - a msg of an older epoch than the stream's, or than its kafka-in says is current, is stale.
 * A msg without epoch (its source does not replay: msg.kafka written by hand or by another process) is
 * never stale; its source's retry of the failed offset itself (or of an earlier one) reopens the stream.
 */
export class OrderedGate {
  private readonly streams = new Map<string, Stream>();

  admit(
    producerName: string,
    offset: string,
    attempt: number,
    epoch: number | undefined,
    currentEpoch: number | undefined,
  ): Admission {
    let s = this.streams.get(producerName);
    if (epoch !== undefined) {
      if ((currentEpoch !== undefined && epoch < currentEpoch) || (s && epoch < s.epoch)) return "stale";
      if (s && epoch > s.epoch) s = undefined;
    }
    if (!s) {
      s = { epoch: epoch ?? 0, last: undefined, lastAttempt: 0, failedAt: undefined };
      this.streams.set(producerName, s);
    }
    const o = offset;
    if (s.failedAt !== undefined) {
      if (compareOffsets(o, s.failedAt) > 0 || attempt <= 1)
        throw new BridgeError(
          "pulsar-out.errors.replaying",
          `Kafka offset ${offset} waits for the replay of its partition from offset ${s.failedAt}, whose send failed`,
          true,
        );
      // a source without replay tries the failed record again: the stream goes on from it
      s.failedAt = undefined;
      s.last = undefined;
    }
    // Pulsar would drop it as a duplicate of the later offset it stored: refused, never a silent loss (the
    // publisher waits for the earlier records of the partition, so only a msg whose record settled before,
    // or a second msg of one record, comes here)
    if (epoch !== undefined && s.last !== undefined && compareOffsets(o, s.last) < 0)
      throw new BridgeError(
        "pulsar-out.errors.out-of-order",
        `Kafka offset ${offset} reached pulsar-out after offset ${s.last} of its partition was published, so Pulsar would take it for a duplicate: its record was settled already (a node sent a msg of it after calling done()), or a node sent a second msg of it`,
        false,
      );
    if (s.last === o && attempt === s.lastAttempt)
      throw new BridgeError(
        "pulsar-out.errors.split-record",
        `a second msg from Kafka offset ${offset} reached pulsar-out in effectively-once mode: one record must give at most one Pulsar message`,
        false,
      );
    s.last = o;
    s.lastAttempt = attempt;
    return "send";
  }

  /** The offset admitted last in `epoch` on the stream (undefined: none yet in that epoch). */
  lastOf(producerName: string, epoch: number): string | undefined {
    const s = this.streams.get(producerName);
    return s && s.epoch === epoch ? s.last : undefined;
  }

  /** The send of an admitted msg failed. */
  failed(producerName: string, offset: string, epoch: number | undefined): void {
    const s = this.streams.get(producerName);
    if (!s || (epoch !== undefined && s.epoch !== epoch)) return;
    if (s.failedAt === undefined || compareOffsets(offset, s.failedAt) < 0) s.failedAt = offset;
  }

  /** Throws when the stream failed at or before `offset` since it was admitted (see admit). */
  recheck(producerName: string, offset: string, epoch: number | undefined): void {
    const s = this.streams.get(producerName);
    if (!s || (epoch !== undefined && s.epoch !== epoch)) return;
    if (s.failedAt !== undefined && compareOffsets(offset, s.failedAt) > 0)
      throw new BridgeError(
        "pulsar-out.errors.replaying",
        `Kafka offset ${offset} waits for the replay of its partition from offset ${s.failedAt}, whose send failed`,
        true,
      );
  }

  /** The producer of this stream was closed: what it knew is gone with it. */
  drop(producerName: string): void {
    this.streams.delete(producerName);
  }
}

/** What an effectively-once producer is tagged with: its source partition and name. */
export interface StreamOwner {
  /** The kafka-in that emits the partition (undefined: msg.kafka came from elsewhere). */
  source: OrderedSource | undefined;
  topic: string;
  partition: number;
  producerName: string;
}

/** How one msg is published effectively-once. */
export interface Publication {
  owner: StreamOwner;
  /** The producer's key in pulsar-out's pool: one per Pulsar topic and producer name. */
  producerKey: string;
  /** The Kafka offset. */
  sequenceId: number;
  offset: string;
  epoch: number | undefined;
  /** It also holds parts of a discarded pass (see carriedBy): they may be stored twice. */
  tainted: boolean;
  /** The offsets of the other records it settles (OutgoingMessage.covers). */
  covers: number[] | undefined;
}

/** The record a msg is published as, with what else it carries (see carriedBy). */
type Carried = CarriedRecord & { tainted?: boolean; covers?: number[] };

/** The record msg.kafka names, if it names one. */
function provenanceOf(k: KafkaFields | undefined): CarriedRecord | undefined {
  if (!k || typeof k.offset !== "string" || typeof k.topic !== "string" || typeof k.partition !== "number")
    return undefined;
  return {
    topic: k.topic,
    partition: k.partition,
    offset: k.offset,
    attempt: typeof k.attempt === "number" ? k.attempt : 1,
  };
}

/** What a window node's result carries for effectively-once (msg.window). */
interface WindowResultFields {
  /** The window node's changelog topic. */
  source: string;
  /** The kafka-in that emitted the partition's records (msg.kafka.source of them), when it said. */
  kafkaSource: string | undefined;
  /** The partition state's incarnation (a state begun afresh numbers its results from 0 again). */
  incarnation: string | undefined;
  topic: string;
  partition: number;
  seq: number;
  attempt: number;
}

function resultOf(w: unknown): WindowResultFields | undefined {
  const o = w as Partial<Record<keyof WindowResultFields, unknown>> | undefined;
  if (
    !o ||
    typeof o.source !== "string" ||
    typeof o.topic !== "string" ||
    typeof o.partition !== "number" ||
    typeof o.seq !== "number" ||
    !Number.isSafeInteger(o.seq) ||
    (o.incarnation !== undefined && typeof o.incarnation !== "string")
  )
    return undefined;
  return {
    source: o.source,
    kafkaSource: typeof o.kafkaSource === "string" ? o.kafkaSource : undefined,
    topic: o.topic,
    partition: o.partition,
    seq: o.seq,
    incarnation: o.incarnation,
    attempt: typeof o.attempt === "number" ? o.attempt : 1,
  };
}

interface KafkaFields {
  topic?: unknown;
  partition?: unknown;
  offset?: unknown;
  attempt?: unknown;
  cluster?: unknown;
  epoch?: unknown;
  source?: unknown;
}

/** A producer's name and its key in pulsar-out's pool. */
interface ProducerId {
  name: string;
  key: string;
  owner?: StreamOwner;
}

/**
 * pulsar-out's effectively-once logic, free of Node-RED: from a msg's provenance, the producer name and
 * sequence id; the ordered gate; the kafka-in that emits it (to drop msgs of a discarded pass, and to be
 * told when a rebalance takes a partition away, so that its producers are closed); what a failure and a
 * receipt mean for the stream.
 */
export class EffectivelyOncePublisher {
  private readonly gate = new OrderedGate();
  private readonly names = new Map<string, ProducerId>();
  private readonly watches = new Map<OrderedSource, () => void>();

  constructor(
    private readonly o: {
      /** pulsar-out's node id. */
      nodeId?: string;
      /** The kafka-in node of msg.kafka.source, if it is in this runtime. */
      findSource(id: string): OrderedSource | undefined;
      /** Closes the producers `select` picks; returns their owners. */
      closeProducers(select: (owner: StreamOwner) => boolean): StreamOwner[];
    },
  ) {}

  /** The publication of msg `m` to `topic`, or "stale" (drop it quietly). Rejects what refuses the msg. */
  async prepare(m: Record<string, unknown>, topic: string): Promise<Publication | "stale"> {
    const k = m.kafka as KafkaFields | undefined;
    const result = k === undefined ? resultOf(m.window) : undefined;
    if (result) return this.prepareResult(result, topic);
    const source = typeof k?.source === "string" ? this.o.findSource(k.source) : undefined;
    if (typeof k?.source === "string" && !source)
      // its kafka-in is being redeployed: what it did not commit is delivered again by the next one
      throw new BridgeError(
        "pulsar-out.errors.source-gone",
        "the kafka-in that emitted this msg is gone (a redeploy): its record is delivered again",
        true,
      );
    if (source && !source.replaysFailures)
      throw new ConfigurationError(
        "pulsar-out.errors.auto-commit",
        "effectively-once needs kafka-in to commit settled offsets: in auto-commit mode a failed send is never replayed",
      );
    const at: Carried | "stale" | undefined = source ? this.carriedBy(m, k, source) : provenanceOf(k);
    if (at === "stale") return "stale";
    if (!at)
      throw new BridgeError(
        "pulsar-out.errors.no-provenance",
        "effectively-once needs msg.kafka (topic, partition, offset) from kafka-in on each msg",
        false,
      );
    // a msg without epoch (emitted before its kafka-in knew it must replay) is never taken for stale
    let epoch = typeof k?.epoch === "number" ? k.epoch : undefined;
    let current: number | undefined;
    if (source) {
      source.requireOrdered(this.o.nodeId);
      current = source.epochOf(at.topic, at.partition);
      // revoked by a rebalance: the partition's new owner publishes it
      if (current === undefined && epoch !== undefined) return "stale";
      // a batch msg: the records it carries are live, so of the partition's current pass
      epoch ??= current;
      this.watch(source);
    }
    // the kafka-in knows the cluster's and the topic's ids; msg.kafka.cluster (the broker list) otherwise.
    // Awaited by every msg alike, so the msgs go on in the order they came.
    const identity = source?.identityOf(at.topic, at.partition);
    const cluster = identity
      ? (this.known.get(identity) ?? (await this.resolved(identity)))
      : typeof k?.cluster === "string"
        ? k.cluster
        : "";
    const id = this.nameFor(cluster, at.topic, at.partition, topic);
    const { name: producerName, key: producerKey } = id;
    if (source && epoch !== undefined) {
      // Offsets are admitted in order per partition: a later one waits while an earlier record of the
      // partition may still come (a node holds it: an http request, a branch with more nodes). Stored
      // after it, the earlier one would be a hole Pulsar takes for a duplicate. (Only offsets below this
      // one are looked at: the records it covers do not count.)
      const except = at.covers ? new Set(at.covers.map(String)) : undefined;
      const me = { offset: at.offset, covers: at.covers, epoch };
      let waiting = this.waitingAt.get(producerName);
      if (!waiting) this.waitingAt.set(producerName, (waiting = new Set()));
      waiting.add(me);
      try {
        for (;;) {
          current = source.epochOf(at.topic, at.partition);
          // revoked (the new owner publishes it), or a pass kafka-in discarded
          if (current === undefined || epoch < current) return "stale";
          const after = this.gate.lastOf(producerName, epoch);
          if (after !== undefined && compareOffsets(at.offset, after) <= 0) break;
          if (!source.unsettledBetween(at.topic, at.partition, after, at.offset, except)) break;
          this.refuseCrossedMerge(waiting, me, after);
          await this.progress(source);
        }
      } finally {
        waiting.delete(me);
        if (waiting.size === 0 && this.waitingAt.get(producerName) === waiting)
          this.waitingAt.delete(producerName);
      }
    } else if (source) current = source.epochOf(at.topic, at.partition);
    if (this.gate.admit(producerName, at.offset, at.attempt, epoch, current) === "stale") return "stale";
    if (source && this.o.nodeId !== undefined)
      source.admitted?.(typeof m._msgid === "string" ? m._msgid : undefined, this.o.nodeId, m);
    this.wakeWaiters();
    // one owner object per producer and source (the pool tags the producer with it)
    let owner = id.owner;
    if (owner === undefined || owner.source !== source) {
      owner = { source, topic: at.topic, partition: at.partition, producerName };
      id.owner = owner;
    }
    return {
      owner,
      producerKey,
      sequenceId: Number(at.offset),
      offset: at.offset,
      epoch,
      tainted: at.tainted === true,
      covers: at.covers,
    };
  }

  /**
   * Whether a msg found stale is a copy the flow's settlement does not follow (a Catch node's copy of a
   * failed msg, a msg a node made up): not the discarded pass's own msg, which its replay brings again.
   */
  isCopy(m: Record<string, unknown>): boolean {
    const k = m.kafka as KafkaFields | undefined;
    const source = typeof k?.source === "string" ? this.o.findSource(k.source) : undefined;
    return source !== undefined && typeof m._msgid === "string" && source.carried(m._msgid) === undefined;
  }

  /**
   * Identities already known: a msg then goes on without a turn of the microtask queue (the msgs that
   * awaited the identity were all resumed, in their order, before a later msg can arrive).
   */
  private readonly known = new WeakMap<Promise<string>, string>();

  private async resolved(identity: Promise<string>): Promise<string> {
    const id = await identity;
    this.known.set(identity, id);
    return id;
  }

  private readonly waiters = new Set<() => void>();

  /** Per producer name, the msgs waiting for the records below their offset (see refuseCrossedMerge). */
  private readonly waitingAt = new Map<
    string,
    Set<{ offset: string; covers: number[] | undefined; epoch: number }>
  >();

  /**
   * A msg waiting for a record below its offset that a msg with a higher offset carries, waiting here too,
   * waits for ever: that one can only be stored after it (sequence ids only grow), and the record only with
   * that one. Two merges of one partition's records crossed (a join per key, records going around a join):
   * refused as a configuration error, rather than a stall.
   */
  private refuseCrossedMerge(
    waiting: ReadonlySet<{ offset: string; covers: number[] | undefined; epoch: number }>,
    me: { offset: string; epoch: number },
    after: string | undefined,
  ): void {
    const low = after === undefined ? -1 : Number(after);
    const high = Number(me.offset);
    for (const w of waiting) {
      if (w === me || w.epoch !== me.epoch || !w.covers || compareOffsets(w.offset, me.offset) <= 0) continue;
      const held = w.covers.find((c) => c > low && c < high);
      if (held !== undefined)
        throw new ConfigurationError(
          "pulsar-out.errors.crossed-merge",
          `offset ${me.offset} waits for offset ${held}, which a msg of offset ${w.offset} carries, waiting ` +
            "for it in turn: in effectively-once mode every record of a partition must reach the one node " +
            "that merges them (no join per key, no records around the join)",
        );
    }
  }

  /** Resolves at the source's next progress, the next admission here, or after a second at most. */
  private progress(source: OrderedSource): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        stop();
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const stop = source.onProgress(wake);
      const timer = setTimeout(wake, 1000);
      this.waiters.add(wake);
    });
  }

  private wakeWaiters(): void {
    if (this.waiters.size === 0) return;
    const all = [...this.waiters];
    queueMicrotask(() => {
      for (const wake of all) wake();
    });
  }

  /**
   * The record a msg from an ordered kafka-in is published as. Usually msg.kafka's; but a msg merging
   * several (core join, batch, or a batch msg) settles every record kafka-in hands over to it, so:
   * - a part of a discarded pass merged into it (a node held it across the replay, which waits a while for
   *   the flow to let go of such parts) makes it stale when nothing live is in it; otherwise it is
   *   published (refusing it would replay its partition again, while the node holds parts once more) and
   *   marked: that part is stored again with the replay;
   * - the records it alone settles must be of one partition (one producer name, one sequence): Pulsar
   *   cannot deduplicate one message for two; refused, as a configuration error (the flow must merge
   *   per partition);
   * - it is published under the highest offset it settles, so that no record is stored behind a later one.
   */
  private carriedBy(
    m: Record<string, unknown>,
    k: KafkaFields | undefined,
    source: OrderedSource,
  ): Carried | "stale" | undefined {
    let at: Carried | undefined = provenanceOf(k);
    const c = typeof m._msgid === "string" ? source.carried(m._msgid) : undefined;
    if (!c) return at;
    // nothing live in it (a record another msg shares, as split's parts do, is live too)
    if (c.tainted && !c.live) return "stale";
    for (const r of c.records) {
      if (!at) at = r;
      else if (r.topic !== at.topic || r.partition !== at.partition)
        throw new ConfigurationError(
          "pulsar-out.errors.mixed-partitions",
          `this msg merges records of ${at.topic} partition ${at.partition} and ${r.topic} partition ` +
            `${r.partition}: in effectively-once mode each Pulsar message may hold records of one Kafka ` +
            "partition (merge per partition, for instance with a switch on msg.kafka.partition before the join)",
        );
      else if (compareOffsets(r.offset, at.offset) > 0) at = r;
    }
    if (!at) return at;
    // the other records it settles: stored with it, so that a replay grouping them otherwise (a batch
    // output msg replayed record by record, a join's timeout) finds them proven stored
    const top = at.offset;
    const only = c.records.length === 0 || (c.records.length === 1 && c.records[0].offset === top);
    const covers = only ? [] : c.records.filter((r) => r.offset !== top).map((r) => Number(r.offset));
    if (!c.tainted && covers.length === 0) return at;
    return { ...at, tainted: c.tainted, covers: covers.length > 0 ? covers : undefined };
  }

  /**
   * The publication failed after it was admitted: nothing later of its partition may be stored before it
   * (a later offset stored would make Pulsar take this one for a duplicate for good), so the stream waits
   * for kafka-in's replay. So does an error about the record itself (too big): kafka-in dead-letters it
   * and replays the msgs refused meanwhile under a new pass.
   */
  failed(p: Publication): void {
    this.gate.failed(p.owner.producerName, p.offset, p.epoch);
  }

  /**
   * Just before the send (after any wait since prepare): a failure of the stream meanwhile, or a replay
   * kafka-in started, refuses the msg, so that nothing is stored after a record that failed before it.
   */
  recheck(p: Publication): void {
    const current = p.owner.source?.epochOf(p.owner.topic, p.owner.partition);
    if (p.epoch !== undefined && p.owner.source && current !== p.epoch)
      throw new BridgeError(
        "pulsar-out.errors.replaying",
        `Kafka offset ${p.offset} belongs to a discarded pass`,
        true,
      );
    this.gate.recheck(p.owner.producerName, p.offset, p.epoch);
  }

  /** Pulsar's receipt: a duplicate counts as stored only when the producer can prove it. */
  received(p: Publication, receipt: { duplicate: boolean; duplicateProven: boolean }): void {
    if (receipt.duplicate && !receipt.duplicateProven)
      throw new BridgeError(
        "pulsar-out.errors.unproven-duplicate",
        `Pulsar dropped Kafka offset ${p.offset} as a duplicate, but this producer never stored it: a later ` +
          "offset of its partition was stored first (a node reordered the partition's records, or one failed " +
          "before pulsar-out while later ones went on), so it cannot be stored under this producer name",
        false,
      );
  }

  /** The producer of this stream was closed (idle): what the gate knew of it goes with it. */
  closed(owner: StreamOwner): void {
    this.gate.drop(owner.producerName);
  }

  close(): void {
    for (const stop of this.watches.values()) stop();
    this.watches.clear();
  }

  private watch(source: OrderedSource): void {
    if (this.watches.has(source)) return;
    this.watches.set(
      source,
      source.onRevoked((revoked, closing) => {
        const gone = this.o.closeProducers(
          (o) =>
            o.source === source && revoked.some((r) => r.topic === o.topic && r.partition === o.partition),
        );
        for (const o of gone) this.gate.drop(o.producerName);
        if (closing) this.watches.delete(source);
      }),
    );
  }

  /** Producer names are hashed once per source partition and topic, not per msg. */
  /**
   * A window node's result: one producer per source partition of the window node (named by its changelog
   * topic), the result's number in the partition as sequence id. The window node sends them in that order,
   * and again from the first not settled after a restore: Pulsar drops what it stored already.
   */
  private prepareResult(r: WindowResultFields, topic: string): Publication {
    const of = r.incarnation === undefined ? r.source : `${r.source}\u0000${r.incarnation}`;
    const { name: producerName, key: producerKey } = this.nameFor(
      `window:${of}`,
      r.topic,
      r.partition,
      topic,
    );
    const offset = String(r.seq);
    this.gate.admit(producerName, offset, r.attempt, undefined, undefined);
    // the kafka-in the window's records came from tells when a rebalance takes the source partition away:
    // the producer is closed then, so that the partition's new owner can open it
    const source = r.kafkaSource === undefined ? undefined : this.o.findSource(r.kafkaSource);
    if (source) this.watch(source);
    return {
      owner: { source, topic: r.topic, partition: r.partition, producerName },
      producerKey,
      sequenceId: r.seq,
      offset,
      epoch: undefined,
      tainted: false,
      covers: undefined,
    };
  }

  /**
   * The producer's name, and its key in pulsar-out's pool ("<Pulsar topic>|<name>"). Msgs come in runs of
   * one partition (a fetched batch): the last answer is kept apart, so that a run costs no string building.
   */
  private nameFor(cluster: string, topic: string, partition: number, pulsarTopic: string): ProducerId {
    const last = this.lastName;
    if (
      last &&
      last.partition === partition &&
      last.topic === topic &&
      last.cluster === cluster &&
      last.pulsarTopic === pulsarTopic
    )
      return last.id;
    const key = `${cluster}\u0000${topic}\u0000${partition}\u0000${pulsarTopic}`;
    let id = this.names.get(key);
    if (id === undefined) {
      if (this.names.size >= 10_000) this.names.clear();
      const name = producerNameFor({ cluster, topic, partition }, pulsarTopic, this.o.nodeId);
      id = { name, key: `${pulsarTopic}|${name}` };
      this.names.set(key, id);
    }
    this.lastName = { cluster, topic, partition, pulsarTopic, id };
    return id;
  }

  private lastName:
    { cluster: string; topic: string; partition: number; pulsarTopic: string; id: ProducerId } | undefined;
}
