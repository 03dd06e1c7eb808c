// Per-partition offset bookkeeping for settled commits: records are added in offset order as they are
// emitted and settled in any order; the commit point is the first unsettled offset (or one past the
// highest added when all are settled), so a commit never passes an unsettled record.
// Kafka may deliver a partition again from an earlier offset (the consumer restarted or rejoined after a
// commit failed): that rewind starts the partition's bookkeeping afresh there. A commit the broker refused
// is handed out again by the next takeCommittable.

interface PartitionState {
  /** Offsets in the order they were added; those before `head` are settled. */
  added: string[];
  head: number;
  /** Offsets added and not yet settled. */
  open: Set<string>;
  /** The highest offset added. */
  last: string;
  /** The last commit point handed out. */
  committed: bigint;
  /** The last commit point the broker confirmed (or where the partition started). */
  confirmed: bigint;
  /** Open offsets that need not hold later ones back (see setPassive). */
  passive: Set<string> | undefined;
}

const key = (topic: string, partition: number) => `${partition}:${topic}`;

/**
 * Order of two offsets as Kafka gives them (canonical decimal strings: no sign, no leading zero), without
 * parsing: the per-record path compares and keys offsets as strings, exact beyond 2^53 too.
 */
export function compareOffsets(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

type Partition = PartitionState & { topic: string; partition: number };

export class OffsetLedger {
  /** By topic, then partition number: the per-record lookup builds no key string. */
  private readonly byTopic = new Map<string, Map<number, Partition>>();
  private count = 0;

  private find(topic: string, partition: number): Partition | undefined {
    return this.byTopic.get(topic)?.get(partition);
  }

  /** A record was handed to the flow. Offsets of one partition must be added in increasing order. */
  add(topic: string, partition: number, offset: string): void {
    let p = this.find(topic, partition);
    if (!p) {
      const o = BigInt(offset);
      p = {
        topic,
        partition,
        added: [],
        head: 0,
        open: new Set(),
        last: offset,
        committed: o,
        confirmed: o,
        passive: undefined,
      };
      let partitions = this.byTopic.get(topic);
      if (!partitions) this.byTopic.set(topic, (partitions = new Map<number, Partition>()));
      partitions.set(partition, p);
    } else if (compareOffsets(offset, p.last) <= 0) {
      // A rewind: everything from o on is delivered again, so only those deliveries count from now on.
      // (An earlier copy still in the flow that settles later settles the new one: it was published too.)
      const o = BigInt(offset);
      this.count -= p.open.size;
      p.added = [];
      p.head = 0;
      p.open.clear();
      p.passive = undefined;
      if (p.committed > o) p.committed = o;
      if (p.confirmed > o) p.confirmed = o;
    }
    p.added.push(offset);
    p.open.add(offset);
    p.last = offset;
    this.count++;
  }

  /** The record finished (published or dropped on purpose). Unknown or already settled offsets are ignored. */
  settle(topic: string, partition: number, offset: string): void {
    const p = this.find(topic, partition);
    if (!p) return;
    if (!p.open.delete(offset)) return;
    p.passive?.delete(offset);
    this.count--;
    // advance over the settled prefix
    while (p.head < p.added.length && !p.open.has(p.added[p.head])) p.head++;
    if (p.head > 1024 && p.head * 2 > p.added.length) {
      p.added = p.added.slice(p.head);
      p.head = 0;
    }
  }

  /** The first unsettled offset, or one past the highest added when all are settled. */
  private commitPoint(p: PartitionState): bigint {
    return p.head < p.added.length ? BigInt(p.added[p.head]) : BigInt(p.last) + 1n;
  }

  /**
   * What the partition's bookkeeping is now: a commit made before a restart of the partition (see
   * restart) hands its token to commitConfirmed or commitFailed, which then leave the new one alone.
   */
  token(topic: string, partition: number): object | undefined {
    return this.find(topic, partition);
  }

  /** The offset to commit (the next one to read) when it moved since the last call. */
  takeCommittable(topic: string, partition: number): string | undefined {
    const p = this.find(topic, partition);
    if (!p) return undefined;
    const point = this.commitPoint(p);
    if (point <= p.committed) return undefined;
    p.committed = point;
    return point.toString();
  }

  /** The broker accepted the commit of `offset` (from takeCommittable, made while `token` was current). */
  commitConfirmed(topic: string, partition: number, offset: string, token?: object): void {
    const p = this.find(topic, partition);
    if (!p || (token !== undefined && p !== token)) return;
    const o = BigInt(offset);
    if (o > p.confirmed) p.confirmed = o;
  }

  /** The broker refused the commit of `offset`: the partition is dirty again, to be retried. */
  commitFailed(topic: string, partition: number, offset: string, token?: object): void {
    const p = this.find(topic, partition);
    if (!p || (token !== undefined && p !== token)) return;
    if (p.committed === BigInt(offset)) p.committed = p.confirmed;
  }

  /** Partitions whose commit point moved since their last takeCommittable. */
  dirty(): { topic: string; partition: number }[] {
    const out: { topic: string; partition: number }[] = [];
    for (const partitions of this.byTopic.values())
      for (const p of partitions.values())
        if (this.commitPoint(p) > p.committed) out.push({ topic: p.topic, partition: p.partition });
    return out;
  }

  /** Records emitted and not settled. */
  get inFlight(): number {
    return this.count;
  }

  /** Keeps only the assigned partitions (after a rebalance the others are redelivered elsewhere). */
  retain(assigned: { topic: string; partition: number }[]): void {
    const keep = new Set(assigned.map((a) => key(a.topic, a.partition)));
    for (const partitions of this.byTopic.values())
      for (const p of partitions.values()) {
        if (!keep.has(key(p.topic, p.partition))) {
          this.count -= p.open.size;
          partitions.delete(p.partition);
        }
      }
  }

  /**
   * Forgets the partition's records in flight: the consumer fetches them again from the commit (after a
   * rebalance), and they count against the in-flight window only once they come.
   */
  restart(topic: string, partition: number): void {
    const p = this.find(topic, partition);
    if (!p) return;
    this.count -= p.open.size;
    this.byTopic.get(topic)?.delete(partition);
  }

  /**
   * Marks an open offset passive (or active again): its record can no longer reach the places a later
   * record of its partition is bound for (the ordered pipeline, SettlementTracker.setReach), so openBetween
   * passes over it. Settling, a rewind or a restart of the partition clears the mark.
   */
  setPassive(topic: string, partition: number, offset: string, passive: boolean): void {
    const p = this.find(topic, partition);
    if (!p) return;
    if (!passive) p.passive?.delete(offset);
    else if (p.open.has(offset)) (p.passive ??= new Set()).add(offset);
  }

  /** Clears every passive mark (see setPassive). */
  clearPassive(): void {
    for (const partitions of this.byTopic.values())
      for (const p of partitions.values()) p.passive = undefined;
  }

  /**
   * Whether an unsettled offset of the partition lies strictly between `after` (undefined: from its first)
   * and `before`, other than passive ones (setPassive) and those in `except`. Walks only that span of the
   * offsets added.
   */
  openBetween(
    topic: string,
    partition: number,
    after: string | undefined,
    before: string,
    except?: ReadonlySet<string>,
  ): boolean {
    const p = this.find(topic, partition);
    if (!p || p.open.size === 0) return false;
    let lo = p.head;
    let hi = p.added.length;
    if (after !== undefined)
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareOffsets(p.added[mid], after) <= 0) lo = mid + 1;
        else hi = mid;
      }
    for (let i = lo; i < p.added.length; i++) {
      const o = p.added[i];
      if (compareOffsets(o, before) >= 0) return false;
      if (p.open.has(o) && !p.passive?.has(o) && !except?.has(o)) return true;
    }
    return false;
  }

  /** Whether `offset` of the partition is still tracked as unsettled. */
  isUnsettled(topic: string, partition: number, offset: string): boolean {
    return this.find(topic, partition)?.open.has(offset) ?? false;
  }

  clear(): void {
    this.byTopic.clear();
    this.count = 0;
  }
}
