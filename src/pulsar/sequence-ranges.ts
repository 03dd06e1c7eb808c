// A set of sequence ids kept as sorted, merged ranges: consecutive ids (the usual case, one per Kafka offset)
// extend the last range in O(1); a gap starts a new one. Bounded: past `maxRanges`, the oldest range is
// dropped and everything up to it counts as in the set (the floor), so memory stays small on long runs.

export class SequenceRanges {
  private readonly lo: number[] = [];
  private readonly hi: number[] = [];
  /** Every id at or below it counts as in the set. */
  private floor = -Infinity;

  constructor(private readonly maxRanges = 4096) {}

  add(id: number): void {
    this.addRange(id, id);
  }

  /** Adds every id from `first` to `last` (inclusive). */
  addRange(first: number, last: number): void {
    if (last <= this.floor || last < first) return;
    const from = Math.max(first, this.floor + 1);
    const n = this.hi.length;
    if (n === 0 || from > this.hi[n - 1] + 1) {
      this.lo.push(from);
      this.hi.push(last);
      this.bound();
      return;
    }
    if (from >= this.lo[n - 1]) {
      this.hi[n - 1] = Math.max(this.hi[n - 1], last);
      return;
    }
    // at or below the last range (rare: a resend, or ids that fill a gap): merge with what it touches
    let i = this.find(from);
    if (i < 0 || this.hi[i] + 1 < from) i++; // the first range that touches [from, last], if any
    const j = this.find(last + 1); // the last range that touches it
    if (j < i) {
      this.lo.splice(i, 0, from);
      this.hi.splice(i, 0, last);
      this.bound();
      return;
    }
    const lo = Math.min(from, this.lo[i]);
    const hi = Math.max(last, this.hi[j]);
    this.lo.splice(i, j - i + 1, lo);
    this.hi.splice(i, j - i + 1, hi);
  }

  /** Adds the ids of `other` at or below `max` (its floor too, as far as `max`). */
  addFrom(other: SequenceRanges, max: number): void {
    this.raiseFloor(Math.min(other.floor, max));
    for (let i = 0; i < other.lo.length && other.lo[i] <= max; i++)
      this.addRange(other.lo[i], Math.min(other.hi[i], max));
  }

  has(id: number): boolean {
    if (id <= this.floor) return true;
    const i = this.find(id);
    return i >= 0 && id <= this.hi[i];
  }

  get ranges(): number {
    return this.lo.length;
  }

  private raiseFloor(floor: number): void {
    if (floor <= this.floor) return;
    this.floor = floor;
    let drop = 0;
    while (drop < this.hi.length && this.hi[drop] <= floor) drop++;
    this.lo.splice(0, drop);
    this.hi.splice(0, drop);
  }

  private bound(): void {
    if (this.lo.length <= this.maxRanges) return;
    this.lo.shift();
    this.floor = this.hi.shift() as number;
  }

  /** The index of the last range starting at or below `id`, or -1. */
  private find(id: number): number {
    let a = 0;
    let b = this.lo.length - 1;
    let found = -1;
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
