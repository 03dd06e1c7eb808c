// Whether a flow has finished with a record, from Node-RED's message hooks: every delivery of a tracked
// msg id to a node (onSend) opens one unit of work for that node; the node's done() (onComplete) closes
// it. A record settles when no unit is open; an error from any node fails it. Completions from nodes that
// never received the msg through a wire (Catch, Complete and Status nodes are handed msgs directly)
// are ignored, so they cannot close someone else's work.

export interface TrackedRecord {
  /** What the caller needs back (topic/partition/offset, attempt, ...). */
  readonly ref: unknown;
}

interface Entry<R> {
  record: R;
  /** Open deliveries per node id. */
  open: Map<string, number>;
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
    const entry: Entry<R> = { record, open: new Map(), total: 0, error: undefined };
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
    entry.open.set(nodeId, (entry.open.get(nodeId) ?? 0) + 1);
    entry.total++;
  }

  /** A node sent a msg with this id to `destination` (onSend). */
  delivered(msgId: string, destination: string): void {
    const entry = this.entries.get(msgId);
    if (entry) this.open(entry, destination);
  }

  /** `nodeId` called done(error?) for a msg with this id (onComplete). */
  completed(msgId: string, nodeId: string, error?: unknown): void {
    const entry = this.entries.get(msgId);
    if (!entry) return;
    const n = entry.open.get(nodeId);
    if (!n) return;
    if (n === 1) entry.open.delete(nodeId);
    else entry.open.set(nodeId, n - 1);
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
