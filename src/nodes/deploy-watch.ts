// Which nodes Node-RED is stopping during a deploy, from its flows:stopping / flows:started events: a node
// that finishes a msg while it is being stopped (join, batch and delay call their held done()s on close)
// did not deliver it, and a msg routed to a node that is stopping (or not yet started again) is not
// delivered either, so the records involved must be tried again rather than settled.
import type { HookReceiveEvent, RED } from "./red";

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
  /** Node-RED's active config: `flows` is the array of every tab, subflow and node config. */
  config?: { flows?: NodeConfigLike[]; allNodes?: Record<string, NodeConfigLike> };
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
 * The nodes a deploy stops, decided when flows:stopping is raised (types and flows are read from the
 * deployed config then: a stopped node soon leaves the runtime), as flows/index.js chooses them:
 * everything for a full deploy (or a changed global config); otherwise every node of a tab that changed
 * its own settings, was added or removed, and the nodes of the stop list (changed and removed; for "flows"
 * also linked and rewired). A node inside a subflow instance (id `<instance>-<node>`) stops with its
 * instance. pulsar-out never counts: its done() means Pulsar has the msg.
 */
export function stoppingPredicate(e: DeployEvent | undefined): (nodeId: string) => boolean {
  const diff = e?.diff;
  const configs = e?.config?.flows ?? Object.values(e?.config?.allNodes ?? {});
  const delivering = new Set(configs.filter((n) => DELIVERING_TYPES.has(n.type ?? "")).map((n) => n.id));
  const type = !diff || diff.globalConfigChanged ? "full" : (e?.type ?? "full");
  if (type === "full") return (id) => !delivering.has(id);
  const ids = new Set([...(diff?.changed ?? []), ...(diff?.removed ?? [])]);
  if (type === "flows") for (const id of [...(diff?.linked ?? []), ...(diff?.rewired ?? [])]) ids.add(id);
  const tabs = new Set([...(diff?.flowChanged ?? []), ...(diff?.added ?? []), ...(diff?.removed ?? [])]);
  const zOf = new Map<string, string | undefined>();
  for (const n of configs) zOf.set(n.id, n.z);
  const stops = (id: string): boolean => {
    if (ids.has(id)) return true;
    const z = zOf.get(id);
    return z !== undefined && tabs.has(z);
  };
  return (id) => {
    if (delivering.has(id)) return false;
    if (stops(id)) return true;
    const dash = id.indexOf("-");
    return dash > 0 && stops(id.slice(0, dash));
  };
}

/**
 * How long after flows:stopped the stopping set is kept without flows:started: a start that fails (a
 * missing node type, a module that does not install) never raises it.
 */
const START_GRACE_MS = 30_000;

/** Tells `listener` about deploys until the returned function is called. */
export function watchDeploys(RED: RED, listener: DeployListener): () => void {
  const events = (RED as unknown as { events?: NodeJS.EventEmitter }).events;
  if (!events) return () => undefined;
  let grace: NodeJS.Timeout | undefined;
  const clearGrace = () => {
    if (grace) clearTimeout(grace);
    grace = undefined;
  };
  const stopping = (e: DeployEvent) => {
    clearGrace();
    listener.setStopping(stoppingPredicate(e));
  };
  const stopped = () => {
    clearGrace();
    grace = setTimeout(() => listener.setStopping(undefined), START_GRACE_MS);
    grace.unref?.();
  };
  const started = () => {
    clearGrace();
    listener.flowsStarted();
  };
  events.on("flows:stopping", stopping);
  events.on("flows:stopped", stopped);
  events.on("flows:started", started);
  return () => {
    clearGrace();
    events.off("flows:stopping", stopping);
    events.off("flows:stopped", stopped);
    events.off("flows:started", started);
  };
}

/**
 * How the node a msg was given (Node-RED's postReceive) took it: "closed" when the msg was sent as a deploy
 * began and delivered after the deploy closed that node instance (no input handler ran; nobody will call
 * done), "no-done" when its handler takes no done callback (core switch: Node-RED never completes its
 * msgs), else "done" (onComplete follows).
 */
export function receipt(RED: RED, e: HookReceiveEvent): "closed" | "no-done" | "done" {
  const n = e.destination.node;
  if (!n) return "done";
  if (!n._inputCallback && !n._inputCallbacks && RED.nodes.getNode(e.destination.id) !== n) return "closed";
  return n._expectedDoneCount === 0 ? "no-done" : "done";
}
