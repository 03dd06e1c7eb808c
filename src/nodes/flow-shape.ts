// What the deployed flows wire after a node: the nodes a msg it sends can reach (through wires and link
// nodes), read from the flow configuration Node-RED keeps, for warnings about flow shapes the bridge cannot
// make lossless.
import type { Collector, NodeKinds, Reach } from "../bridge/settlement";
import type { RED } from "./red";

interface WiredConfig {
  id: string;
  type?: string;
  name?: string;
  wires?: string[][];
  /** link out: the link in nodes it goes to */
  links?: string[];
  /** link out: "link" (to its link in nodes) or "return" (to the link call that called) */
  mode?: string;
  /** a subflow's template: the nodes its input port is wired to */
  in?: { wires?: { id: string }[] }[];
  stream?: unknown;
  effectivelyOnce?: unknown;
  /** pulsar-out: its topic setting and where it comes from ("str": fixed or a template, "msg") */
  topic?: unknown;
  topicType?: unknown;
  /** disabled */
  d?: unknown;
}

/**
 * Core nodes that finish msgs as a group (SettlementOptions.groups): join, batch and sort call done() for
 * every msg of a group they give up on and done(error) for one of them, sending nothing.
 */
export const GROUP_NODES: ReadonlySet<string> = new Set(["join", "batch", "sort"]);

/** Nodes that hand msgs on in ways the wires do not show (Catch, Status, Complete get them from anywhere). */
const WATCHERS = new Set(["catch", "status", "complete"]);

/**
 * What each node of the deployed flows can still do with a record's msg it holds (Reach, for the ordered
 * pipeline): an effectively-once pulsar-out whose outputs lead to no other is a `sink` (when a partition's
 * records may go to several streams: more than one such node, or a topic set per msg); a node from which
 * no wire or link leads to an effectively-once pulsar-out is `inert` (a kafka-window's wires count from its
 * late output only: its results hold none of the records); the rest is `opaque`: a node that
 * leads to one, a subflow instance, a link call or a link out returning to one (where they lead depends on
 * the call), a node the config does not name (inside a subflow instance), and every node when a Catch,
 * Status or Complete node leads to an effectively-once pulsar-out (any node's msg may go there then).
 */
export function reachOf(RED: RED): (nodeId: string) => Reach {
  const all = new Map<string, WiredConfig>();
  RED.nodes.eachNode((n: WiredConfig) => {
    all.set(n.id, n);
  });
  const isSink = (n: WiredConfig) =>
    n.type === "pulsar-out" && (n.effectivelyOnce === true || n.effectivelyOnce === "true");
  const isOpaque = (n: WiredConfig) =>
    (n.type ?? "").startsWith("subflow:") ||
    n.type === "link call" ||
    (n.type === "link out" && n.mode === "return");
  const leadsToSink = new Map<string, boolean>();
  /** Whether a msg `id` sends can reach a sink or an opaque node (not counting `id` itself, unless in a loop). */
  const leads = (id: string): boolean => {
    const known = leadsToSink.get(id);
    if (known !== undefined) return known;
    const seen = new Set<string>();
    const next = (n: WiredConfig | undefined) => [
      // a window's results hold none of the records it takes; its late output sends the records themselves
      ...(n?.type === "kafka-window" ? (n.wires?.[1] ?? []) : (n?.wires ?? []).flat()),
      ...(n?.type === "link out" && n.mode !== "return" ? (n.links ?? []) : []),
    ];
    const queue = next(all.get(id));
    let found = false;
    while (queue.length > 0 && !found) {
      const at = queue.shift() as string;
      if (seen.has(at)) continue;
      seen.add(at);
      const n = all.get(at);
      // a wire to a node that is not in the config: nothing is known of it
      if (!n) found = true;
      else if (n.d === true) continue;
      else if (isSink(n) || isOpaque(n)) found = true;
      else queue.push(...next(n));
    }
    leadsToSink.set(id, found);
    return found;
  };
  let watched = false;
  for (const n of all.values()) if (n.d !== true && WATCHERS.has(n.type ?? "") && leads(n.id)) watched = true;
  if (watched) return () => "opaque";
  // One effectively-once pulsar-out of a fixed topic: each Kafka partition's records go to one stream, whose
  // gate keeps their order by itself, so an admission there frees nothing (and is not tracked: the sink
  // counts as opaque).
  const sinks = [...all.values()].filter((n) => n.d !== true && isSink(n));
  const single =
    sinks.length === 1 &&
    (sinks[0].topicType ?? "str") === "str" &&
    typeof sinks[0].topic === "string" &&
    sinks[0].topic !== "" &&
    !sinks[0].topic.includes("{{");
  return (id) => {
    const n = all.get(id);
    if (!n || isOpaque(n)) return "opaque";
    if (isSink(n)) return leads(id) || single ? "opaque" : "sink";
    return leads(id) ? "opaque" : "inert";
  };
}

