// Which nodes Node-RED is stopping during a deploy, from its flows:stopping / flows:started events: a node
// that finishes a msg while it is being stopped (join, batch and delay call their held done()s on close)
// did not deliver it, and a msg routed to a node that is stopping (or not yet started again) is not
// delivered either, so the records involved must be tried again rather than settled.
import type { RED } from "./red";

interface DeployDiff {
  changed?: string[];
  removed?: string[];
  added?: string[];
  linked?: string[];
  rewired?: string[];
  flowChanged?: string[];
  globalConfigChanged?: boolean;
}

interface NodeConfigLike {
  id: string;
  type?: string;
  z?: string;
}

interface DeployEvent {
  type?: string;
  diff?: DeployDiff;
  config?: { allNodes?: Record<string, NodeConfigLike> };
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
 * The nodes a deploy stops, decided when flows:stopping is raised (the nodes' types and flows are read
 * then: a stopped node soon leaves the runtime): everything for a full deploy (or a changed global
 * config); otherwise the changed, removed, linked and rewired nodes and every node of a changed flow
 * (a conservative superset of flows/index.js's choice, which costs at most a retry). A node inside a
 * subflow instance (id `<instance>-<node>`) stops with its instance. pulsar-out never counts: its done()
 * means Pulsar has the msg.
 */
export function stoppingPredicate(e: DeployEvent | undefined): (nodeId: string) => boolean {
  const diff = e?.diff;
  const all = e?.config?.allNodes ?? {};
  const delivering = new Set(
    Object.values(all)
      .filter((n) => DELIVERING_TYPES.has(n.type ?? ""))
      .map((n) => n.id),
  );
  const instanceOf = (id: string) => {
    const dash = id.indexOf("-");
    return dash > 0 ? id.slice(0, dash) : id;
  };
  const type = !diff || diff.globalConfigChanged ? "full" : (e?.type ?? "full");
  if (type === "full") return (id) => !delivering.has(id);
  const ids = new Set([
    ...(diff?.changed ?? []),
    ...(diff?.removed ?? []),
    ...(diff?.linked ?? []),
    ...(diff?.rewired ?? []),
  ]);
  const flows = new Set(diff?.flowChanged ?? []);
  const zOf = new Map<string, string | undefined>();
  for (const n of Object.values(all)) zOf.set(n.id, n.z);
  const stops = (id: string): boolean => {
    if (ids.has(id)) return true;
    const z = zOf.get(id);
    return z !== undefined && (flows.has(z) || ids.has(z));
  };
  return (id) => {
    if (delivering.has(id)) return false;
    if (stops(id)) return true;
    const instance = instanceOf(id);
    return instance !== id && stops(instance);
  };
}

/** Tells `listener` about deploys until the returned function is called. */
export function watchDeploys(RED: RED, listener: DeployListener): () => void {
  const events = (RED as unknown as { events?: NodeJS.EventEmitter }).events;
  if (!events) return () => undefined;
  const stopping = (e: DeployEvent) => listener.setStopping(stoppingPredicate(e));
  const started = () => listener.flowsStarted();
  events.on("flows:stopping", stopping);
  events.on("flows:started", started);
  return () => {
    events.off("flows:stopping", stopping);
    events.off("flows:started", started);
  };
}
