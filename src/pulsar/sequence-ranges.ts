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
    const n = this.hi.length;
    if (id <= this.floor) return;
    if (n === 0 || id > this.hi[n - 1] + 1) {
      this.lo.push(id);
      this.hi.push(id);
      if (this.lo.length > this.maxRanges) {
        this.lo.shift();
        this.floor = this.hi.shift() as number;
      }
      return;
    }
    if (id === this.hi[n - 1] + 1) {
      this.hi[n - 1] = id;
      return;
    }
    // an id at or below the last range (rare: a resend, or an id sent out of order)
    const i = this.find(id);
    if (i >= 0 && id <= this.hi[i]) return;
    // between range i (or none) and range i + 1
    const joinsLeft = i >= 0 && this.hi[i] + 1 === id;
    const joinsRight = i + 1 < this.lo.length && this.lo[i + 1] - 1 === id;
    if (joinsLeft && joinsRight) {
      this.hi[i] = this.hi[i + 1];
      this.lo.splice(i + 1, 1);
      this.hi.splice(i + 1, 1);
    } else if (joinsLeft) this.hi[i] = id;
    else if (joinsRight) this.lo[i + 1] = id;
    else {
      this.lo.splice(i + 1, 0, id);
      this.hi.splice(i + 1, 0, id);
    }
  }

  has(id: number): boolean {
    if (id <= this.floor) return true;
    const i = this.find(id);
    return i >= 0 && id <= this.hi[i];
  }

  get ranges(): number {
    return this.lo.length;
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