/** The deployed flows' nodes by id, and where a msg a node sends goes next. */
function wiring(RED: RED): { all: Map<string, WiredConfig>; next: (n: WiredConfig | undefined) => string[] } {
  const all = new Map<string, WiredConfig>();
  RED.nodes.eachNode((n: WiredConfig) => {
    all.set(n.id, n);
  });
  const calls = [...all.values()].filter((n) => n.type === "link call");
  const next = (n: WiredConfig | undefined): string[] => {
    if (!n) return [];
    const to = (n.wires ?? []).flat();
    if (n.type === "link out" && n.mode === "return")
      for (const c of calls) to.push(...(c.wires ?? []).flat());
    else if (n.type === "link out" || n.type === "link call") to.push(...(n.links ?? []));
    else if (n.type?.startsWith("subflow:")) {
      const template = all.get(n.type.slice("subflow:".length));
      for (const port of template?.in ?? []) for (const w of port.wires ?? []) to.push(w.id);
    }
    return to;
  };
  return { all, next };
}

/**
 * The configs of every node reachable from node `id`'s outputs (not `id` itself, unless in a loop): through
 * wires, link out → link in, link call → link in (and a returning link out back to every link call), and
 * into a subflow instance's template (its input port's wires; the instance's wires go on after it).
 */
export function downstreamOf(RED: RED, id: string): WiredConfig[] {
  const { all, next } = wiring(RED);
  const seen = new Set<string>();
  const out: WiredConfig[] = [];
  const queue = next(all.get(id));
  while (queue.length > 0) {
    const at = queue.shift() as string;
    if (seen.has(at)) continue;
    seen.add(at);
    const n = all.get(at);
    if (!n) continue;
    out.push(n);
    queue.push(...next(n));
  }
  return out;
}

/** The nodes of `type` from whose outputs node `id` can be reached (the kafka-in nodes feeding a window). */
export function sourcesOf(RED: RED, id: string, type: string): WiredConfig[] {
  const out: WiredConfig[] = [];
  RED.nodes.eachNode((n: WiredConfig) => {
    if (n.type === type && n.d !== true) out.push(n);
  });
  return out.filter((n) => downstreamOf(RED, n.id).some((d) => d.id === id));
}

/**
 * Core split nodes in stream mode after node `id`: such a split keeps the end of one msg's text and sends it
 * with the next msg's, so that part rides on a later record: settled (or failed and replayed) with that
 * record, not its own.
 */
export function streamingSplitsAfter(RED: RED, id: string): WiredConfig[] {
  return downstreamOf(RED, id).filter(
    (n) => n.type === "split" && (n.stream === true || n.stream === "true"),
  );
}

/**
 * Core nodes after node `id` that send a group once they hold `count` msgs of it (join in manual mode with
 * a count, batch by count), with their count and the records they hold then (`needs`: the count times the
 * records each msg reaching them holds, which joins and batches before them multiply, and `perMsg` for the
 * source's msgs: batch output): a source that lets fewer of its records be in flight than such nodes wait
 * for together never fills their groups (a join with a timeout sends what it has then).
 */
