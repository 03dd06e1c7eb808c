// A set of sequence ids kept as sorted, merged ranges: consecutive ids (the usual case, one per Kafka offset)
// extend the last range in O(1); a gap starts a new one. Bounded: past `maxRanges`, the oldest range is
// forgotten, so memory stays small on long runs. The set proves that a message was stored: forgetting loses
// a proof (a duplicate receipt for such an id is then unproven, an error), it never invents one.

export class SequenceRanges {
  private lo: number[] = [];
  private hi: number[] = [];
  /** Ranges before this index are forgotten (dropped in bulk, so that a bound costs O(1) per add). */
  private head = 0;

  constructor(private readonly maxRanges = 4096) {}

  add(id: number): void {
    this.addRange(id, id);
  }

  /** Adds every id from `first` to `last` (inclusive). */
  addRange(first: number, last: number): void {
    if (last < first) return;
    const n = this.hi.length;
    if (n === this.head || first > this.hi[n - 1] + 1) {
      this.lo.push(first);
      this.hi.push(last);
      this.bound();
      return;
    }
    if (first >= this.lo[n - 1]) {
      this.hi[n - 1] = Math.max(this.hi[n - 1], last);
      return;
    }
    // at or below the last range (rare: a resend, or ids that fill a gap): merge with what it touches
    let i = this.find(first);
    if (i < this.head || this.hi[i] + 1 < first) i = Math.max(i + 1, this.head); // the first range touching it
    const j = this.find(last + 1); // the last range that touches it
    if (j < i) {
      this.lo.splice(i, 0, first);
      this.hi.splice(i, 0, last);
      this.bound();
      return;
    }
    const lo = Math.min(first, this.lo[i]);
    const hi = Math.max(last, this.hi[j]);
    this.lo.splice(i, j - i + 1, lo);
    this.hi.splice(i, j - i + 1, hi);
  }

  /** Adds the ids of `other` at or below `max`. */
  addFrom(other: SequenceRanges, max: number): void {
    for (let i = other.head; i < other.lo.length && other.lo[i] <= max; i++)
      this.addRange(other.lo[i], Math.min(other.hi[i], max));
  }

  has(id: number): boolean {
    const i = this.find(id);
    return i >= this.head && id <= this.hi[i];
  }

  get ranges(): number {
    return this.lo.length - this.head;
  }

  private bound(): void {
    if (this.lo.length - this.head <= this.maxRanges) return;
    this.head++;
    if (this.head >= this.maxRanges) {
      this.lo = this.lo.slice(this.head);
      this.hi = this.hi.slice(this.head);
      this.head = 0;
    }
  }

  /** The index of the last range starting at or below `id`, or head - 1. */
  private find(id: number): number {
    let a = this.head;
    let b = this.lo.length - 1;
    let found = this.head - 1;
    while (a <= b) {
      const m = (a + b) >> 1;
      if (this.lo[m] <= id) {
        found = m;
        a = m + 1;
      } else b = m - 1;
    }
    return found;
  }
}

/**
 * Per partition topic and producer name: the sequence ids a broker answered as duplicates that no producer
 * of the client could prove stored. A later producer of that name, whose broker's last sequence id is above
 * them, does not take that for a proof: the broker passed them, it did not store them. Bounded like the
 * ranges; holes are rare (a record refused while later ones of its stream were stored).
 */
export class SequenceHoles {
  private readonly byName = new Map<string, SequenceRanges>();

  of(topic: string, producerName: string): SequenceRanges {
    const k = `${topic}\u0000${producerName}`;
    let h = this.byName.get(k);
    if (!h) this.byName.set(k, (h = new SequenceRanges(1024)));
    return h;
  }
}
