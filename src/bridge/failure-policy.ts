// What happens to a record the flow failed (DESIGN §4): typed by what the failure is about, and bounded.
//
// - interrupted (a node was stopped while it held the record): tried again, not counted as a try;
// - about the record (it does not decode, is too big, renders an invalid topic): to the dead-letter target
//   at once, or, without one, block;
// - about the destination (authorization, a missing namespace, deduplication off): block, never
//   dead-letter (every record would go there), tried again with back-off until the user fixes it;
// - transient (anything else): tried again with back-off until `maxAttempts` tries failed, then to the
//   dead-letter target, or, without one, block. With `maxAttempts` 0 it is tried without end, and after
//   FREE_RETRIES tries its partition stops behind it (block, still tried with back-off): the partition
//   flowing on would keep every later offset in memory, uncommittable, for as long as it fails.
// Blocking stops the record's partition: nothing past it is committed and nothing new is fetched from it,
// so memory stays bounded. A blocked record is tried again slowly (and at once after a redeploy).
import type { FailureScope } from "../common/errors";

export interface FailurePolicyOptions {
  /** Tries of a record for retriable failures; 0 = try without end. */
  maxAttempts: number;
  /** Back-off of the first retry; doubled per try up to maxBackoffMs. */
  retryBackoffMs: number;
  maxBackoffMs?: number;
  /** Whether a dead-letter target is configured. */
  deadLetter: boolean;
}

export type Decision =
  | { kind: "retry"; delayMs: number; counted: boolean }
  | { kind: "dead-letter" }
  | { kind: "block"; retryInMs: number | undefined };

export const DEFAULT_MAX_BACKOFF_MS = 60_000;
/** Tries without end (`maxAttempts` 0): how many let the partition flow on before it stops behind the record. */
export const FREE_RETRIES = 5;

export class FailurePolicy {
  constructor(private readonly o: FailurePolicyOptions) {}

  private get maxBackoffMs(): number {
    return this.o.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
  }

  /** Back-off before try `tries + 1` after `tries` failed tries. */
  backoff(tries: number): number {
    const base = Math.max(0, this.o.retryBackoffMs);
    return Math.min(this.maxBackoffMs, base * 2 ** Math.min(Math.max(tries - 1, 0), 20));
  }

  /**
   * The decision for a record that failed; `tries` counts the failed tries including this one
   * (interrupted ones excluded).
   */
  decide(tries: number, f: { scope: FailureScope; interrupted: boolean }): Decision {
    if (f.interrupted)
      return { kind: "retry", delayMs: Math.min(this.o.retryBackoffMs, 1000), counted: false };
    switch (f.scope) {
      case "record":
        return this.o.deadLetter ? { kind: "dead-letter" } : { kind: "block", retryInMs: this.maxBackoffMs };
      case "destination":
        return { kind: "block", retryInMs: Math.max(1000, this.backoff(tries)) };
      default:
        if (this.o.maxAttempts <= 0 && tries >= FREE_RETRIES)
          return { kind: "block", retryInMs: this.backoff(tries) };
        if (this.o.maxAttempts <= 0 || tries < this.o.maxAttempts)
          return { kind: "retry", delayMs: this.backoff(tries), counted: true };
        return this.o.deadLetter ? { kind: "dead-letter" } : { kind: "block", retryInMs: this.maxBackoffMs };
    }
  }
}
