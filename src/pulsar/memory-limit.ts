// A client-wide bound on the bytes of messages sent and not yet acknowledged (or failed), over all of a
// client's producers, as the Java client's memoryLimitBytes: a send that does not fit waits (or is refused
// without blockIfQueueFull) until receipts free room. One message larger than the whole limit still goes,
// alone, so that it fails or succeeds on its own instead of waiting for ever.

export class MemoryLimit {
  private used = 0;
  /** In the order they began to wait; each says whether it still waits after its turn. */
  private readonly waiting = new Set<() => boolean>();
  private scheduled = false;

  /** `limitBytes` <= 0: no limit. */
  constructor(readonly limitBytes: number) {}

  get usedBytes(): number {
    return this.used;
  }

  /** Someone waits for room: a newcomer queues behind them instead of taking what frees up first. */
  get contended(): boolean {
    return this.waiting.size > 0;
  }

  /** Takes `bytes` if they fit; false (nothing taken) otherwise. */
  tryTake(bytes: number): boolean {
    if (this.limitBytes <= 0) return true;
    if (this.used > 0 && this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  /** Gives back what tryTake took; those waiting for room are told. */
  give(bytes: number): void {
    if (this.limitBytes <= 0 || bytes === 0) return;
    this.used = Math.max(0, this.used - bytes);
    // told after the current turn (a receipt resolves many sends at once), not from inside it
    if (this.waiting.size === 0 || this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      // first come, first served: a large message is not starved by later small ones
      for (const wake of [...this.waiting]) if (wake()) break;
    });
  }

  /**
   * `wake` is called after each give(), in the order the waiters came, until it is removed (the returned
   * function); it returns true while it still waits (the waiters after it wait too).
   */
  onRoom(wake: () => boolean): () => void {
    this.waiting.add(wake);
    return () => {
      this.waiting.delete(wake);
    };
  }
}
