// Capped exponential back-off with jitter, for reconnects and retries.

export class Backoff {
  private current: number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly multiplier: number;
  private readonly jitter: number;

  constructor(o: { initialMs?: number; maxMs?: number; multiplier?: number; jitter?: number } = {}) {
    this.initialMs = o.initialMs ?? 100;
    this.maxMs = o.maxMs ?? 30_000;
    this.multiplier = o.multiplier ?? 2;
    this.jitter = o.jitter ?? 0.2;
    this.current = this.initialMs;
  }

  /** The next delay in ms: grows by `multiplier` up to `maxMs`, each value spread by ±jitter. */
  next(): number {
    const base = this.current;
    this.current = Math.min(this.maxMs, this.current * this.multiplier);
    const spread = base * this.jitter * (Math.random() * 2 - 1);
    return Math.max(0, Math.round(base + spread));
  }

  reset(): void {
    this.current = this.initialMs;
  }
}
