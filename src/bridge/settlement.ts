// Whether a flow has finished with a record, from Node-RED's message hooks (DESIGN §4).
//
// Each record is a *root*. A msg the source emits is an *entry* holding one root (or several: batch output).
// Every delivery of a tracked msg id to a running node (preDeliver: Node-RED raises it only for a node that
// exists, so a disabled or missing node opens nothing) opens one unit of work at that node; the node's
// done() (onComplete) closes it. A completion from a node holding no unit of the msg (Catch, Status and
// Complete nodes are handed msgs directly) is ignored.
//
// Lineage: when a node's done() closes the last unit of an entry, the records are not settled at once if
// that node passed them on. A node that sends msgs with ids the tracker does not know (split, an
// aggregator building a fresh msg) creates *child* entries that hold every root the node holds at that
// moment; a node that sends a tracked msg in the same turn as it finishes others (core join and batch send
// the merged msg, then call the parts' done()) hands the finished entries' roots to the msgs it sent.
// Only when the node sent nothing in that turn (a filter, a debug node, pulsar-out after its receipt) is
// the entry dropped and its roots released; a root settles when no entry holds it any more.
//
// An error from any node fails the entry's roots at once. A node that finishes a msg without sending while
// Node-RED is stopping it (join, batch and delay call their held done()s on close) did not finish the work:
// its roots fail as interrupted instead of settling.
import { BridgeError } from "../common/errors";
import { MinHeap } from "../common/min-heap";

export interface SettlementEvents<R> {
  /** Every entry holding the record finished without error. */
  settled(record: R): void;
  /** A node reported an error, the node was stopped while holding it (interrupted), or it expired. */
  failed(record: R, error: unknown, cause: "error" | "interrupted" | "expired"): void;
  /**
   * With a reach set (setReach): the live record turned passive (true: no msg holding it can reach a sink
   * it was not admitted at any more) or active again (false, also when it settles, fails or is forgotten).
   */
  passive?(record: R, passive: boolean): void;
}

/**
 * What a msg held at a node can still do, for the ordered pipeline (see setReach): at an `inert` node it
 * can reach no effectively-once sink any more (nothing it sends leads to one); at a `sink` (an
 * effectively-once pulsar-out whose output leads to none) it is on its way once admitted there; at an
 * `opaque` node (one that leads to a sink, a subflow, a link call, a node the flow config does not name)
 * it may still reach any sink.
 */
export type Reach = "inert" | "sink" | "opaque";

export interface SettlementOptions {
  /**
   * Runs `fn` at the end of the current turn (default queueMicrotask: a turn is one synchronous run,
   * such as one delivery of a msg to a node, which is what join and batch send and finish in).
   */
  defer?: (fn: () => void) => void;
  /** Milliseconds clock (default Date.now). */
  now?: () => number;
  /**
   * Nodes that are sources of their own (the window node): the fresh msgs they send hold none of the
   * records they hold, because they settle those records themselves (once their state is durable) and
   * track what they send. Asked once per node.
   */
  independent?: (nodeId: string) => boolean;
  /**
   * Nodes that finish msgs as a group (core join, batch, sort): one that calls done(error) in a turn has
   * failed the group, and the msgs it finished without an error and without a send in that turn fail with
   * it (core join calls done() for every part of a group whose reduce failed and done(error) for the last).
   * Asked once per node.
   */
  groups?: (nodeId: string) => boolean;
  /**
   * Nodes without a done callback that hold the msgs of a sequence until it is complete (core switch): true
   * when it sends the parts it passes together once it handled the last (recreating message sequences),
   * "tail" when it sends each as it handles it (a "tail" rule without recreating). A part they queue is
   * dropped only once they are done with it (see partOf). Asked once per node.
   */
  sequences?: (nodeId: string) => boolean | "tail";
  /** Runs `fn` in the next event-loop iteration (default setImmediate): see partOf. */
  nextLoop?: (fn: () => void) => void;
  /** Nodes that send later what they made of msgs they finished without a send (see Collector). Asked once per node. */
  collects?: (nodeId: string) => Collector | undefined;
}

/** What a flow's nodes are, for the tracker: the node-specific options, asked of the deployed flows. */
export type NodeKinds = Pick<SettlementOptions, "independent" | "groups" | "sequences" | "collects">;

/**
 * A node that finishes msgs without sending anything in their turn and sends what it made of them later:
 * core trigger (its second output comes from a timer, carrying the first or the latest msg) and core csv
 * putting the rows of a sequence's parts into one msg. A msg such a node finished without a send is not
 * dropped: its records are kept in a *pool* at the node until the node sends a msg that takes the pool
 * (then that msg holds them), or gives the pool up (trigger's reset: they are dropped then).
 */
export interface Collector {
  /**
   * A msg the node finished without a send in its turn: kept in pool `keep`; the end of pool `drop` (the
   * node gave it up); or neither (undefined: nothing comes of it, a drop). `closing`: the msg closed a pool
   * when it was given (see closes).
   */
  finished(msg: object | undefined, closing: boolean): { keep?: string; drop?: string } | undefined;
  /** Whether a msg given to the node closes a pool: what the node sends with it takes the pool (csv). */
  closes?(msg: object | undefined): boolean;
  /** The pool a msg the node sends takes, if any (`closing`: it is a msg that closed a pool when given). */
  takenBy(msg: object | undefined, closing: boolean): string | undefined;
}

interface Root<R> {
  readonly value: R;
  readonly at: number;
  /** Entries holding this root. */
  holds: number;
  done: boolean;
  /** Forgotten for a replay (see forget): the flow's msgs that still hold it belong to a discarded pass. */
  discarded: boolean;
  /** Entries holding it that may still bring it to a sink (see setReach); passive at 0. */
  blockers: number;
}

/**
 * Open units of one msg id. Most msgs are open at one node at a time (a chain of nodes), so that node and
 * its count live in the entry itself; a Map per node is made only when two nodes hold it at once.
 */
interface Entry<R> {
  readonly id: string;
  /** The roots this entry holds: one (the common case) or several. */
  root: Root<R> | undefined;
  roots: Set<Root<R>> | undefined;
  node: string | undefined;
  count: number;
  nodes: Map<string, number> | undefined;
  total: number;
  /**
   * A node finished an entry holding a discarded root in the turn it sent this one (a join merging a part
   * of a discarded pass into it): what this msg carries is partly of a pass kafka-in discarded.
   */
  tainted: boolean;
  /**
   * When it was last given to a node (the clock of `now`); a child made by a node from what it holds (a
   * split part, a fresh msg) starts with the earliest arrival of what it was made from.
   */
  given: number;
  /** Whether it counts among its live roots' blockers (see setReach). */
  blocks: boolean;
  /** Units admitted at sinks (see admitted), by node. */
  admitted: Map<string, number> | undefined;
  /** A collecting node's pool (see Collector): its key. */
  pool?: string;
}