export function groupCountsAfter(
  RED: RED,
  id: string,
  perMsg = 1,
): { node: WiredConfig; count: number; needs: number }[] {
  const { all, next } = wiring(RED);
  const countOf = (n: WiredConfig): number | undefined => {
    const c = n as WiredConfig & { mode?: unknown; count?: unknown };
    const counted = (n.type === "join" && c.mode === "custom") || (n.type === "batch" && c.mode === "count");
    const count = Number(c.count);
    return counted && Number.isInteger(count) && count > 0 ? count : undefined;
  };
  // the most records one msg holds on arriving at each node, over the paths to it (a loop stops growing it)
  const held = new Map<string, number>();
  const queue: [string, number][] = next(all.get(id)).map((to) => [to, perMsg]);
  while (queue.length > 0) {
    const [at, records] = queue.shift() as [string, number];
    if ((held.get(at) ?? 0) >= records) continue;
    held.set(at, records);
    const n = all.get(at);
    if (!n || n.d === true) continue;
    const after = records * (countOf(n) ?? 1);
    if (after <= 10_000_000) queue.push(...next(n).map((to): [string, number] => [to, after]));
  }
  const out: { node: WiredConfig; count: number; needs: number }[] = [];
  for (const [at, records] of held) {
    const n = all.get(at);
    const count = n && n.d !== true ? countOf(n) : undefined;
    if (n && count !== undefined) out.push({ node: n, count, needs: count * records });
  }
  return out;
}

/**
 * Whether node `id` is a core switch that holds the msgs of a sequence (msg.parts) until the last one came,
 * without a done callback (SettlementOptions.sequences): true when it recreates message sequences (it sends
 * the parts it passes together), "tail" when only a "tail" rule makes it wait (it sends each part as it
 * handles it).
 */
export function holdsSequences(RED: RED, id: string): boolean | "tail" {
  const n = configOf<WiredConfig & { repair?: unknown; rules?: { t?: unknown }[] }>(RED, id);
  if (n?.type !== "switch") return false;
  if (n.repair === true || n.repair === "true") return true;
  return (n.rules ?? []).some((r) => r.t === "tail") ? "tail" : false;
}

/** The config of node `id`, or of the template node a node inside a subflow instance runs (_alias). */
export function configOf<T extends WiredConfig>(RED: RED, id: string): T | undefined {
  const alias = (RED.nodes.getNode(id) as { _alias?: unknown } | null)?._alias;
  let found: WiredConfig | undefined;
  RED.nodes.eachNode((n: WiredConfig) => {
    if (n.id === id || (found === undefined && n.id === alias)) found = n;
  });
  return found as T | undefined;
}

interface TriggerConfig extends WiredConfig {
  z?: unknown;
  overrideDelay?: unknown;
  op2type?: unknown;
  duration?: unknown;
  bytopic?: unknown;
  topic?: unknown;
  reset?: unknown;
  outputs?: unknown;
}

/**
 * Whether node `id` is a core node that sends later what it made of msgs it finished without a send
 * (SettlementOptions.collects):
 * - a trigger that sends a second msg after its delay (not "nothing", not a loop, not "wait to be reset"
 *   unless msg.delay may set one), to a node that runs or out of its subflow: each msg it takes, the one
 *   that starts its delay too (its first msg goes at once), is kept per topic (or all together) until
 *   the second msg goes (a copy of the first or latest msg: found by its id), and dropped by a reset msg;
 * - a csv node putting a sequence's rows into one msg ("a single message [array]"): the parts are kept
 *   until the one that ends the sequence (its last, of one line) is sent on.
 */
