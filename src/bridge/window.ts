// The window node's engine (issue 14), free of Node-RED: the open windows of one Kafka partition, per
// group key. Records come in the partition's offset order; each one joins the windows its event time (or
// its place in the key's count) falls in, and the windows close as the watermark passes them.
//
// Windows are half-open spans [start, end) of event time in ms:
// - tumbling: [k·size, (k+1)·size); hopping: [k·advance, k·advance + size), so a record is in size/advance
//   of them; sliding: one window per record, the `size` ms up to and including its event time,
//   [t − size, t + 1), holding every record of the key in that span (a moving aggregate).
// - by count: the key's records numbered 0, 1, 2, …; tumbling [k·size, (k+1)·size), hopping
//   [k·advance, k·advance + size) of those numbers; a window is complete with its last record.
//
// The watermark is the highest event time seen, in the partition (default) or per key. A time window
// closes once the watermark reaches its end plus the grace period: a record whose every window is closed
// is late (the node sends it to its second output; it is never dropped silently). Count windows are never
// late. The state is JSON (accumulators, offsets as strings), so that it can be checkpointed and restored
// (snapshot / restore), and what the engine does depends only on the records it was given, in their order:
// restored state and the same records give the same results with the same ids.
import { MinHeap } from "../common/min-heap";
import { BridgeError } from "../common/errors";
import type { Aggregator } from "./aggregate";

export type WindowType = "tumbling" | "hopping" | "sliding";

export interface WindowSpec {
  type: WindowType;
  /** Event time (ms) or the key's record count. Sliding windows are by time only. */
  by: "time" | "count";
  /** Length: ms, or records. */
  size: number;
  /** Hopping: how far each window starts after the previous one (ms or records); tumbling: = size. */
  advance?: number;
  /** Time windows: how long after its end a window still takes records (ms). */
  graceMs: number;
  /** "final": one result when the window closes; "current": a result on every update. */
  emit: "final" | "current";
  /** Whose highest event time closes time windows: the partition's or the key's own. */
  watermark: "partition" | "key";
  /** Open windows (all keys) at most; a record that would open more fails. */
  maxOpenWindows: number;
}

export interface WindowRecord {
  key: string;
  /** Event time, ms. */
  time: number;
  /** Kafka offset. */
  offset: bigint;
  /** What the aggregations take (msg.payload by default). */
  value: unknown;
}

export interface WindowResult {
  key: string;
  /** Time windows: the span; count windows: the event times of its first and last records (end + 1). */
  start: number;
  end: number;
  /** Records in it. */
  count: number;
  /** The aggregate. */
  payload: unknown;
  /** false: an update of a window that is still open ("current" mode). */
  final: boolean;
  /** Lowest and highest offset of its records. */
  firstOffset: string;
  lastOffset: string;
  /** Values a collect left out past its limit. */
  truncated: number;
  /**
   * Deterministic: the same window of the same key has the same id in every run ("current" mode adds the
   * record count, so each update has its own).
   */
  id: string;
}

/** One open window. JSON (see the module comment). */
interface Win {
  start: number;
  end: number;
  count: number;
  accs: unknown[];
  minTime: number;
  maxTime: number;
  firstOffset: string;
  lastOffset: string;
}

/** A record kept for sliding windows still to come. */
interface Kept {
  time: number;
  offset: string;
  value: unknown;
}

interface KeyState {
  /** Highest event time of the key (watermark "key"). */
  wm: number;
  /** Records of the key so far (count windows). */
  seen: number;
  /** Open windows by start (time) or first record number (count). */
  windows: Map<number, Win>;
  /** Sliding windows: the key's records that a later window may still reach, in event-time order. */
  kept: Kept[];
  /** Watermark "key": the latest end of the key's windows an idle close closed (see closeIdle). */
  floor?: number;
}

/** A key's state as checkpointed. */
export interface KeySnapshot {
  wm: number | null;
  seen: number;
  windows: Win[];
  kept: Kept[];
  floor?: number;
}

export interface PartitionSnapshot {
  wm: number | null;
  /** The latest end of the windows an idle close closed (see closeIdle). */
  floor?: number;
}