interface LegacyQueue<R> {
  queue: Entry<R>[];
  last: number;
  timer: NodeJS.Timeout | undefined;
  /** A deploy stopped the node while it queued these: it never handles them. */
  stopped?: boolean;
  /** A node that holds sequences (SettlementOptions.sequences): whether it sends their parts together. */
  mode?: "together" | "one-by-one";
  /** The sequence (msg.parts.id) of each queued entry, and its receipt's serial (see receipts). */
  seqOf?: Map<Entry<R>, string | undefined>;
  serialOf?: Map<Entry<R>, number>;
  /** Every msg the node got (tracked by this tracker or not), counted: receipt serials. */
  receipts?: number;
  /** The node has handled every msg it got up to this serial (what it sent shows, or a drain mark). */
  handledUpTo?: number;
  /** When it last sent a msg this tracker tracks. */
  lastSend?: number;
  /** Per incomplete sequence: its length (once a part said), how many parts came, when the first came. */
  seqs?: Map<string, { count: number | undefined; got: number; since: number }>;
  /** Sequences whose last part came, until the node is done with them (see partOf). */
  complete?: Map<string, DrainMark<R>>;
  /** Complete sequences the node is done with: what it did not send of them is dropped at the turn's end. */
  finished?: Set<string>;
  /** A node sending parts one by one: per sequence, the serial below which its queued parts were dropped. */
  dropBefore?: Map<string, number>;
  /** Drops the parts of drained sequences once the node has been quiet (see armSequences). */
  seqTimer?: NodeJS.Timeout;
}

/** A complete sequence at a node holding sequences: when the node must have handled it (see partOf). */
interface DrainMark<R> {
  nodeId: string;
  q: LegacyQueue<R>;
  id: string;
  /** The serial of its last part's receipt. */
  serial: number;
  /** The event-loop iteration (the tracker's tick) by which the node has handled what it got till then. */
  drainAt: number;
  drained: boolean;
  drainedAt: number;
}

/** What a legacy queue keeps of an entry taken out of it. */
function unqueued<R>(q: LegacyQueue<R>, e: Entry<R>): void {
  q.seqOf?.delete(e);
  q.serialOf?.delete(e);
}

/** How long a node without a done callback must be idle before the msgs it queued count as dropped. */
export const LEGACY_IDLE_MS = 1000;

/** Per node: the entries it holds a unit of, and what it sent in the current turn. */
interface NodeState<R> {
  holding: Set<Entry<R>>;
  turn: number;
  sent: Entry<R>[];
  /** When the node was last given a tracked msg (the clock of `now`). */
  given?: number;
  /**
   * When the node last sent or finished a tracked msg, and the latest arrival at the node of the msgs it
   * sent or finished in that turn: a node working through a queue in arrival order (a rate-limiting delay)
   * progresses on msgs that came before those it still holds; one that lost a msg (or a join group that
   * never completes) progresses on msgs that came after it.
   */
  progress?: number;
  progressOf?: number;
  progressTurn?: number;
  /**
   * The error of a done(error) the node called in turn `failedTurn`: the msgs it finished without an
   * error and without a send in that turn failed with it (a join whose reduce failed, a sort, a buffer
   * overflow: core N->1 nodes call done() for every msg of the group and done(error) for the last).
   */
  failedTurn?: number;
  failure?: unknown;
}

export class SettlementTracker<R> {
  private readonly entries = new Map<string, Entry<R>>();
  /**
   * The entries each delivered msg object was delivered with: a node may change or delete the _msgid of
   * the msg it was given before calling done() (core split deletes it), so done() is matched by object too.
   */
  private readonly byObject = new WeakMap<object, Entry<R> | Entry<R>[]>();
  private readonly nodes = new Map<string, NodeState<R>>();
  /** Msgs queued by nodes without a done callback, per node. */
  private readonly legacy = new Map<string, LegacyQueue<R>>();
  /** Live roots in the order they were tracked (for the settle deadline). */
  private readonly live = new Set<Root<R>>();
  /** Entries a node finished without sending anything so far in this turn: decided at the turn's end. */
  private pending: { entry: Entry<R>; node: string }[] = [];
  private turn = 0;
  private scheduled = false;
  /** Whether prune() may have kept entries with discarded records (see prune). */
  private keptDiscarded = false;
  private stopping: ((nodeId: string) => boolean) | undefined;
  private readonly defer: (fn: () => void) => void;
  private readonly nextLoop: (fn: () => void) => void;
  private readonly now: () => number;
  private readonly independent: ((nodeId: string) => boolean) | undefined;
  private readonly independentNodes = new Map<string, boolean>();
  private readonly groups: ((nodeId: string) => boolean) | undefined;
  private readonly groupNodes = new Map<string, boolean>();
  private readonly sequences: ((nodeId: string) => boolean | "tail") | undefined;
  private readonly sequenceNodes = new Map<string, LegacyQueue<R>["mode"] | null>();
  /** Event-loop iterations counted while a drain mark waits (see partOf). */
  private tick = 0;
  private ticking = false;
  private readonly drainMarks = new MinHeap<DrainMark<R>>((a, b) => a.drainAt < b.drainAt);
  private reach: ((nodeId: string) => Reach) | undefined;
  private readonly reaches = new Map<string, Reach>();
  private readonly collects: ((nodeId: string) => Collector | undefined) | undefined;
  private readonly collectorNodes = new Map<string, Collector | null>();
  /** Per collecting node: its pools by key, and the entries given to it that close one (see Collector). */
  private readonly pools = new Map<string, Map<string, Entry<R>>>();
  private readonly closing = new Map<string, WeakSet<Entry<R>>>();
  /** Per collecting node: the ids of the msgs it kept, and their pool (see poolTaken). */
  private readonly pooledIds = new Map<string, Map<string, Entry<R>>>();
  /** The turn in which a collecting node kept an entry (see poolTaken). */
  private readonly keptTurn = new WeakMap<Entry<R>, number>();

  constructor(
    private readonly events: SettlementEvents<R>,
    o: SettlementOptions = {},
  ) {
    this.defer = o.defer ?? queueMicrotask;
    this.nextLoop = o.nextLoop ?? ((fn) => void setImmediate(fn));
    this.now = o.now ?? Date.now;
    this.independent = o.independent;
    this.groups = o.groups;
    this.sequences = o.sequences;
    this.collects = o.collects;
  }

  private collectorOf(nodeId: string): Collector | undefined {
    if (!this.collects || nodeId === "") return undefined;
    let known = this.collectorNodes.get(nodeId);
    if (known === undefined) this.collectorNodes.set(nodeId, (known = this.collects(nodeId) ?? null));
    return known ?? undefined;
  }

  private holdsSequences(nodeId: string): LegacyQueue<R>["mode"] {
    if (!this.sequences) return undefined;
    let known = this.sequenceNodes.get(nodeId);
    if (known === undefined) {
      const says = this.sequences(nodeId);
      known = says === "tail" ? "one-by-one" : says ? "together" : null;
      this.sequenceNodes.set(nodeId, known);
    }
    return known ?? undefined;
  }

  private isGroups(nodeId: string): boolean {
    if (!this.groups) return false;
    let known = this.groupNodes.get(nodeId);
    if (known === undefined) this.groupNodes.set(nodeId, (known = this.groups(nodeId)));
    return known;
  }

  private isIndependent(nodeId: string): boolean {
    if (!this.independent) return false;
    let known = this.independentNodes.get(nodeId);
    if (known === undefined) this.independentNodes.set(nodeId, (known = this.independent(nodeId)));
    return known;
  }

