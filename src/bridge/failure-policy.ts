// What happens to a record the flow failed (DESIGN §4): typed by whether a retry can help, and bounded.
//
// - interrupted (a node was stopped while it held the record): tried again, and not counted as a try;
// - an error no retry can fix (retriable false: a decode failure, an invalid topic, a message too big,
//   a template error, a refused schema): to the dead-letter target at once, or, without one, block;
// - any other error: tried again with back-off until `maxAttempts` tries failed (0: without end), then
//   to the dead-letter target, or, without one, block.
// Blocking stops the record's partition: nothing past it is committed and nothing new is fetched from it,
// so memory stays bounded; a block for a retriable cause is tried again slowly, one for a permanent
// cause when the flows are deployed again (the user changed something).

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
  decide(tries: number, f: { retriable: boolean; interrupted: boolean }): Decision {
    if (f.interrupted)
      return { kind: "retry", delayMs: Math.min(this.o.retryBackoffMs, 1000), counted: false };
    if (!f.retriable)
      return this.o.deadLetter ? { kind: "dead-letter" } : { kind: "block", retryInMs: undefined };
    if (this.o.maxAttempts <= 0 || tries < this.o.maxAttempts)
      return { kind: "retry", delayMs: this.backoff(tries), counted: true };
    return this.o.deadLetter ? { kind: "dead-letter" } : { kind: "block", retryInMs: this.maxBackoffMs };
  }
}
