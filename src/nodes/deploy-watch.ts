// Which nodes Node-RED is stopping during a deploy, from its flows:stopping / flows:started events: a node
// that finishes a msg while it is being stopped (join, batch and delay call their held done()s on close)
// did not deliver it, so the records it held must be tried again rather than settled.
import type { Node, RED } from "./red";

interface DeployDiff {
  changed?: string[];
  removed?: string[];
  linked?: string[];
  rewired?: string[];
  flowChanged?: string[];
  globalConfigChanged?: boolean;
}

interface DeployEvent {
  type?: string;
  diff?: DeployDiff;
}

/** Node types whose done() without error means the msg reached its destination, even while stopping. */
const DELIVERING_TYPES = new Set(["pulsar-out"]);

export interface DeployListener {
  /** Node-RED is stopping the nodes `isStopping` names. */
  setStopping(isStopping: ((nodeId: string) => boolean) | undefined): void;
  /** The flows (re)started. */
  flowsStarted(): void;
}

/**
 * The predicate of the nodes a deploy stops, as Node-RED's flows/index.js chooses them: everything for a
 * full deploy (or a changed global config); the changed and removed nodes for "nodes"; those plus the
 * linked and rewired ones, and every node of a changed flow, for "flows".
 */
export function stoppingPredicate(RED: RED, e: DeployEvent | undefined): (nodeId: string) => boolean {
  const diff = e?.diff;
  const type = !diff || diff.globalConfigChanged ? "full" : (e?.type ?? "full");
  const typeOf = (id: string) => (RED.nodes.getNode(id) as (Node & { type?: string }) | null)?.type ?? "";
  if (type === "full") return (id) => !DELIVERING_TYPES.has(typeOf(id));
  const ids = new Set([...(diff?.changed ?? []), ...(diff?.removed ?? [])]);
  if (type === "flows") for (const id of [...(diff?.linked ?? []), ...(diff?.rewired ?? [])]) ids.add(id);
  const flows = new Set(type === "flows" ? (diff?.flowChanged ?? []) : []);
  return (id) => {
    if (DELIVERING_TYPES.has(typeOf(id))) return false;
    if (ids.has(id)) return true;
    const z = (RED.nodes.getNode(id) as (Node & { z?: string }) | null)?.z;
    return z !== undefined && flows.has(z);
  };
}

/** Tells `listener` about deploys until the returned function is called. */
export function watchDeploys(RED: RED, listener: DeployListener): () => void {
  const events = (RED as unknown as { events?: NodeJS.EventEmitter }).events;
  if (!events) return () => undefined;
  const stopping = (e: DeployEvent) => listener.setStopping(stoppingPredicate(RED, e));
  const started = () => listener.flowsStarted();
  events.on("flows:stopping", stopping);
  events.on("flows:started", started);
  return () => {
    events.off("flows:stopping", stopping);
    events.off("flows:started", started);
  };
}
