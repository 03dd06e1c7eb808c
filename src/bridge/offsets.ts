// Per-partition offset bookkeeping for settled commits: records are added in offset order as they are
// emitted and settled in any order; the commit point is the first unsettled offset (or one past the
// highest added when all are settled), so a commit never passes an unsettled record.
// Kafka may deliver a partition again from an earlier offset (the consumer restarted or rejoined after a
// commit failed): that rewind starts the partition's bookkeeping afresh there. A commit the broker refused
// is handed out again by the next takeCommittable.

interface PartitionState {
  /** Offsets emitted and not yet settled, in emission (= offset) order. */
  unsettled: bigint[];
  /** Index into `unsettled` of the first entry still live (settled ones are marked null lazily). */
  settled: Set<bigint>;
  /** One past the highest offset added. */
  next: bigint;
  /** The last commit point handed out. */
  committed: bigint;
  /** The last commit point the broker confirmed (or where the partition started). */
  confirmed: bigint;
}

const key = (topic: string, partition: number) => `${partition}:${topic}`;

export class OffsetLedger {
  private readonly partitions = new Map<string, PartitionState & { topic: string; partition: number }>();
  private count = 0;

  /** A record was handed to the flow. Offsets of one partition must be added in increasing order. */
  add(topic: string, partition: number, offset: string): void {
    const k = key(topic, partition);
    let p = this.partitions.get(k);
    const o = BigInt(offset);
    if (!p) {
      p = { topic, partition, unsettled: [], settled: new Set(), next: o, committed: o, confirmed: o };
      this.partitions.set(k, p);
    } else if (o < p.next) {
      // A rewind: everything from o on is delivered again, so only those deliveries count from now on.
      // (An earlier copy still in the flow that settles later settles the new one: it was published too.)
      this.count -= p.unsettled.length;
      p.unsettled = [];
      p.settled.clear();
      p.next = o;
      if (p.committed > o) p.committed = o;
      if (p.confirmed > o) p.confirmed = o;
    }
    p.unsettled.push(o);
    if (o + 1n > p.next) p.next = o + 1n;
    this.count++;
  }

  /** The record finished (published or dropped on purpose). Unknown offsets are ignored. */
  settle(topic: string, partition: number, offset: string): void {
    const p = this.partitions.get(key(topic, partition));
    if (!p) return;
    const o = BigInt(offset);
    if (p.unsettled[0] === o) {
      p.unsettled.shift();
      this.count--;
      // drop the settled prefix
      while (p.unsettled.length > 0 && p.settled.delete(p.unsettled[0])) {
        p.unsettled.shift();
        this.count--;
      }
    } else if (p.unsettled.includes(o) && !p.settled.has(o)) {
      p.settled.add(o);
    }
  }

  private commitPoint(p: PartitionState): bigint {
    return p.unsettled.length > 0 ? p.unsettled[0] : p.next;
  }

  /** The offset to commit (the next one to read) when it moved since the last call. */
  takeCommittable(topic: string, partition: number): string | undefined {
    const p = this.partitions.get(key(topic, partition));
    if (!p) return undefined;
    const point = this.commitPoint(p);
    if (point <= p.committed) return undefined;
    p.committed = point;
    return point.toString();
  }

  /** The broker accepted the commit of `offset` (from takeCommittable). */
  commitConfirmed(topic: string, partition: number, offset: string): void {
    const p = this.partitions.get(key(topic, partition));
    const o = BigInt(offset);
    if (p && o > p.confirmed) p.confirmed = o;
  }

  /** The broker refused the commit of `offset`: the partition is dirty again, to be retried. */
  commitFailed(topic: string, partition: number, offset: string): void {
    const p = this.partitions.get(key(topic, partition));
    if (p && p.committed === BigInt(offset)) p.committed = p.confirmed;
  }

  /** Partitions whose commit point moved since their last takeCommittable. */
  dirty(): { topic: string; partition: number }[] {
    const out: { topic: string; partition: number }[] = [];
    for (const p of this.partitions.values())
      if (this.commitPoint(p) > p.committed) out.push({ topic: p.topic, partition: p.partition });
    return out;
  }

  /** Records emitted and not settled. */
  get inFlight(): number {
    return this.count - this.settledCount();
  }

  private settledCount(): number {
    let n = 0;
    for (const p of this.partitions.values()) n += p.settled.size;
    return n;
  }

  /** Keeps only the assigned partitions (after a rebalance the others are redelivered elsewhere). */
  retain(assigned: { topic: string; partition: number }[]): void {
    const keep = new Set(assigned.map((a) => key(a.topic, a.partition)));
    for (const [k, p] of this.partitions) {
      if (!keep.has(k)) {
        this.count -= p.unsettled.length;
        this.partitions.delete(k);
      }
    }
  }

  /** Whether `offset` of the partition is still tracked as unsettled. */
  isUnsettled(topic: string, partition: number, offset: string): boolean {
    const p = this.partitions.get(key(topic, partition));
    if (!p) return false;
    const o = BigInt(offset);
    return p.unsettled.includes(o) && !p.settled.has(o);
  }

  clear(): void {
    this.partitions.clear();
    this.count = 0;
  }
}