  /**
   * Starts tracking the msg `msgId` the source is about to send, holding `records`. Its deliveries open
   * units as Node-RED makes them; with none by the end of the turn (no running node is wired), the
   * records settle: the flow has no branch for them.
   */
  track(msgId: string, records: R | readonly R[]): void {
    const entry = this.newEntry(msgId);
    const at = this.now();
    if (Array.isArray(records)) {
      const list = records as readonly R[];
      if (list.length === 1) entry.root = this.newRoot(list[0], at);
      else entry.roots = new Set(list.map((r) => this.newRoot(r, at)));
    } else entry.root = this.newRoot(records as R, at);
    this.pendingDecision(entry, "");
  }

  private newRoot(value: R, at: number): Root<R> {
    // held by a new entry, which blocks (see newEntry)
    const root: Root<R> = { value, at, holds: 1, done: false, discarded: false, blockers: 1 };
    this.live.add(root);
    return root;
  }

  private newEntry(id: string): Entry<R> {
    const entry: Entry<R> = {
      id,
      root: undefined,
      roots: undefined,
      node: undefined,
      count: 0,
      nodes: undefined,
      total: 0,
      tainted: false,
      given: this.now(),
      // held by no node yet: on its way to one
      blocks: true,
      admitted: undefined,
    };
    this.entries.set(id, entry);
    return entry;
  }

  // ---- passive records (the ordered pipeline) ----

  /**
   * Starts (or, undefined, stops) telling which live records are passive: every msg holding one is at
   * `inert` nodes, or at sinks that admitted it (see Reach), so it cannot come to another sink. An ordered
   * publisher need not wait for a passive record of its partition before it sends a later one. Everything
   * tracked is judged again under the new reach; events.passive tells each passive record once.
   */
  setReach(reach: ((nodeId: string) => Reach) | undefined): void {
    this.reach = reach;
    this.reaches.clear();
    if (!reach) return;
    for (const root of this.live) root.blockers = 0;
    for (const entry of this.entries.values()) {
      entry.blocks = this.entryBlocks(entry);
      if (entry.blocks) this.eachRoot(entry, (root) => root.blockers++);
    }
    for (const root of this.live) if (root.blockers === 0) this.events.passive?.(root.value, true);
  }

  /** The sink `nodeId` admitted the msg it holds (it will send it to its topic). */
  admitted(msgId: string | undefined, nodeId: string, msg?: object): void {
    if (!this.reach || this.reachOf(nodeId) !== "sink") return;
    const entry = this.holding(msgId, nodeId, msg);
    if (!entry) return;
    entry.admitted ??= new Map();
    const held = entry.nodes ? (entry.nodes.get(nodeId) ?? 0) : entry.count;
    entry.admitted.set(nodeId, Math.min(held, (entry.admitted.get(nodeId) ?? 0) + 1));
    this.refresh(entry);
  }

  private reachOf(nodeId: string): Reach {
    let r = this.reaches.get(nodeId);
    if (r === undefined) this.reaches.set(nodeId, (r = this.reach ? this.reach(nodeId) : "opaque"));
    return r;
  }

  private unitsBlock(entry: Entry<R>, nodeId: string, units: number): boolean {
    if (units === 0) return false;
    const r = this.reachOf(nodeId);
    if (r === "inert") return false;
    if (r === "opaque") return true;
    return units > (entry.admitted?.get(nodeId) ?? 0);
  }

  private entryBlocks(entry: Entry<R>): boolean {
    if (entry.total === 0) return true;
    if (!entry.nodes) return this.unitsBlock(entry, entry.node as string, entry.count);
    for (const [n, c] of entry.nodes) if (this.unitsBlock(entry, n, c)) return true;
    return false;
  }

  private eachRoot(entry: Entry<R>, fn: (root: Root<R>) => void): void {
    if (entry.root) {
      if (!entry.root.done) fn(entry.root);
    } else if (entry.roots) for (const r of entry.roots) if (!r.done) fn(r);
  }

  /** The entry's units changed: its share in its roots' blockers follows. */
  private refresh(entry: Entry<R>): void {
    if (!this.reach) return;
    const blocks = this.entryBlocks(entry);
    if (blocks === entry.blocks) return;
    entry.blocks = blocks;
    this.eachRoot(entry, (root) => this.addBlocker(root, blocks ? 1 : -1));
  }

  private addBlocker(root: Root<R>, by: 1 | -1): void {
    root.blockers += by;
    if (!this.reach) return;
    if (by === 1 && root.blockers === 1) this.events.passive?.(root.value, false);
    else if (by === -1 && root.blockers === 0) this.events.passive?.(root.value, true);
  }

  /** The root settled, failed or was forgotten. */
  private end(root: Root<R>): void {
    root.done = true;
    this.live.delete(root);
    if (this.reach && root.blockers === 0) this.events.passive?.(root.value, false);
  }

  has(msgId: string): boolean {
    return this.entries.has(msgId);
  }

  /** Msgs being tracked. */
  get size(): number {
    return this.entries.size;
  }

  /** Records neither settled nor failed. */
  get records(): number {
    return this.live.size;
  }

  private state(nodeId: string): NodeState<R> {
    let s = this.nodes.get(nodeId);
    if (!s) {
      s = { holding: new Set(), turn: this.turn, sent: [] };
      this.nodes.set(nodeId, s);
    }
    return s;
  }

  private open(entry: Entry<R>, nodeId: string): void {
    entry.total++;
    let first: boolean;
    if (entry.nodes) {
      const n = entry.nodes.get(nodeId) ?? 0;
      entry.nodes.set(nodeId, n + 1);
      first = n === 0;
    } else if (entry.count === 0 || entry.node === nodeId) {
      first = entry.count === 0;
      entry.node = nodeId;
      entry.count++;
    } else {
      entry.nodes = new Map([
        [entry.node as string, entry.count],
        [nodeId, 1],
      ]);
      entry.node = undefined;
      entry.count = 0;
      first = true;
    }
    if (first) this.state(nodeId).holding.add(entry);
    this.refresh(entry);
  }

  /** Closes one unit at `nodeId`; false when the node held none. */
  private close(entry: Entry<R>, nodeId: string): boolean {
    let last: boolean;
    if (entry.nodes) {
      const n = entry.nodes.get(nodeId);
      if (!n) return false;
      if (n === 1) entry.nodes.delete(nodeId);
      else entry.nodes.set(nodeId, n - 1);
      last = n === 1;
    } else {
      if (entry.count === 0 || entry.node !== nodeId) return false;
      entry.count--;
      last = entry.count === 0;
    }
    entry.total--;
    if (last) this.nodes.get(nodeId)?.holding.delete(entry);
    const admitted = entry.admitted?.get(nodeId);
    if (admitted !== undefined) {
      // the admitted units close first (a sink finishes what it sent)
      const held = last ? 0 : entry.nodes ? (entry.nodes.get(nodeId) ?? 0) : entry.count;
      if (held === 0) entry.admitted?.delete(nodeId);
      else if (admitted > held) entry.admitted?.set(nodeId, held);
    }
    this.refresh(entry);
    return true;
  }

