// Whether the flow has finished with the msgs a source of its own sends (the window node's results), from
// the same message hooks as kafka-in's records (flow-hooks.ts): a result is settled once every msg made
// from it was finished downstream (pulsar-out's done after Pulsar's receipt), failed when a node reported
// an error, a deploy stopped a node holding it, or it was not settled within the deadline.
import { SettlementTracker, type NodeKinds } from "./settlement";

export interface ResultFlowEvents<R> {
  settled(result: R): void;
  failed(result: R, error: unknown): void;
}

export class ResultFlow<R> {
  private readonly tracker: SettlementTracker<R>;
  private readonly sweep: NodeJS.Timeout | undefined;
  deploying = false;

  constructor(
    events: ResultFlowEvents<R>,
    /** A result not settled this long after it was sent fails (ms); 0: never. */
    settleTimeoutMs: number,
    /** What the flow's nodes are (a join after the window, a trigger, a switch holding sequences). */
    kinds: NodeKinds = {},
  ) {
    this.tracker = new SettlementTracker<R>(
      {
        settled: (r) => events.settled(r),
        failed: (r, error) => events.failed(r, error),
      },
      { ...kinds },
    );
    if (settleTimeoutMs > 0) {
      this.sweep = setInterval(
        () =>
          this.tracker.expire(
            Date.now() - settleTimeoutMs,
            (holders) =>
              new Error(
                `not settled within ${settleTimeoutMs} ms; held by ${holders.join(", ") || "nobody"}`,
              ),
          ),
        Math.min(10_000, Math.max(100, settleTimeoutMs / 4)),
      );
      this.sweep.unref();
    }
  }

  /** `msgId` is about to be sent holding `result`. */
  track(msgId: string, result: R): void {
    this.tracker.track(msgId, result);
  }

  /** Results sent and not settled. */
  get open(): number {
    return this.tracker.records;
  }

  delivered(msgId: string, sourceId: string, destinationId: string, msg?: object): void {
    this.tracker.delivered(msgId, sourceId, destinationId, msg);
  }

  completed(msgId: string | undefined, nodeId: string, error?: unknown, msg?: object): void {
    this.tracker.completed(msgId, nodeId, error, msg);
  }

  routed(msgId: string, destinationId: string): void {
    this.tracker.routed(msgId, destinationId);
  }

  received(msgId: string | undefined, nodeId: string, msg?: object): void {
    this.tracker.received(msgId, nodeId, msg);
  }

  unhandled(msgId: string | undefined, nodeId: string, msg?: object): void {
    this.tracker.unhandled(msgId, nodeId, msg);
  }

  setStopping(isStopping: ((nodeId: string) => boolean) | undefined): void {
    this.deploying = isStopping !== undefined;
    this.tracker.setStopping(isStopping);
  }

  flowsStarted(): void {
    this.setStopping(undefined);
  }

  /** Forgets everything: what was not settled is sent again by the partition's next owner. */
  close(): void {
    if (this.sweep) clearInterval(this.sweep);
    this.tracker.clear();
  }
}