export interface AddOutcome {
  results: WindowResult[];
  /** The record joined no window: every window it belongs in is closed. */
  late: boolean;
}

const NONE = Number.NEGATIVE_INFINITY;

function assertSpec(s: WindowSpec): void {
  const bad = (why: string) => new BridgeError("kafka-window.errors.bad-spec", why, false);
  if (!Number.isSafeInteger(s.size) || s.size <= 0)
    throw bad(`the window size must be a whole number above 0, not ${s.size}`);
  if (s.type === "hopping") {
    const a = s.advance;
    if (a === undefined || !Number.isSafeInteger(a) || a <= 0 || a > s.size)
      throw bad(`a hopping window's advance must be a whole number from 1 to its size (${s.size}), not ${a}`);
  }
  if (s.type === "sliding" && s.by !== "time") throw bad("sliding windows are by event time only");
  if (!Number.isFinite(s.graceMs) || s.graceMs < 0)
    throw bad(`the grace period must be 0 or more, not ${s.graceMs}`);
  if (!Number.isSafeInteger(s.maxOpenWindows) || s.maxOpenWindows <= 0)
    throw bad(`the open window limit must be a whole number above 0, not ${s.maxOpenWindows}`);
}

/** The open windows of one partition. */
export class PartitionWindows {
  private wm = NONE;
  /** The latest end of the windows an idle close closed: windows ending at or before it are closed. */
  private floor = NONE;
  private readonly keys = new Map<string, KeyState>();
  private open = 0;
  /** Keys whose state changed since takeChanged(). */
  private changed = new Set<string>();
  private readonly advance: number;
  /**
   * Time windows under the partition's watermark, every key's, by end: the ones a record's watermark closes
   * are at the top, so a record costs no scan of every key (with 100k keys open that scan made the node
   * 20 times slower). Entries of windows closed otherwise are dropped when they come up.
   */
  private readonly ends: MinHeap<EndEntry> | undefined;
  /**
   * Sliding windows under the partition's watermark: each key's kept records by time, so that a move of
   * the watermark prunes the keys whose oldest kept record it passed, not every key.
   */
  private readonly keptTimes: MinHeap<{ time: number; key: string }> | undefined;

  constructor(
    readonly spec: WindowSpec,
    private readonly aggregator: Aggregator,
  ) {
    assertSpec(spec);
    this.advance = spec.type === "hopping" ? (spec.advance as number) : spec.size;
    if (spec.by === "time" && spec.watermark === "partition") this.ends = new MinHeap(endFirst);
    if (spec.type === "sliding" && spec.watermark === "partition")
      this.keptTimes = new MinHeap((a, b) => a.time < b.time);
  }

  /** Open windows, all keys. */
  get openWindows(): number {
    return this.open;
  }

  /** Keys with open windows or kept records. */
  get keyCount(): number {
    return this.keys.size;
  }