  /**
   * Node-RED is about to hand a msg from `sourceId` to the running node `destinationId` (preDeliver).
   * A tracked id opens a unit there; an unknown id sent by a node that holds tracked msgs becomes a child
   * holding all that node's roots. Other msgs are not tracked.
   */
  delivered(msgId: string, sourceId: string, destinationId: string, msg?: object): void {
    let entry = this.entries.get(msgId);
    // a collecting node sending what it made of msgs it finished earlier: the msg takes their pool
    const collector = this.collectorOf(sourceId);
    const pool = collector ? this.poolTaken(sourceId, collector, entry, msg) : undefined;
    if (!entry) {
      const source = this.nodes.get(sourceId);
      if (!source || this.isIndependent(sourceId)) return;
      // a fresh msg holds what its sender holds, but the pools the msg does not take
      const parents = [...source.holding].filter((e) => e.pool === undefined);
      if (source.turn === this.turn)
        for (const p of this.pending) if (p.node === sourceId) parents.push(p.entry);
      if (pool) parents.push(pool);
      if (parents.length === 0) return;
      entry = this.newEntry(msgId);
      for (const parent of parents) {
        this.inherit(entry, parent, parent === pool);
        if (parent.given < entry.given) entry.given = parent.given;
      }
    } else if (pool) this.inherit(entry, pool, true);
    if (pool) this.endPool(sourceId, pool);
    const to = this.collectorOf(destinationId);
    if (to?.closes?.(msg)) {
      let closing = this.closing.get(destinationId);
      if (!closing) this.closing.set(destinationId, (closing = new WeakSet()));
      closing.add(entry);
    }
    const arrived = entry.given;
    this.open(entry, destinationId);
    const now = (entry.given = this.now());
    this.state(destinationId).given = now;
    if (msg) {
      const known = this.byObject.get(msg);
      if (known === undefined) this.byObject.set(msg, entry);
      else if (Array.isArray(known)) {
        if (!known.includes(entry)) known.push(entry);
      } else if (known !== entry) this.byObject.set(msg, [known, entry]);
    }
    const source = this.state(sourceId);
    this.progressed(source, arrived);
    if (source.turn !== this.turn) {
      source.turn = this.turn;
      source.sent = [];
    }
    if (source.sent[source.sent.length - 1] !== entry) source.sent.push(entry);
    // a node without done callback sending a msg it queued: that one and those queued before are done
    // A node without done callback handles its msgs in the order it received them: sending one it queued,
    // it is done with those queued before; sending the msg it is being given (its input handler runs,
    // postReceive has not come), it had no msg waiting, so every one it queued was dropped.
    // Those it dropped settle as drops: their records were never handed to what the node sends now.
    const q = this.legacy.get(sourceId);
    if (q?.seqOf) this.sentOfSequence(sourceId, q, entry);
    else if (q) {
      const at = q.queue.indexOf(entry);
      if (at >= 0) this.releaseLegacy(sourceId, q, at + 1);
      else if (this.holding(entry.id, sourceId) === entry) this.releaseLegacy(sourceId, q, q.queue.length);
      else this.touchLegacy(sourceId, q);
    }
    this.schedule();
  }

  /** The live pool of `nodeId` that the msg it sends (`entry`, if tracked) takes. */
  private poolTaken(
    nodeId: string,
    c: Collector,
    entry: Entry<R> | undefined,
    msg: object | undefined,
  ): Entry<R> | undefined {
    const pools = this.pools.get(nodeId);
    if (!pools) return undefined;
    // the msg the node sends in the turn it kept it (the trigger's first msg) is not what the pool is for
    if (entry && this.keptTurn.get(entry) === this.turn) return undefined;
    const alive = (pool: Entry<R> | undefined) =>
      pool && this.entries.get(pool.id) === pool ? pool : undefined;
    // a msg sent with the id of one the node kept (the trigger sends a copy of the first or latest one)
    const msgId = (msg as { _msgid?: unknown } | undefined)?._msgid;
    const byId = typeof msgId === "string" ? alive(this.pooledIds.get(nodeId)?.get(msgId)) : undefined;
    if (byId) return byId;
    const key = c.takenBy(msg, entry !== undefined && (this.closing.get(nodeId)?.has(entry) ?? false));
    return key === undefined ? undefined : alive(pools.get(key));
  }

  /** The collecting `nodeId` finished `entry` (done without an error): kept in a pool, or a pool ends. */
  private collected(nodeId: string, c: Collector, entry: Entry<R>, msg: object | undefined): void {
    const f = c.finished(msg, this.closing.get(nodeId)?.has(entry) ?? false);
    if (f?.drop !== undefined) {
      const pool = this.pools.get(nodeId)?.get(f.drop);
      if (pool) this.endPool(nodeId, pool);
    }
    if (f?.keep !== undefined) this.keepInPool(nodeId, f.keep, entry);
  }

  /** `entry`, finished by the collecting `nodeId` without a send, is kept in its pool `key`. */
  private keepInPool(nodeId: string, key: string, entry: Entry<R>): void {
    let pools = this.pools.get(nodeId);
    if (!pools) this.pools.set(nodeId, (pools = new Map<string, Entry<R>>()));
    let pool = pools.get(key);
    if (!pool || this.entries.get(pool.id) !== pool) {
      pool = this.newEntry(`\u0000pool\u0000${nodeId}\u0000${key}`);
      pool.pool = key;
      pools.set(key, pool);
      this.open(pool, nodeId);
    }
    this.inherit(pool, entry, true);
    let ids = this.pooledIds.get(nodeId);
    if (!ids) this.pooledIds.set(nodeId, (ids = new Map<string, Entry<R>>()));
    ids.set(entry.id, pool);
    this.keptTurn.set(entry, this.turn);
    // it counts as given to the node when it last grew (the settle deadline spares a node still collecting)
    pool.given = this.now();
  }

  /** Forgets pools no longer tracked (interrupted by a deploy, expired, revoked) and the ids kept in them. */
  private forgetDeadPools(): void {
    const dead = (e: Entry<R>) => this.entries.get(e.id) !== e;
    for (const [nodeId, pools] of this.pools) {
      for (const [key, pool] of pools) if (dead(pool)) pools.delete(key);
      if (pools.size === 0) this.pools.delete(nodeId);
    }
    for (const [nodeId, ids] of this.pooledIds) {
      for (const [id, pool] of ids) if (dead(pool)) ids.delete(id);
      if (ids.size === 0) this.pooledIds.delete(nodeId);
    }
  }

  /** The pool is taken (its roots went to a msg the node sent) or given up (they are dropped). */
  private endPool(nodeId: string, pool: Entry<R>): void {
    const pools = this.pools.get(nodeId);
    if (pools?.get(pool.pool as string) === pool) pools.delete(pool.pool as string);
    if (pools?.size === 0) this.pools.delete(nodeId);
    const ids = this.pooledIds.get(nodeId);
    if (ids) {
      for (const [id, p] of ids) if (p === pool) ids.delete(id);
      if (ids.size === 0) this.pooledIds.delete(nodeId);
    }
    if (this.entries.get(pool.id) !== pool) return;
    this.close(pool, nodeId);
    this.entries.delete(pool.id);
    this.release(pool);
  }

  /**
   * Makes `child` hold every live root of `parent` too. A handed-over parent holding a discarded root (or
   * tainted) taints the child; a child made from what its sender holds (split, a fresh msg) is not tainted
   * by the sender's other, unrelated msgs.
   */
  private inherit(child: Entry<R>, parent: Entry<R>, handedOver = false): void {
    if (handedOver && parent.tainted) child.tainted = true;
    const add = (root: Root<R>) => {
      if (root.discarded && handedOver) child.tainted = true;
      if (root.done) return;
      if (child.root === root || child.roots?.has(root)) return;
      root.holds++;
      if (child.blocks) this.addBlocker(root, 1);
      if (!child.root && !child.roots) child.root = root;
      else {
        child.roots ??= new Set([child.root as Root<R>]);
        child.root = undefined;
        child.roots.add(root);
      }
    };
    if (parent.root) add(parent.root);
    else if (parent.roots) for (const r of parent.roots) add(r);
  }