export function collectorOf(RED: RED, id: string): Collector | undefined {
  const n = configOf<TriggerConfig & { multi?: unknown }>(RED, id);
  if (n?.type === "csv" && n.multi === "mult") return csvCollector;
  if (n?.type !== "trigger" || (n.op2type ?? "str") === "nul") return undefined;
  const parsed = parseFloat(String(n.duration));
  const duration = Number.isNaN(parsed) ? 250 : parsed;
  // a loop (negative) repeats its first msg, and sends no second one
  if (duration < 0) return undefined;
  // a msg's own delay (msg.delay, when the node takes it) may start a timer even where the node's is 0
  const override = n.overrideDelay === true || n.overrideDelay === "true";
  // 0 waits for a reset, which sends nothing
  if (duration === 0 && !override) return undefined;
  const { all } = wiring(RED);
  const out = (n.outputs == 2 ? n.wires?.[1] : n.wires?.[0]) ?? [];
  // inside a subflow its output may be the subflow's (the port's wires, not the node's, say so)
  const inSubflow = all.get(String(n.z))?.type === "subflow";
  if (!inSubflow && !out.some((to) => all.get(to)?.d !== true)) return undefined;
  const byTopic = n.bytopic === "topic";
  const property = typeof n.topic === "string" && n.topic !== "" ? n.topic : "topic";
  const reset = typeof n.reset === "string" ? n.reset : "";
  const keyOf = (msg: object | undefined): string => {
    if (!byTopic || !msg) return "_none";
    const v: unknown = RED.util.getMessageProperty(msg as never, property);
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the trigger keys its topics so too
    return v === undefined || v === null || v === "" || v === 0 || v === false ? "_none" : String(v);
  };
  const isReset = (msg: object | undefined): boolean => {
    if (!msg) return false;
    if (Object.prototype.hasOwnProperty.call(msg, "reset")) return true;
    const p = (msg as { payload?: unknown }).payload;
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the trigger compares so too
    return reset !== "" && p !== null && p !== undefined && String(p) === reset;
  };
  const delayOf = (msg: object | undefined): number => {
    const d = (msg as { delay?: unknown } | undefined)?.delay;
    const own =
      override && msg && Object.prototype.hasOwnProperty.call(msg, "delay") ? parseFloat(String(d)) : NaN;
    return Number.isNaN(own) ? duration : own;
  };
  return {
    // a msg whose delay is 0 makes the trigger wait for a reset (or is ignored): nothing comes of it
    finished: (msg) =>
      isReset(msg) ? { drop: keyOf(msg) } : delayOf(msg) === 0 ? undefined : { keep: keyOf(msg) },
    takenBy: (msg) => keyOf(msg),
  };
}

/** A part csv keeps for the msg of rows: text of at most one line (csv sends the rows of a longer one at once). */
function csvStores(msg: object | undefined): boolean {
  const m = msg as { parts?: unknown; payload?: unknown } | undefined;
  return (
    m?.parts !== undefined && typeof m.payload === "string" && (m.payload.match(/[\r\n]/g) ?? []).length <= 1
  );
}

/** A sequence's part as csv sees it: the last one, of at most one line, ends what it collects. */
const csvCollector: Collector = {
  closes(msg) {
    const parts = (msg as { parts?: { index?: unknown; count?: unknown } } | undefined)?.parts;
    const last = typeof parts?.index === "number" && parts.index + 1 === parts.count;
    return last && csvStores(msg);
  },
  // the last part's msg sent to nowhere gives the rows up; a part it keeps waits for them
  finished: (msg, closing) => (closing ? { drop: "" } : csvStores(msg) ? { keep: "" } : undefined),
  takenBy: (_msg, closing) => (closing ? "" : undefined),
};

/** What the tracker asks of the deployed flows' nodes (NodeKinds), for a source's settlement. */
export function nodeKinds(RED: RED): NodeKinds {
  return {
    independent: (id) =>
      (RED.nodes.getNode(id) as { settlesItself?: boolean } | null)?.settlesItself === true,
    groups: (id) => GROUP_NODES.has(RED.nodes.getNode(id)?.type ?? ""),
    sequences: (id) => holdsSequences(RED, id),
    collects: (id) => collectorOf(RED, id),
  };
}