  /**
   * Adds a record; resolves with the results it caused (updates, and windows it closed). All of it is
   * worked out first and then applied at once: a record whose value an aggregation refuses (or whose
   * window's result fails) changes nothing, so that trying it again counts it once.
   */
  async add(r: WindowRecord): Promise<AddOutcome> {
    if (!Number.isFinite(r.time))
      throw new BridgeError(
        "kafka-window.errors.no-time",
        `the record has no event time (${String(r.time)})`,
        false,
      );
    const k: KeyState = this.keys.get(r.key) ?? {
      wm: NONE,
      seen: 0,
      windows: new Map<number, Win>(),
      kept: [],
    };
    const plan =
      this.spec.by === "count"
        ? await this.planByCount(r, k)
        : this.spec.type === "sliding"
          ? await this.planSliding(r, k)
          : await this.planByTime(r, k);
    const updates =
      this.spec.emit === "current"
        ? await Promise.all(plan.all.map(([, after]) => this.resultOf(r.key, after, false)))
        : [];
    // what closes: the windows the new watermark passed (this key's or every key's), and count windows
    // this record completes
    const wm = plan.wm;
    const previousWm = this.wm;
    const closing: Closing[] = plan.complete.map(([w, after]) => ({ key: r.key, w, after }));
    // taken off the heap: the windows that close, and those this record updates (they go back)
    const taken: EndEntry[] = [];
    const kept: EndEntry[] = [];
    if (this.ends) {
      for (let e = this.ends.peek(); e && !this.isOpen(e.end, wm); e = this.ends.peek()) {
        this.ends.pop();
        taken.push(e);
        // closed otherwise since (an idle close, a restore): dropped
        if (this.keys.get(e.key)?.windows.get(e.start) !== e.w) continue;
        if (plan.touched.has(e.w)) kept.push(e);
        else closing.push({ key: e.key, w: e.w, after: e.w });
      }
    } else if (this.spec.by === "time")
      for (const w of k.windows.values())
        if (!this.isOpen(w.end, wm, k) && !plan.touched.has(w)) closing.push({ key: r.key, w, after: w });
    closing.sort(byEnd);
    let finals: WindowResult[];
    try {
      this.admit(plan.opened.length - closing.length);
      finals =
        this.spec.emit === "final"
          ? await Promise.all(closing.map((c) => this.resultOf(c.key, c.after, true)))
          : [];
    } catch (err) {
      // nothing changes: the windows go back as they were
      for (const e of taken) this.ends?.push(e);
      throw err;
    }
    for (const e of kept) this.ends?.push(e);

    // ---- apply ----
    if (this.spec.watermark === "key") k.wm = wm;
    else this.wm = wm;
    if (this.spec.by === "count") k.seen++;
    for (const w of plan.opened) {
      k.windows.set(w.start, w);
      this.open++;
      this.ends?.push({ end: w.end, start: w.start, key: r.key, w });
    }
    for (const [w, after] of plan.all) Object.assign(w, after);
    if (plan.keep) {
      let at = k.kept.length;
      while (at > 0 && k.kept[at - 1].time > r.time) at--;
      k.kept.splice(at, 0, plan.keep);
      this.keptTimes?.push({ time: plan.keep.time, key: r.key });
    }
    this.keys.set(r.key, k);
    this.changed.add(r.key);
    for (const c of closing) {
      const state = c.key === r.key ? k : this.keys.get(c.key);
      if (state?.windows.delete(c.w.start)) this.open--;
      this.changed.add(c.key);
    }
    if (this.spec.type === "sliding") {
      // records no sliding window to come can reach any more
      const prune = (name: string, state: KeyState) => {
        const n = state.kept.length;
        state.kept = state.kept.filter((x) => this.mayReach(x.time, wm, state));
        if (state.kept.length !== n) this.changed.add(name);
      };
      prune(r.key, k);
      // the partition's watermark reaches other keys' records only when it moves, and then only those
      // whose kept records it passed
      if (this.keptTimes && wm !== previousWm)
        for (let e = this.keptTimes.peek(); e && !this.mayReach(e.time, wm); e = this.keptTimes.peek()) {
          this.keptTimes.pop();
          const state = this.keys.get(e.key);
          if (!state || e.key === r.key) continue;
          prune(e.key, state);
          if (state.windows.size === 0 && state.kept.length === 0) this.keys.delete(e.key);
        }
    }
    for (const c of [{ key: r.key }, ...closing]) {
      const state = this.keys.get(c.key);
      if (
        state &&
        state.windows.size === 0 &&
        state.kept.length === 0 &&
        this.spec.by === "time" &&
        !this.floorMatters(state)
      )
        this.keys.delete(c.key);
    }
    // a count key with nothing open whose next record starts a window: its count starting at 0 again is
    // the same, so its state goes (a key seen once in a while costs nothing between its windows)
    if (this.spec.by === "count" && k.windows.size === 0 && k.seen % this.advance === 0)
      this.keys.delete(r.key);
    return { results: [...updates, ...finals], late: plan.joined === 0 };
  }