  /**
   * Node-RED routes a msg to `destinationId`, a node a deploy has stopped and not yet started again
   * (preRoute is raised for every wire before the node is looked up; the caller knows it is gone): the
   * msg reaches nobody, so the records fail as interrupted.
   */
  routed(msgId: string, destinationId: string): void {
    const entry = this.entries.get(msgId);
    if (entry) this.failRoots(entry, new InterruptedError(destinationId), "interrupted");
  }

  /** `nodeId` called done(error?) for the msg `msg` with this id (onComplete). */
  completed(msgId: string | undefined, nodeId: string, error?: unknown, msg?: object): void {
    const entry = this.holding(msgId, nodeId, msg);
    if (!entry || !this.close(entry, nodeId)) return;
    const s = this.state(nodeId);
    // one it sent on in this turn counted when sent (its arrival here is no longer known)
    if (!(s.turn === this.turn && s.sent.includes(entry))) this.progressed(s, entry.given);
    this.afterClose(entry, nodeId, error, msg);
  }

  /** `s` sent or finished a msg that reached it at `arrived`. */
  private progressed(s: NodeState<R>, arrived: number): void {
    s.progress = this.now();
    s.progressOf =
      s.progressTurn === this.turn && s.progressOf !== undefined ? Math.max(s.progressOf, arrived) : arrived;
    s.progressTurn = this.turn;
  }

  /** A unit of `entry` at `nodeId` was closed by its done(error?). */
  private afterClose(entry: Entry<R>, nodeId: string, error?: unknown, msg?: object): void {
    const msgId = entry.id;
    if (error !== undefined && error !== null) {
      const s = this.nodes.get(nodeId);
      if (s && this.isGroups(nodeId)) {
        s.failedTurn = this.turn;
        s.failure = error;
      }
      this.failRoots(entry, error, "error");
      if (entry.total === 0) this.entries.delete(msgId);
      return;
    }
    // a collecting node keeps a share of what it finished for what it sends later (see Collector): also
    // when the msg lives on (the trigger's first msg, sent in the same turn; another branch holding it)
    const c = this.collectorOf(nodeId);
    if (c && !this.stopping?.(nodeId)) this.collected(nodeId, c, entry, msg);
    if (entry.total > 0) return;
    if (this.stopping?.(nodeId)) {
      this.entries.delete(msgId);
      this.failRoots(entry, new InterruptedError(nodeId), "interrupted");
      return;
    }
    const s = this.nodes.get(nodeId);
    // a source of its own (the window node) finishes a record once its contribution is durable: what it
    // sends in that turn (a late record) carries none of it
    if (s && s.turn === this.turn && s.sent.length > 0 && !this.isIndependent(nodeId))
      this.handOver(entry, s);
    else this.pendingDecision(entry, nodeId);
  }

  /**
   * A node without a done callback (`_expectedDoneCount` 0: core switch and filter, older contrib nodes)
   * returned from its input handler for this msg (postReceive). It may have handled the msg already (and
   * sent it on in this turn), or only queued it (core switch queues msgs that arrive while it is busy):
   * then the msg waits in the node's queue until the node sends a later msg (it handles them in order, so
   * this one was dropped) or has been idle for LEGACY_IDLE_MS.
   */
  received(msgId: string | undefined, nodeId: string, msg?: object): void {
    // a node holding sequences: every msg it gets is counted, whoever tracks it (another kafka-in's, an
    // inject's parts complete a sequence too, and take the node's time)
    const mode = this.holdsSequences(nodeId);
    const ofSequences = mode ? this.legacyOf(nodeId) : undefined;
    let serial = 0;
    let seq: string | undefined;
    if (ofSequences) {
      ofSequences.mode = mode;
      ofSequences.seqOf ??= new Map();
      ofSequences.serialOf ??= new Map();
      serial = ofSequences.receipts = (ofSequences.receipts ?? 0) + 1;
      seq = this.partOf(nodeId, ofSequences, msg, serial);
    }
    const entry = this.holding(msgId, nodeId, msg);
    if (!entry) {
      if (ofSequences) this.forgetIfEmpty(nodeId, ofSequences);
      return;
    }
    const s = this.nodes.get(nodeId);
    if (s && s.turn === this.turn && s.sent.includes(entry)) {
      if (ofSequences) this.forgetIfEmpty(nodeId, ofSequences);
      if (this.close(entry, nodeId)) this.afterClose(entry, nodeId);
      return;
    }
    // a deploy is stopping the node: its input handler is gone, or it ends before handling what it queued
    if (this.stopping?.(nodeId)) return this.interruptAt(entry, nodeId);
    const q = this.legacyOf(nodeId);
    q.queue.push(entry);
    q.seqOf?.set(entry, seq);
    q.serialOf?.set(entry, serial);
    this.touchLegacy(nodeId, q);
  }

  private legacyOf(nodeId: string): LegacyQueue<R> {
    let q = this.legacy.get(nodeId);
    if (!q) this.legacy.set(nodeId, (q = { queue: [], last: 0, timer: undefined }));
    return q;
  }

  /**
   * A node holding sequences got a part of one (msg.parts): counted, and the sequence is complete when its
   * last part came. Core switch then handles the sequence's parts one per event-loop iteration, after what
   * it got before (it handles msgs in order, at most two iterations each), and sends those it passes
   * together when it handled the last (recreating sequences) or each as it handles it. So it is done with
   * a complete sequence when it sends a part of it (together), or a msg it got after the sequence's last
   * part (see sentOfSequence); or, failing any such sign (it dropped every part), once it had the
   * iterations to handle what it got till then (the drain mark) and sent nothing for LEGACY_IDLE_MS (an
   * asynchronous rule may take longer). The sequence's id, if the msg is a part.
   */
  private partOf(
    nodeId: string,
    q: LegacyQueue<R>,
    msg: object | undefined,
    serial: number,
  ): string | undefined {
    const parts = (msg as { parts?: { id?: unknown; count?: unknown } } | undefined)?.parts;
    if (typeof parts?.id !== "string") return undefined;
    const id = parts.id;
    const seqs = (q.seqs ??= new Map<string, { count: number | undefined; got: number; since: number }>());
    const known = seqs.get(id) ?? { count: undefined, got: 0, since: this.now() };
    known.got++;
    if (typeof parts.count === "number") known.count = parts.count;
    seqs.set(id, known);
    if (known.count !== undefined && known.got >= known.count) {
      seqs.delete(id);
      const mark: DrainMark<R> = {
        nodeId,
        q,
        id,
        serial,
        drainAt: this.tick + 2 * (serial - (q.handledUpTo ?? 0)) + 2,
        drained: false,
        drainedAt: 0,
      };
      (q.complete ??= new Map()).set(id, mark);
      this.drainMarks.push(mark);
      this.startTicking();
    }
    return id;
  }

