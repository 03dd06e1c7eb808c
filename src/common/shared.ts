// A connection (or any closeable resource) shared by the nodes that use one config node, counted by user.
// The first acquire opens it, the last release closes it; a failed open is not cached, so the next
// acquire retries. Close always settles: it never throws and never waits longer than the closer does.

export class SharedResource<T> {
  private value: Promise<T> | undefined;
  private readonly users = new Set<string>();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly open: () => Promise<T>,
    private readonly close: (value: T) => Promise<void>,
  ) {}

  /** The resource for user `id` (a node id); opens it when needed. */
  async acquire(id: string): Promise<T> {
    if (this.closing) await this.closing;
    this.users.add(id);
    if (!this.value) {
      const opening = this.open();
      this.value = opening;
      opening.catch(() => {
        if (this.value === opening) this.value = undefined;
      });
    }
    return this.value;
  }

  /** Drops user `id`; closes the resource when no user is left. */
  async release(id: string): Promise<void> {
    this.users.delete(id);
    if (this.users.size === 0) await this.shutdown();
  }

  /** Closes whatever is open, whoever uses it (config node removed or redeployed). */
  async shutdown(): Promise<void> {
    this.users.clear();
    const current = this.value;
    this.value = undefined;
    if (!current) return this.closing;
    this.closing = (async () => {
      try {
        await this.close(await current);
      } catch {
        // a resource that failed to open or to close has nothing left to release
      }
    })();
    const done = this.closing;
    await done;
    if (this.closing === done) this.closing = undefined;
  }

  get userCount(): number {
    return this.users.size;
  }

  get isOpen(): boolean {
    return this.value !== undefined;
  }
}
