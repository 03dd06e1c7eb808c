// pulsar-out's producers, one per key (a topic, or a topic and a producer name in effectively-once mode):
// opened once on first use (a failed open is forgotten, so the next msg tries again), closed when unused
// for a while (a template topic names ever new topics) or when their tag says so (the source partition of
// an effectively-once producer was revoked), all closed on redeploy.

export interface Closable {
  close(): Promise<void>;
}

interface Entry<P, T> {
  producer: Promise<P>;
  usedAt: number;
  /** Calls of use() under way: a producer is not idle while one sends. */
  inUse: number;
  tag: T | undefined;
  pinned: boolean;
}

export interface PoolOptions {
  /** A producer unused this long is closed by evictIdle (pinned ones never). */
  idleMs: number;
  now?: () => number;
  /** A close that failed (the producer is forgotten anyway). */
  closeFailed?: (key: string, error: unknown) => void;
}

export class ProducerPool<P extends Closable, T = undefined> {
  private readonly entries = new Map<string, Entry<P, T>>();
  /** Closes under way, by key: a producer of the same key opens after its predecessor closed. */
  private readonly closing = new Map<string, Promise<void>>();
  private readonly now: () => number;

  constructor(private readonly o: PoolOptions) {
    this.now = o.now ?? Date.now;
  }

  /**
   * Runs `fn` with the producer of `key`, opened with `open` the first time (or again after a failed open);
   * the producer counts as used until `fn` settled.
   */
  async use<R>(
    key: string,
    open: () => Promise<P>,
    fn: (producer: P) => Promise<R>,
    o: { tag?: T; pinned?: boolean } = {},
  ): Promise<R> {
    const entry = this.entry(key, open, o.tag, o.pinned === true);
    entry.inUse++;
    try {
      return await fn(await entry.producer);
    } finally {
      entry.inUse--;
      entry.usedAt = this.now();
    }
  }

  /** Opens the producer of `key` ahead of its first use. */
  open(key: string, open: () => Promise<P>, o: { tag?: T; pinned?: boolean } = {}): Promise<P> {
    return this.entry(key, open, o.tag, o.pinned === true).producer;
  }

  private entry(key: string, open: () => Promise<P>, tag: T | undefined, pinned: boolean): Entry<P, T> {
    const known = this.entries.get(key);
    if (known) {
      known.usedAt = this.now();
      return known;
    }
    // the broker refuses a second producer of one name (ProducerBusy) until the first one closed
    const before = this.closing.get(key);
    const producer = before ? before.then(open) : open();
    const entry: Entry<P, T> = { producer, usedAt: this.now(), inUse: 0, tag, pinned };
    this.entries.set(key, entry);
    producer.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return entry;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Closes and forgets the producers whose tag `select` picks; returns their tags. */
  closeWhere(select: (tag: T) => boolean): T[] {
    const tags: T[] = [];
    for (const [key, entry] of this.entries)
      if (entry.tag !== undefined && select(entry.tag)) {
        tags.push(entry.tag);
        this.drop(key, entry);
      }
    return tags;
  }

  /**
   * Closes and forgets every producer (their schema changed): each closes once what it sends is done, and a
   * producer of the same key opens only after its predecessor closed. Returns their tags.
   */
  retireAll(): (T | undefined)[] {
    const tags = [...this.entries.values()].map((e) => e.tag);
    for (const [key, entry] of [...this.entries]) this.drop(key, entry);
    return tags;
  }

  /** Closes and forgets the producers unused for idleMs; returns their keys and tags. */
  evictIdle(): { key: string; tag: T | undefined }[] {
    const before = this.now() - this.o.idleMs;
    const out: { key: string; tag: T | undefined }[] = [];
    for (const [key, entry] of this.entries)
      if (!entry.pinned && entry.inUse === 0 && entry.usedAt <= before) {
        out.push({ key, tag: entry.tag });
        this.drop(key, entry);
      }
    return out;
  }

  /** Closes every producer (a close waits for what its producer still sends); never rejects. */
  async closeAll(): Promise<void> {
    const all = [...this.entries];
    this.entries.clear();
    await Promise.all([...all.map(([key, e]) => this.close(key, e)), ...this.closing.values()]);
  }

  private drop(key: string, entry: Entry<P, T>): void {
    this.entries.delete(key);
    const closed = this.close(key, entry);
    this.closing.set(key, closed);
    void closed.then(() => {
      if (this.closing.get(key) === closed) this.closing.delete(key);
    });
  }

  private async close(key: string, entry: Entry<P, T>): Promise<void> {
    let producer: P;
    try {
      producer = await entry.producer;
    } catch {
      return; // never opened: nothing to close
    }
    try {
      await producer.close();
    } catch (err) {
      this.o.closeFailed?.(key, err);
    }
  }
}