  /** Counts event-loop iterations while drain marks wait: one ticker for every node and mark. */
  private startTicking(): void {
    if (this.ticking) return;
    this.ticking = true;
    const tick = () => {
      this.tick++;
      for (let m = this.drainMarks.peek(); m && m.drainAt <= this.tick; m = this.drainMarks.peek()) {
        this.drainMarks.pop();
        if (this.legacy.get(m.nodeId) !== m.q || m.q.complete?.get(m.id) !== m) continue;
        m.drained = true;
        m.drainedAt = this.now();
        m.q.handledUpTo = Math.max(m.q.handledUpTo ?? 0, m.serial);
        this.armSequences(m.nodeId, m.q);
      }
      if (this.drainMarks.peek()) this.nextLoop(tick);
      else this.ticking = false;
    };
    this.nextLoop(tick);
  }

  /** Drops the parts of the drained sequences once the node sent nothing for LEGACY_IDLE_MS since. */
  private armSequences(nodeId: string, q: LegacyQueue<R>): void {
    if (q.seqTimer) return;
    const quietSince = (m: DrainMark<R>) => Math.max(m.drainedAt, q.lastSend ?? 0);
    let due = Infinity;
    for (const m of q.complete?.values() ?? [])
      if (m.drained) due = Math.min(due, quietSince(m) + LEGACY_IDLE_MS);
    if (due === Infinity) return;
    q.seqTimer = setTimeout(
      () => {
        q.seqTimer = undefined;
        if (this.legacy.get(nodeId) !== q || !q.complete) return;
        const now = this.now();
        const quiet = new Set<string>();
        for (const [id, m] of q.complete)
          if (m.drained && now - quietSince(m) >= LEGACY_IDLE_MS) quiet.add(id);
        for (const id of quiet) q.complete.delete(id);
        if (quiet.size > 0) this.dropParts(nodeId, q, (seq) => quiet.has(seq));
        if (this.legacy.get(nodeId) === q) this.armSequences(nodeId, q);
      },
      Math.max(0, due - this.now()),
    );
    q.seqTimer.unref?.();
  }

  /**
   * The msg reached an instance of `nodeId` that a deploy had closed (its input handler gone): no handler
   * ran, none will call done; its records fail as interrupted.
   */
  unhandled(msgId: string | undefined, nodeId: string, msg?: object): void {
    const entry = this.holding(msgId, nodeId, msg);
    if (entry) this.interruptAt(entry, nodeId);
  }

  /** The entry of this msg that `nodeId` holds a unit of (by id, else by the delivered object). */
  private holding(msgId: string | undefined, nodeId: string, msg?: object): Entry<R> | undefined {
    const held = (e: Entry<R> | undefined) =>
      e !== undefined &&
      this.entries.get(e.id) === e &&
      (e.nodes ? (e.nodes.get(nodeId) ?? 0) > 0 : e.node === nodeId && e.count > 0);
    const byId = msgId === undefined ? undefined : this.entries.get(msgId);
    if (held(byId)) return byId;
    const known = msg ? this.byObject.get(msg) : undefined;
    for (const e of Array.isArray(known) ? known : known ? [known] : []) if (held(e)) return e;
    return undefined;
  }

  /**
   * A node holding sequences (core switch recreating them, or with a "tail" rule) sends `entry`. It
   * handles msgs in the order they came: sending a msg, it has handled what came before it; sending a part
   * of a complete sequence, it is handling the sequence (after what came before its last part). The
   * complete sequences it is done with lose the parts it did not send by the turn's end (see
   * releaseSequences); msgs that are no part of a sequence follow the in-order rule.
   */
  private sentOfSequence(nodeId: string, q: LegacyQueue<R>, entry: Entry<R>): void {
    q.lastSend = this.now();
    const at = q.queue.indexOf(entry);
    const seq = at >= 0 ? q.seqOf?.get(entry) : undefined;
    const own = at >= 0 ? (q.serialOf?.get(entry) ?? 0) : 0;
    const mark = seq !== undefined ? q.complete?.get(seq) : undefined;
    // what it has handled for sure, and the complete sequences it is done with: those whose last part
    // came before `before`
    let handled: number | undefined;
    let before: number | undefined;
    if (at < 0) {
      // the msg it is being given: it had handled every msg it got before
      if (this.holding(entry.id, nodeId) === entry) {
        handled = q.receipts ?? 0;
        before = Infinity;
      }
    } else if (mark && seq !== undefined) {
      before = mark.serial;
      if (q.mode === "one-by-one") {
        // it handles the parts in the order they came: those before this one that it did not send, it dropped
        handled = mark.serial - 1;
        (q.dropBefore ??= new Map()).set(seq, Math.max(q.dropBefore.get(seq) ?? 0, own));
      } else {
        handled = mark.serial;
        (q.finished ??= new Set()).add(seq);
      }
      this.sequencesSent.add(nodeId);
    } else {
      // a msg that is no part of a sequence; or a part of one this tracker did not see complete: the node
      // is handling its last part, which came after this one
      handled = seq === undefined ? own : own - 1;
      before = own;
    }
    if (handled !== undefined) q.handledUpTo = Math.max(q.handledUpTo ?? 0, handled);
    if (before !== undefined && q.complete)
      for (const [id, c] of q.complete)
        if (c.serial < before) {
          (q.finished ??= new Set()).add(id);
          this.sequencesSent.add(nodeId);
        }
    if (at < 0) {
      if (handled !== undefined) this.releaseLegacy(nodeId, q, q.queue.length);
      if (this.legacy.get(nodeId) === q) this.touchLegacy(nodeId, q);
      return;
    }
    if (seq === undefined) return this.releaseLegacy(nodeId, q, at + 1);
    q.queue.splice(at, 1);
    unqueued(q, entry);
    if (this.entries.get(entry.id) === entry) this.close(entry, nodeId);
    this.touchLegacy(nodeId, q);
  }

  /** Nodes holding sequences that are done with (parts of) complete sequences in this turn. */
  private readonly sequencesSent = new Set<string>();

  /** The end of a turn: what nodes holding sequences did not send of what they are done with is dropped. */
  private releaseSequences(): void {
    for (const nodeId of this.sequencesSent) {
      const q = this.legacy.get(nodeId);
      if (!q) continue;
      const finished = q.finished ?? new Set<string>();
      const dropBefore = q.dropBefore ?? new Map<string, number>();
      q.finished = undefined;
      q.dropBefore = undefined;
      for (const id of finished) q.complete?.delete(id);
      this.dropParts(
        nodeId,
        q,
        (seq, e) =>
          finished.has(seq) || (q.serialOf?.get(e) ?? Infinity) < (dropBefore.get(seq) ?? -Infinity),
      );
    }
    this.sequencesSent.clear();
  }

  /** Drops the queued parts `which` picks; forgets the queue once it holds nothing. */
  private dropParts(nodeId: string, q: LegacyQueue<R>, which: (seq: string, e: Entry<R>) => boolean): void {
    const dropped = q.queue.filter((e) => {
      const seq = q.seqOf?.get(e);
      return seq !== undefined && which(seq, e);
    });
    for (const e of dropped) {
      q.queue.splice(q.queue.indexOf(e), 1);
      unqueued(q, e);
    }
    this.forgetIfEmpty(nodeId, q);
    for (const e of dropped)
      if (this.entries.get(e.id) === e && this.close(e, nodeId)) this.dropped(e, nodeId);
  }

  private forgetIfEmpty(nodeId: string, q: LegacyQueue<R>): void {
    if (q.queue.length > 0 || q.seqs?.size || q.complete?.size) return;
    if (q.timer) clearTimeout(q.timer);
    if (q.seqTimer) clearTimeout(q.seqTimer);
    q.timer = undefined;
    q.seqTimer = undefined;
    if (this.legacy.get(nodeId) === q) this.legacy.delete(nodeId);
  }

