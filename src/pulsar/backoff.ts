// Capped exponential back-off with jitter, for reconnects and retries.
import { PulsarError } from "./errors";

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

/**
 * Runs `attempt` until it succeeds, a non-retriable error occurs, or `budgetMs` has passed (then the last
 * error is thrown): a broker restarting or a topic being moved is waited out, as the official clients do.
 */
export async function retryWithin(
  budgetMs: number,
  backoff: Backoff,
  attempt: () => Promise<void>,
): Promise<void> {
  const deadline = Date.now() + budgetMs;
  for (;;) {
    try {
      await attempt();
      backoff.reset();
      return;
    } catch (err) {
      const retriable = err instanceof PulsarError && err.retriable;
      const wait = backoff.next();
      if (!retriable || Date.now() + wait > deadline) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
