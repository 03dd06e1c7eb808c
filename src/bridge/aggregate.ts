// What a window computes over the values of its records (issue 14): the builtin aggregations, several at
// once into one object, and a custom reduce given as functions (the window node builds them from JSONata
// expressions). An accumulator is plain JSON data, so that window state can be checkpointed and restored.
import { BridgeError } from "../common/errors";

export type AggregationKind = "count" | "sum" | "min" | "max" | "mean" | "first" | "last" | "collect";

export const AGGREGATION_KINDS: readonly AggregationKind[] = [
  "count",
  "sum",
  "min",
  "max",
  "mean",
  "first",
  "last",
  "collect",
];

export interface AggregationSpec {
  /** The property of the result object (with one aggregation and no name: the result is its value alone). */
  name: string;
  kind: AggregationKind;
  /** collect: at most this many values (the first ones by event time); beyond it the result says so. */
  limit?: number;
}

/** One value a record contributes, with the order it is compared in for first/last. */
export interface Contribution {
  value: unknown;
  /** Event time (ms). */
  time: number;
  /** Arrival order in the record's partition (its Kafka offset): ties of event time keep it. */
  seq: bigint;
}

/** A custom reduce: a start value, one step per record, a final shape (JSONata in the window node). */
export interface CustomReduce {
  init(): Promise<unknown>;
  accumulate(acc: unknown, value: unknown, context: { time: number }): Promise<unknown>;
  result(acc: unknown): Promise<unknown>;
}

/** The accumulator of one aggregation: JSON data only (see checkpointing in window.ts). */
type Acc = unknown;

export const COLLECT_LIMIT = 1000;

function numberOf(v: unknown, kind: AggregationKind): number {
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n))
    throw new BridgeError(
      "kafka-window.errors.not-a-number",
      `${kind} needs a number, not ${JSON.stringify(v) ?? String(v)}`,
      false,
    );
  return n;
}

interface Stamped {
  time: number;
  /** Arrival order, as a decimal string (JSON). */
  seq: string;
}

/** Whether `a` comes before the contribution (time, seq): by event time, then arrival. */
function before(a: Stamped, time: number, seq: bigint): boolean {
  return a.time < time || (a.time === time && BigInt(a.seq) < seq);
}

/**
 * The aggregations of one window node. The accumulators are JSON: numbers, arrays and objects, offsets
 * as strings.
 */
export class Aggregator {
  constructor(
    readonly specs: readonly AggregationSpec[],
    private readonly custom?: CustomReduce,
  ) {
    if (specs.length === 0 && !custom)
      throw new BridgeError(
        "kafka-window.errors.no-aggregation",
        "a window needs at least one aggregation",
        false,
      );
    for (const s of specs)
      if (!AGGREGATION_KINDS.includes(s.kind))
        throw new BridgeError(
          "kafka-window.errors.bad-aggregation",
          `unknown aggregation "${String(s.kind)}"`,
          false,
        );
  }

  /** Whether a custom reduce is part of it. */
  get hasCustom(): boolean {
    return this.custom !== undefined;
  }

  /** A fresh accumulator per aggregation (and the custom reduce's, last). */
  async init(): Promise<Acc[]> {
    const accs: Acc[] = this.specs.map((s) => {
      switch (s.kind) {
        case "count":
          return 0;
        case "sum":
          return 0;
        case "mean":
          return { sum: 0, n: 0 };
        case "min":
        case "max":
        case "first":
        case "last":
          return null;
        case "collect":
          return { values: [], dropped: 0 };
      }
    });
    if (this.custom) accs.push(await this.custom.init());
    return accs;
  }