  /**
   * The partition went quiet (the idle timeout) at `time` (the wall clock): the time windows that ended by
   * then (their end plus the grace period) close, with their final results, in order; those still running
   * stay open. A record that comes later for a closed one is late: windows ending at or before the latest
   * end closed so (the partition's floor) are closed for every key, whatever the watermark says (a
   * watermark moved to the clock would make every later record of a stream behind the clock late). Count
   * windows have no end: they all close.
   */
  async closeIdle(time: number): Promise<WindowResult[]> {
    if (this.spec.by === "count") return this.closeAll();
    const closing: Closing[] = [];
    for (const [key, k] of this.keys)
      for (const w of k.windows.values())
        if (!this.isOpen(w.end, time, k)) closing.push({ key, w, after: w });
    closing.sort(byEnd);
    const results =
      this.spec.emit === "final"
        ? await Promise.all(closing.map((c) => this.resultOf(c.key, c.w, true)))
        : [];
    for (const c of closing) {
      const k = this.keys.get(c.key);
      if (this.spec.watermark === "key") {
        if (k && (k.floor === undefined || c.w.end > k.floor)) k.floor = c.w.end;
      } else if (c.w.end > this.floor) this.floor = c.w.end;
      if (k?.windows.delete(c.w.start)) this.open--;
      this.changed.add(c.key);
    }
    for (const [key, k] of this.keys) {
      if (this.spec.type === "sliding") {
        const n = k.kept.length;
        k.kept = k.kept.filter((x) => this.mayReach(x.time, this.watermarkOf(k), k));
        if (k.kept.length !== n) this.changed.add(key);
      }
      if (k.windows.size === 0 && k.kept.length === 0 && !this.floorMatters(k)) {
        this.keys.delete(key);
        this.changed.add(key);
      }
    }
    return results;
  }

  /** Closes every open window (the end of a stream): their final results, in order. */
  async closeAll(): Promise<WindowResult[]> {
    const closing: Closing[] = [];
    for (const [key, k] of this.keys) for (const w of k.windows.values()) closing.push({ key, w, after: w });
    closing.sort(byEnd);
    // "current" mode sent every update already
    const results =
      this.spec.emit === "final"
        ? await Promise.all(closing.map((c) => this.resultOf(c.key, c.w, true)))
        : [];
    for (const key of this.keys.keys()) this.changed.add(key);
    this.keys.clear();
    this.ends?.clear();
    this.keptTimes?.clear();
    this.open = 0;
    return results;
  }

  /** The keys whose state changed since the last call (for a checkpoint), and forgets them. */
  takeChanged(): string[] {
    const out = [...this.changed];
    this.changed = new Set();
    return out;
  }

  /** The key goes into the next takeChanged() again (its checkpoint failed). */
  markChanged(key: string): void {
    this.changed.add(key);
  }

  snapshotKey(key: string): KeySnapshot | undefined {
    const k = this.keys.get(key);
    if (!k) return undefined;
    return {
      wm: k.wm === NONE ? null : k.wm,
      seen: k.seen,
      windows: [...k.windows.values()].map((w) => ({ ...w, accs: structuredClone(w.accs) })),
      kept: k.kept.map((x) => ({ ...x })),
      ...(k.floor !== undefined ? { floor: k.floor } : {}),
    };
  }

  snapshotPartition(): PartitionSnapshot {
    const s: PartitionSnapshot = { wm: this.wm === NONE ? null : this.wm };
    if (this.floor !== NONE) s.floor = this.floor;
    return s;
  }

  restorePartition(s: PartitionSnapshot): void {
    this.wm = s.wm ?? NONE;
    this.floor = s.floor ?? NONE;
  }

  /** Puts a checkpointed key back (undefined: the key has nothing open). */
  restoreKey(key: string, s: KeySnapshot | undefined): void {
    const old = this.keys.get(key);
    if (old) this.open -= old.windows.size;
    this.keys.delete(key);
    if (!s) return;
    const windows = new Map<number, Win>();
    for (const w of s.windows) {
      const copy = { ...w, accs: structuredClone(w.accs) };
      windows.set(w.start, copy);
      this.ends?.push({ end: copy.end, start: copy.start, key, w: copy });
    }
    this.keys.set(key, {
      wm: s.wm ?? NONE,
      seen: s.seen,
      windows,
      kept: s.kept.map((x) => ({ ...x })),
      ...(s.floor !== undefined ? { floor: s.floor } : {}),
    });
    for (const x of s.kept) this.keptTimes?.push({ time: x.time, key });
    this.open += windows.size;
  }

