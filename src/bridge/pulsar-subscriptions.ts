// pulsar-in's topics: each one subscribed until it is (Pulsar not up yet at boot, an Exclusive
// subscription still held by an instance that went away), with a back-off up to 30 s; with a topic
// pattern, the namespace is listed again every period and the topics that come are subscribed, those
// gone closed (as Pulsar's own clients do with a pattern).
import type { Consumer } from "../pulsar/types";
import { matchingTopics, type TopicPattern } from "../pulsar/topic-pattern";

export interface SubscriptionsHooks {
  subscribe(topic: string): Promise<Consumer>;
  /** A topic's consumer is ready: read it. */
  started(topic: string, consumer: Consumer): void;
  /** A topic is no longer wanted: stop reading it and close it. */
  stopped(topic: string, consumer: Consumer): Promise<void>;
  /** A subscription failed; tried again in `seconds`. */
  subscribeFailed(topic: string, err: unknown, seconds: number): void;
  /** Listing the namespace failed; listed again in `seconds`. */
  listFailed(err: unknown, seconds: number): void;
  /** The topics matching the pattern changed (for the status and the log). */
  matched?(added: string[], removed: string[]): void;
}

const MAX_BACKOFF_MS = 30_000;

export class PulsarSubscriptions {
  private closed = false;
  private readonly consumers = new Map<string, Consumer>();
  /** Topics wanted (subscribed or being subscribed), each with the token of its current subscribing. */
  private readonly wanted = new Map<string, object>();
  private readonly wakers = new Set<() => void>();
  private watching: Promise<void> | undefined;

  constructor(
    private readonly hooks: SubscriptionsHooks,
    private readonly firstBackoffMs = 1000,
  ) {}

  get topics(): string[] {
    return [...this.wanted.keys()].sort();
  }

  /** Subscribes `topic` until it is (or until it is removed or everything closes). */
  add(topic: string): void {
    if (this.closed || this.wanted.has(topic)) return;
    const token = {};
    this.wanted.set(topic, token);
    void this.subscribeUntilDone(topic, token);
  }

  async remove(topic: string): Promise<void> {
    this.wanted.delete(topic);
    const c = this.consumers.get(topic);
    this.consumers.delete(topic);
    if (c) await this.hooks.stopped(topic, c).catch(() => undefined);
  }

  /** Lists the namespace now and every `periodMs`; subscribes what matches, closes what no longer does. */
  watch(pattern: TopicPattern, list: () => Promise<string[]>, periodMs: number): void {
    this.watching ??= (async () => {
      let failures = 0;
      while (!this.closed) {
        let wait = periodMs;
        try {
          const now = matchingTopics(await list(), pattern);
          failures = 0;
          if (this.closed) return;
          const added = now.filter((t) => !this.wanted.has(t));
          const removed = this.topics.filter((t) => !now.includes(t));
          for (const t of added) this.add(t);
          for (const t of removed) await this.remove(t);
          if (added.length || removed.length) this.hooks.matched?.(added, removed);
        } catch (err) {
          if (this.closed) return;
          wait = Math.min(periodMs, this.firstBackoffMs * 2 ** Math.min(failures++, 10), MAX_BACKOFF_MS);
          this.hooks.listFailed(err, wait / 1000);
        }
        await this.sleep(wait);
      }
    })();
  }

  private async subscribeUntilDone(topic: string, token: object): Promise<void> {
    const current = () => !this.closed && this.wanted.get(topic) === token;
    for (let delay = this.firstBackoffMs; current();) {
      try {
        const consumer = await this.hooks.subscribe(topic);
        if (!current()) {
          await consumer.close().catch(() => undefined);
          return;
        }
        this.consumers.set(topic, consumer);
        this.hooks.started(topic, consumer);
        return;
      } catch (err) {
        if (!current()) return;
        this.hooks.subscribeFailed(topic, err, delay / 1000);
        await this.sleep(delay);
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((r) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        r();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  /** Stops subscribing and listing (the consumers are closed by their reader). */
  async close(): Promise<void> {
    this.closed = true;
    for (const wake of [...this.wakers]) wake();
    await this.watching;
  }
}
