// Whether a flow has finished with a record, from Node-RED's message hooks: every delivery of a tracked
// msg id to a node (onSend) opens one unit of work for that node; the node's done() (onComplete) closes
// it. A record settles when no unit is open; an error from any node fails it. Completions from nodes that
// never received the msg through a wire (Catch, Complete and Status nodes are handed msgs directly)
// are ignored, so they cannot close someone else's work.

export interface TrackedRecord {
  /** What the caller needs back (topic/partition/offset, attempt, ...). */
  readonly ref: unknown;
}

/**
 * Open deliveries of one msg id. Most msgs are open at one node at a time (a chain of nodes), so that node
 * and its count live in the entry itself; a Map per node is made only when two nodes hold it at once.
 */
interface Entry<R> {
  record: R;
  /** The one node with open deliveries (when `nodes` is undefined) and how many. */
  node: string | undefined;
  count: number;
  /** Open deliveries per node id, once more than one node has some. */
  nodes: Map<string, number> | undefined;
  total: number;
  error: unknown;
}

export class SettlementTracker<R> {
  private readonly entries = new Map<string, Entry<R>>();

  constructor(
    private readonly onSettled: (record: R) => void,
    private readonly onFailed: (record: R, error: unknown) => void,
  ) {}

  /**
   * Starts tracking `msgId` for `record`, with the deliveries the source node itself makes
   * (one per wire of its output). With no delivery at all the record settles at once.
   */
  track(msgId: string, record: R, destinations: readonly string[]): void {
    const entry: Entry<R> = {
      record,
      node: undefined,
      count: 0,
      nodes: undefined,
      total: 0,
      error: undefined,
    };
    this.entries.set(msgId, entry);
    for (const d of destinations) this.open(entry, d);
    if (entry.total === 0) this.finish(msgId, entry);
  }

  has(msgId: string): boolean {
    return this.entries.has(msgId);
  }

  get size(): number {
    return this.entries.size;
  }

  private open(entry: Entry<R>, nodeId: string): void {
    entry.total++;
    if (entry.nodes) entry.nodes.set(nodeId, (entry.nodes.get(nodeId) ?? 0) + 1);
    else if (entry.count === 0 || entry.node === nodeId) {
      entry.node = nodeId;
      entry.count++;
    } else {
      entry.nodes = new Map([
        [entry.node as string, entry.count],
        [nodeId, 1],
      ]);
      entry.node = undefined;
      entry.count = 0;
    }
  }

  /** A node sent a msg with this id to `destination` (onSend). Unknown ids are ignored. */
  delivered(msgId: string, destination: string): void {
    const entry = this.entries.get(msgId);
    if (entry) this.open(entry, destination);
  }

  /** `nodeId` called done(error?) for a msg with this id (onComplete). */
  completed(msgId: string, nodeId: string, error?: unknown): void {
    const entry = this.entries.get(msgId);
    if (!entry) return;
    if (entry.nodes) {
      const n = entry.nodes.get(nodeId);
      if (!n) return;
      if (n === 1) entry.nodes.delete(nodeId);
      else entry.nodes.set(nodeId, n - 1);
    } else {
      if (entry.count === 0 || entry.node !== nodeId) return;
      entry.count--;
    }
    entry.total--;
    if (error !== undefined && error !== null && entry.error === undefined) entry.error = error;
    if (entry.total === 0) this.finish(msgId, entry);
  }

  private finish(msgId: string, entry: Entry<R>): void {
    this.entries.delete(msgId);
    if (entry.error !== undefined) this.onFailed(entry.record, entry.error);
    else this.onSettled(entry.record);
  }

  /** Forgets everything (the node is closing; unsettled records are redelivered by Kafka). */
  clear(): void {
    this.entries.clear();
  }
}