  // ---- planning: what a record does, before anything is changed ----

  /** The watermark a key's record starts from: the partition's, or the key's own (watermark "key"). */
  private watermarkOf(k: KeyState): number {
    return this.spec.watermark === "key" ? k.wm : this.wm;
  }

  /** The end up to which an idle close closed windows: the partition's, or the key's (watermark "key"). */
  private floorOf(k: KeyState | undefined): number {
    return this.spec.watermark === "key" ? (k?.floor ?? NONE) : this.floor;
  }

  /** Whether a time window ending at `end` takes records: not past the watermark, not closed idle. */
  private isOpen(end: number, wm: number, k?: KeyState): boolean {
    return end + this.spec.graceMs > wm && end > this.floorOf(k);
  }

  /** Whether a sliding window still to come (of a record at most `size` later) may reach time `t`. */
  private mayReach(t: number, wm: number, k?: KeyState): boolean {
    return t + this.spec.size + 1 + this.spec.graceMs > wm && t + this.spec.size + 1 > this.floorOf(k);
  }

  /** Whether a key with nothing open must stay: its idle-close floor still closes windows its watermark does not. */
  private floorMatters(k: KeyState): boolean {
    return k.floor !== undefined && k.floor + this.spec.graceMs > k.wm;
  }

  private newWindow(start: number, end: number): Win {
    return { start, end, count: 0, accs: [], minTime: NONE, maxTime: NONE, firstOffset: "", lastOffset: "" };
  }

  private async planByTime(r: WindowRecord, k: KeyState): Promise<Plan> {
    const wm = Math.max(this.watermarkOf(k), r.time);
    const plan = emptyPlan(wm);
    const { size } = this.spec;
    const starts: number[] = [];
    for (let s = Math.floor(r.time / this.advance) * this.advance; s > r.time - size; s -= this.advance)
      if (this.isOpen(s + size, wm, k)) starts.unshift(s);
    for (const s of starts) {
      let w = k.windows.get(s);
      let accs = w?.accs;
      if (!w) {
        w = this.newWindow(s, s + size);
        plan.opened.push(w);
        accs = await this.aggregator.init();
      }
      await this.plan(plan, w, accs as unknown[], w.count, r, true);
    }
    plan.joined = starts.length;
    return plan;
  }

  private async planSliding(r: WindowRecord, k: KeyState): Promise<Plan> {
    const wm = Math.max(this.watermarkOf(k), r.time);
    const plan = emptyPlan(wm);
    // late: the record's own window is closed (it joins no window then, not even later ones)
    if (!this.isOpen(r.time + 1, wm, k)) return plan;
    const ownStart = r.time - this.spec.size;
    for (const w of k.windows.values())
      if (w.start <= r.time && r.time < w.end && this.isOpen(w.end, wm, k))
        await this.plan(plan, w, w.accs, w.count, r, true);
    if (!k.windows.has(ownStart)) {
      // the record's own window, with the key's records already in its span
      const w = this.newWindow(ownStart, r.time + 1);
      plan.opened.push(w);
      let accs = await this.aggregator.init();
      let count = 0;
      for (const x of k.kept)
        if (x.time >= ownStart && x.time <= r.time) {
          const earlier = { key: r.key, time: x.time, offset: BigInt(x.offset), value: x.value };
          accs = await this.aggregator.add(accs, { value: x.value, time: x.time, seq: earlier.offset });
          count++;
          stamp(w, earlier);
        }
      await this.plan(plan, w, accs, count, r, true);
    }
    plan.all.sort((a, b) => a[0].start - b[0].start);
    plan.joined = plan.all.length;
    plan.keep = { time: r.time, offset: String(r.offset), value: r.value };
    return plan;
  }