  /**
   * Forgets what legacy queues keep of entries no longer tracked (expired, revoked), and the counts of
   * sequences begun before `before` whose tracked parts all went (their other parts may never come).
   */
  private purgeLegacy(before?: number): void {
    for (const [nodeId, q] of [...this.legacy]) {
      if (q.queue.some((e) => this.entries.get(e.id) !== e)) {
        for (const e of q.queue) if (this.entries.get(e.id) !== e) unqueued(q, e);
        q.queue = q.queue.filter((e) => this.entries.get(e.id) === e);
      }
      if (before !== undefined && q.seqs?.size) {
        const queued = new Set(q.queue.map((e) => q.seqOf?.get(e)));
        for (const [id, known] of q.seqs) if (known.since < before && !queued.has(id)) q.seqs.delete(id);
      }
      this.forgetIfEmpty(nodeId, q);
    }
  }

  private touchLegacy(nodeId: string, q: LegacyQueue<R>): void {
    q.last = this.now();
    if (q.timer) return;
    const check = () => {
      q.timer = undefined;
      if (this.legacy.get(nodeId) !== q) return;
      const idle = this.now() - q.last;
      if (idle < LEGACY_IDLE_MS) {
        q.timer = setTimeout(check, LEGACY_IDLE_MS - idle);
        q.timer.unref?.();
        return;
      }
      this.releaseLegacy(nodeId, q, q.queue.length);
    };
    q.timer = setTimeout(check, LEGACY_IDLE_MS);
    q.timer.unref?.();
  }

  /**
   * Closes the first `n` queued msgs of a node without done callback; of a node holding sequences, only
   * those that are no part of one (a part goes with its sequence: see partOf), unless a deploy stopped it.
   */
  private releaseLegacy(nodeId: string, q: LegacyQueue<R>, n: number): void {
    let done = q.queue.splice(0, n);
    if (q.seqOf && !q.stopped) {
      const seqOf = q.seqOf;
      const held = done.filter((e) => seqOf.get(e) !== undefined);
      done = done.filter((e) => seqOf.get(e) === undefined);
      q.queue.unshift(...held);
    }
    for (const e of done) unqueued(q, e);
    if (q.stopped) {
      q.seqs?.clear();
      q.complete?.clear();
    }
    this.forgetIfEmpty(nodeId, q);
    for (const e of done) {
      if (this.entries.get(e.id) !== e) continue;
      if (q.stopped) this.interruptAt(e, nodeId);
      else if (this.close(e, nodeId)) this.dropped(e, nodeId);
    }
  }

  /**
   * `nodeId`, a node without done callback, let go of `entry` without sending it (or sent it on: then
   * others hold it still). Not an afterClose: the msgs the node sends in this turn carry other records,
   * and a hand-over would make one of them carry this one too (mixed partitions under effectively-once,
   * a drop dead-lettered with another record's error).
   */
  private dropped(entry: Entry<R>, nodeId: string): void {
    if (entry.total > 0) return;
    this.entries.delete(entry.id);
    if (this.stopping?.(nodeId)) this.failRoots(entry, new InterruptedError(nodeId), "interrupted");
    else this.release(entry);
  }

  /** `nodeId` will never handle `entry`: its unit there closes, its records fail as interrupted. */
  private interruptAt(entry: Entry<R>, nodeId: string): void {
    if (!this.close(entry, nodeId)) return;
    this.failRoots(entry, new InterruptedError(nodeId), "interrupted");
    if (entry.total === 0) this.entries.delete(entry.id);
  }

  private pendingDecision(entry: Entry<R>, nodeId: string): void {
    this.pending.push({ entry, node: nodeId });
    this.schedule();
  }

  /** The finished `entry`'s roots go to the msgs its last holder `s` sent; then it is released. */
  private handOver(entry: Entry<R>, s: NodeState<R>): void {
    const sent = s.sent;
    this.entries.delete(entry.id);
    for (const child of sent)
      if (child !== entry && this.entries.get(child.id) === child) this.inherit(child, entry, true);
    this.release(entry);
  }

  private release(entry: Entry<R>): void {
    if (entry.root) this.releaseRoot(entry, entry.root);
    else if (entry.roots) for (const r of entry.roots) this.releaseRoot(entry, r);
  }

  /** `entry` no longer holds `root`: it settles when nothing else does. */
  private releaseRoot(entry: Entry<R>, root: Root<R>): void {
    if (root.done) return;
    if (--root.holds === 0) {
      this.end(root);
      this.events.settled(root.value);
    } else if (entry.blocks) this.addBlocker(root, -1);
  }

  private failRoots(entry: Entry<R>, error: unknown, cause: "error" | "interrupted" | "expired"): void {
    const one = (root: Root<R>) => {
      if (root.done) return;
      this.end(root);
      this.events.failed(root.value, error, cause);
    };
    if (entry.root) one(entry.root);
    else if (entry.roots) for (const r of entry.roots) one(r);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(() => this.flush());
  }

  /** Ends the turn: entries finished without a send in it are handed over or released. */
  flush(): void {
    this.scheduled = false;
    const pending = this.pending;
    this.pending = [];
    for (const { entry, node } of pending) {
      if (this.entries.get(entry.id) !== entry || entry.total > 0) continue;
      const s = node && !this.isIndependent(node) ? this.nodes.get(node) : undefined;
      if (s && s.turn === this.turn && s.sent.length > 0) this.handOver(entry, s);
      else if (s && s.failedTurn === this.turn) {
        this.entries.delete(entry.id);
        this.failRoots(entry, s.failure, "error");
      } else {
        this.entries.delete(entry.id);
        this.release(entry);
      }
    }
    if (this.sequencesSent.size > 0) this.releaseSequences();
    this.turn++;
    // forget nodes that hold nothing (their sent lists belong to an ended turn)
    for (const [id, s] of this.nodes) if (s.holding.size === 0) this.nodes.delete(id);
  }

  /**
   * While `isStopping` is set (Node-RED is stopping flows), an entry finished without a send by a node it
   * names is interrupted, not settled. Pass undefined once the flows started again.
   */
  setStopping(isStopping: ((nodeId: string) => boolean) | undefined): void {
    this.stopping = isStopping;
    if (isStopping) {
      for (const [nodeId, q] of this.legacy) if (isStopping(nodeId)) q.stopped = true;
      for (const [nodeId, s] of this.nodes)
        if (s.holding.size > 0 && isStopping(nodeId)) {
          let held = this.heldByStopped.get(nodeId);
          if (!held) this.heldByStopped.set(nodeId, (held = new Set()));
          for (const entry of s.holding) held.add(entry);
        }
      return;
    }
    // the flows started again: a node of the same id may now be another node (a "nodes" deploy turned on a
    // switch's "recreate message sequences", replaced a function by a join): its answers are asked afresh
    this.independentNodes.clear();
    this.groupNodes.clear();
    this.sequenceNodes.clear();
    this.collectorNodes.clear();
    // what the stopped instances queued is interrupted now, and the new instance (the same node id) queues
    // afresh
    for (const [nodeId, q] of [...this.legacy]) if (q.stopped) this.releaseLegacy(nodeId, q, q.queue.length);
    // What a stopped instance held and never finished (a function whose close cleared the timer that
    // would have sent it, a link call waiting for its answer) it never will: interrupted, tried again.
    const held = [...this.heldByStopped];
    this.heldByStopped.clear();
    for (const [nodeId, entries] of held)
      for (const entry of entries) {
        if (this.entries.get(entry.id) !== entry) continue;
        let closed = false;
        while (this.close(entry, nodeId)) closed = true;
        if (!closed) continue;
        this.failRoots(entry, new InterruptedError(nodeId), "interrupted");
        if (entry.total === 0) this.entries.delete(entry.id);
      }
    this.forgetDeadPools();
  }