  /** Adds one record's contribution to the accumulators (in place where they are objects). */
  async add(accs: Acc[], c: Contribution): Promise<Acc[]> {
    const out = accs.slice();
    this.specs.forEach((s, i) => {
      const acc = out[i];
      switch (s.kind) {
        case "count":
          out[i] = (acc as number) + 1;
          return;
        case "sum":
          out[i] = (acc as number) + numberOf(c.value, s.kind);
          return;
        case "mean": {
          const m = acc as { sum: number; n: number };
          out[i] = { sum: m.sum + numberOf(c.value, s.kind), n: m.n + 1 };
          return;
        }
        case "min":
        case "max": {
          const v = numberOf(c.value, s.kind);
          out[i] =
            acc === null ? v : s.kind === "min" ? Math.min(acc as number, v) : Math.max(acc as number, v);
          return;
        }
        case "first":
        case "last": {
          const cur = acc as (Stamped & { value: unknown }) | null;
          // first: the earliest by event time (of equal times, the first to arrive); last: the latest
          const take =
            cur === null || (s.kind === "first" ? !before(cur, c.time, c.seq) : before(cur, c.time, c.seq));
          if (take) out[i] = { value: c.value, time: c.time, seq: String(c.seq) };
          return;
        }
        case "collect": {
          const col = acc as { values: (Stamped & { value: unknown })[]; dropped: number };
          const limit = s.limit ?? COLLECT_LIMIT;
          const values = col.values.slice();
          // kept in event-time order; beyond the limit the latest ones are dropped and counted
          let at = values.length;
          while (at > 0 && !before(values[at - 1], c.time, c.seq)) at--;
          values.splice(at, 0, { value: c.value, time: c.time, seq: String(c.seq) });
          let dropped = col.dropped;
          if (values.length > limit) {
            values.pop();
            dropped++;
          }
          out[i] = { values, dropped };
          return;
        }
      }
    });
    if (this.custom)
      out[this.specs.length] = await this.custom.accumulate(out[this.specs.length], c.value, {
        time: c.time,
      });
    return out;
  }

  /** collect: how many values each collect left out past its limit (0 when none did). */
  truncated(accs: Acc[]): number {
    let n = 0;
    this.specs.forEach((s, i) => {
      if (s.kind === "collect") n += (accs[i] as { dropped: number }).dropped;
    });
    return n;
  }

  /**
   * The window's result: one aggregation without a custom reduce gives its value alone when it has no
   * name; otherwise an object with one property per aggregation (the custom reduce's under "reduce", or
   * alone when it is the only one).
   */
  async result(accs: Acc[]): Promise<unknown> {
    const values = this.specs.map((s, i) => valueOf(s, accs[i]));
    const custom = this.custom ? await this.custom.result(accs[this.specs.length]) : undefined;
    if (this.specs.length === 0) return custom;
    if (this.specs.length === 1 && !this.custom && !this.specs[0]?.name) return values[0];
    const out: Record<string, unknown> = {};
    this.specs.forEach((s, i) => (out[s.name || s.kind] = values[i]));
    if (this.custom) out.reduce = custom;
    return out;
  }
}

function valueOf(s: AggregationSpec, acc: Acc): unknown {
  switch (s.kind) {
    case "count":
    case "sum":
    case "min":
    case "max":
      return acc;
    case "mean": {
      const m = acc as { sum: number; n: number };
      return m.n === 0 ? null : m.sum / m.n;
    }
    case "first":
    case "last":
      return acc === null ? null : (acc as { value: unknown }).value;
    case "collect": {
      const col = acc as { values: { value: unknown }[]; dropped: number };
      return col.values.map((v) => v.value);
    }
  }
}

/**
 * The window node's aggregation list: comma-separated `kind` or `name:kind` items, collect with an
 * optional limit (`collect(50)`); e.g. "mean" (the result is the mean alone) or "avg:mean, peak:max, n:count".
 */
export function parseAggregations(text: string): AggregationSpec[] {
  const specs: AggregationSpec[] = [];
  const names = new Set<string>();
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const m = /^(?:([A-Za-z_$][\w$]*)\s*:\s*)?([a-z]+)(?:\(\s*(\d+)\s*\))?$/.exec(item);
    const kind = m?.[2] as AggregationKind | undefined;
    if (!m || !kind || !AGGREGATION_KINDS.includes(kind))
      throw new BridgeError(
        "kafka-window.errors.bad-aggregation",
        `"${item}" is not an aggregation: write kind or name:kind, kind one of ${AGGREGATION_KINDS.join(", ")} (collect(limit) too)`,
        false,
      );
    if (m[3] !== undefined && kind !== "collect")
      throw new BridgeError(
        "kafka-window.errors.bad-aggregation",
        `only collect takes a limit: "${item}"`,
        false,
      );
    const name = m[1] ?? "";
    const key = name || kind;
    if (names.has(key))
      throw new BridgeError(
        "kafka-window.errors.bad-aggregation",
        `two aggregations are named "${key}": give them names (name:kind)`,
        false,
      );
    names.add(key);
    const limit = m[3] === undefined ? undefined : Number(m[3]);
    if (limit !== undefined && (limit < 1 || limit > COLLECT_LIMIT * 100))
      throw new BridgeError(
        "kafka-window.errors.bad-aggregation",
        `collect's limit must be between 1 and ${COLLECT_LIMIT * 100}`,
        false,
      );
    specs.push(limit === undefined ? { name, kind } : { name, kind, limit });
  }
  return specs;
}