  private async planByCount(r: WindowRecord, k: KeyState): Promise<Plan> {
    const plan = emptyPlan(NONE);
    const n = k.seen;
    const { size } = this.spec;
    const starts: number[] = [];
    for (let s = Math.floor(n / this.advance) * this.advance; s > n - size && s >= 0; s -= this.advance)
      starts.unshift(s);
    for (const s of starts) {
      let w = k.windows.get(s);
      let accs = w?.accs;
      if (!w) {
        w = this.newWindow(s, s + size);
        plan.opened.push(w);
        accs = await this.aggregator.init();
      }
      await this.plan(plan, w, accs as unknown[], w.count, r, n !== s + size - 1);
    }
    plan.joined = starts.length;
    return plan;
  }

  /** The record's contribution to window `w` (whose accumulators are `accs`), planned. */
  private async plan(
    plan: Plan,
    w: Win,
    accs: unknown[],
    count: number,
    r: WindowRecord,
    stillOpen: boolean,
  ): Promise<void> {
    const after: Win = {
      ...w,
      accs: await this.aggregator.add(accs, { value: r.value, time: r.time, seq: r.offset }),
      count: count + 1,
    };
    stamp(after, r);
    const entry: Planned = [w, after];
    plan.all.push(entry);
    plan.touched.add(w);
    if (!stillOpen) plan.complete.push(entry);
  }

  // ---- windows ----

  private admit(opening: number): void {
    if (opening > 0 && this.open + opening > this.spec.maxOpenWindows)
      throw new BridgeError(
        "kafka-window.errors.too-many-windows",
        `the record would open ${opening} window(s) more than the limit of ${this.spec.maxOpenWindows} open windows (raise it, shorten the windows or the grace period, or group by fewer keys)`,
        false,
      );
  }

  /** A window's result (`w` as the record leaves it: the window itself is not changed yet). */
  private async resultOf(key: string, w: Win, final: boolean): Promise<WindowResult> {
    const byCount = this.spec.by === "count";
    return {
      key,
      start: byCount ? w.minTime : w.start,
      end: byCount ? w.maxTime + 1 : w.end,
      count: w.count,
      payload: await this.aggregator.result(w.accs),
      final,
      firstOffset: w.firstOffset,
      lastOffset: w.lastOffset,
      truncated: this.aggregator.truncated(w.accs),
      // count windows have no span of their own: the offset of their first record names them
      id: `${key}@${byCount ? `#${w.firstOffset}` : `${w.start}-${w.end}`}${final ? "" : `/${w.count}`}`,
    };
  }
}

type Planned = [w: Win, after: Win];

interface Plan {
  /** The watermark after the record (time windows). */
  wm: number;
  /** Windows the record opens. */
  opened: Win[];
  /** Every window the record joins, with its new accumulators and count ("current" mode emits them). */
  all: Planned[];
  touched: Set<Win>;
  /** Count windows it completes. */
  complete: Planned[];
  /** Windows joined (0: the record is late). */
  joined: number;
  /** Sliding: the record, kept for windows still to come. */
  keep?: Kept;
}

interface Closing {
  key: string;
  w: Win;
  /** The window with this record's contribution (itself when the record did not join it). */
  after: Win;
}

/** The order results of windows closing together come in: by end, start, then key. */
function byEnd(a: Closing, b: Closing): number {
  return a.w.end - b.w.end || a.w.start - b.w.start || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

function emptyPlan(wm: number): Plan {
  return { wm, opened: [], all: [], touched: new Set(), complete: [], joined: 0 };
}

/** Widens a window's times and offsets by a record. */
function stamp(w: Win, r: WindowRecord): void {
  w.minTime = w.minTime === NONE ? r.time : Math.min(w.minTime, r.time);
  w.maxTime = Math.max(w.maxTime, r.time);
  const o = String(r.offset);
  if (w.firstOffset === "" || r.offset < BigInt(w.firstOffset)) w.firstOffset = o;
  if (w.lastOffset === "" || r.offset > BigInt(w.lastOffset)) w.lastOffset = o;
}

/** A window in the heap of window ends. */
interface EndEntry {
  end: number;
  start: number;
  key: string;
  w: Win;
}

/** Windows by end (then start and key, as results are ordered: byEnd). */
const endFirst = (a: EndEntry, b: EndEntry): boolean =>
  a.end !== b.end ? a.end < b.end : a.start !== b.start ? a.start < b.start : a.key < b.key;