  /** What the nodes a deploy is stopping held when it began (see setStopping). */
  private readonly heldByStopped = new Map<string, Set<Entry<R>>>();

  /**
   * Fails every live root tracked before `before` (ms clock) as expired, with the ids of the nodes that
   * hold it, oldest first; returns how many. Spared: a root whose msg reached a node since `before`, or
   * is held by a node active since then (given or sending msgs) whose latest progress, if made after the
   * msg reached it, was on msgs that came no later (see NodeState.progress).
   */
  expire(before: number, error: (holders: string[]) => unknown): number {
    const failed = this.expireRoots(before, error);
    if (this.legacy.size > 0) this.purgeLegacy(before);
    return failed;
  }

  private expireRoots(before: number, error: (holders: string[]) => unknown): number {
    const expired: Root<R>[] = [];
    for (const root of this.live) {
      if (root.at >= before) break;
      expired.push(root);
    }
    if (expired.length === 0) {
      // entries a node keeps holding with discarded records only go by this deadline too
      if (this.keptDiscarded) this.prune(before);
      return 0;
    }
    const holders = new Map<Root<R>, Set<string>>();
    // A node that holds the record and is slow, not stuck: it got the msg within the deadline, or it is
    // active and working in arrival order (a rate-limiting delay's queue, a join still filling its group),
    // and a retry would only queue a copy behind the original. One whose later msgs overtook it (a lost
    // done, a join group that never completes while others do, a send that never returns) does not spare it.
    const working = (n: string, arrived: number) => {
      if (arrived >= before) return true;
      const s = this.nodes.get(n);
      if (!s || Math.max(s.given ?? -Infinity, s.progress ?? -Infinity) < before) return false;
      const overtaken =
        s.progress !== undefined && s.progress >= arrived && (s.progressOf ?? -Infinity) > arrived;
      return !overtaken;
    };
    const spared = new Set<Root<R>>();
    for (const root of expired) holders.set(root, new Set());
    for (const entry of this.entries.values()) {
      const nodes = entry.nodes ? [...entry.nodes.keys()] : entry.node && entry.count > 0 ? [entry.node] : [];
      const spares = nodes.some((n) => working(n, entry.given));
      const each = (root: Root<R>) => {
        const set = holders.get(root);
        if (set) for (const n of nodes) set.add(n);
        if (set && spares) spared.add(root);
      };
      if (entry.root) each(entry.root);
      else if (entry.roots) for (const r of entry.roots) each(r);
    }
    let failed = 0;
    for (const root of expired) {
      if (root.done || spared.has(root)) continue;
      this.end(root);
      failed++;
      this.events.failed(root.value, error([...(holders.get(root) ?? [])]), "expired");
    }
    this.prune(before);
    return failed;
  }

  /** Forgets the records `drop` selects (revoked, or to be replayed): they neither settle nor fail; returned. */
  forget(drop: (record: R) => boolean): R[] {
    const dropped: R[] = [];
    for (const root of this.live) {
      if (drop(root.value)) {
        this.end(root);
        root.discarded = true;
        this.keptDiscarded = true;
        dropped.push(root.value);
      }
    }
    this.prune();
    return dropped;
  }

  /**
   * Entries whose roots are all done are of no more use, except one a node still holds with a discarded
   * root: what that node sends with it is tainted (see inherit). Those go too once tracked before `before`
   * (the settle deadline), so that a node that never finishes them does not keep them for ever.
   */
  private prune(before?: number): void {
    let kept = false;
    for (const [id, entry] of this.entries) {
      const roots = entry.root ? [entry.root] : [...(entry.roots ?? [])];
      if (!roots.every((r) => r.done)) continue;
      const held =
        entry.total > 0 &&
        roots.some((r) => r.discarded) &&
        (before === undefined || roots.some((r) => r.at >= before));
      if (held) kept = true;
      else {
        this.entries.delete(id);
        for (const n of entry.nodes ? entry.nodes.keys() : entry.node ? [entry.node] : [])
          this.nodes.get(n)?.holding.delete(entry);
      }
    }
    this.keptDiscarded = kept;
    if (this.legacy.size > 0) this.purgeLegacy();
    if (this.pools.size > 0) this.forgetDeadPools();
  }

  /**
   * What the msg `msgId` carries, for a publisher that must know which records its send stores: the live
   * records no other msg holds (they settle with this msg alone), and whether it is tainted (part of it
   * belongs to a discarded pass). Undefined when the msg is not tracked.
   */
  carried(msgId: string): { alone: R[]; live: boolean; tainted: boolean } | undefined {
    const entry = this.entries.get(msgId);
    if (!entry) return undefined;
    let tainted = entry.tainted;
    let live = false;
    const alone: R[] = [];
    const one = (root: Root<R>) => {
      if (root.discarded) tainted = true;
      else if (!root.done) {
        live = true;
        if (root.holds === 1) alone.push(root.value);
      }
    };
    if (entry.root) one(entry.root);
    else if (entry.roots) for (const r of entry.roots) one(r);
    return { alone, live, tainted };
  }

  /** Whether a msg that a node other than `except` holds still carries a discarded record `select` picks. */
  holdsDiscarded(select: (record: R) => boolean, except: ReadonlySet<string>): boolean {
    for (const entry of this.entries.values()) {
      if (entry.total === 0) continue;
      if (entry.nodes ? [...entry.nodes.keys()].every((n) => except.has(n)) : except.has(entry.node ?? ""))
        continue;
      if (entry.root) {
        if (entry.root.discarded && select(entry.root.value)) return true;
      } else if (entry.roots) for (const r of entry.roots) if (r.discarded && select(r.value)) return true;
    }
    return false;
  }

  /** Whether the msg `msgId` holds records and all of them were discarded (see forget). */
  discarded(msgId: string): boolean {
    const entry = this.entries.get(msgId);
    if (!entry) return false;
    if (entry.root) return entry.root.discarded;
    if (!entry.roots || entry.roots.size === 0) return false;
    for (const r of entry.roots) if (!r.discarded) return false;
    return true;
  }

  /** Forgets everything (the node is closing; unsettled records are redelivered by Kafka). */
  clear(): void {
    for (const q of this.legacy.values()) {
      if (q.timer) clearTimeout(q.timer);
      if (q.seqTimer) clearTimeout(q.seqTimer);
    }
    this.legacy.clear();
    this.pools.clear();
    this.closing.clear();
    this.pooledIds.clear();
    this.drainMarks.clear();
    this.entries.clear();
    this.nodes.clear();
    this.live.clear();
    this.pending = [];
  }
}

/** A node was stopped (redeploy, shutdown) while it held a record: the record was not finished. */
export class InterruptedError extends BridgeError {
  constructor(readonly nodeId: string) {
    super("kafka-in.errors.interrupted", `node ${nodeId} was stopped while it held the record`, true);
    this.name = "InterruptedError";
  }
}
