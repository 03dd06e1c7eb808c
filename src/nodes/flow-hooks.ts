// Node-RED's message hooks, feeding a settlement target (kafka-in's delivery, the window node's results):
// which node got which msg, which finished it, which took it without a done callback, and the deploys that
// stop nodes in between (deploy-watch.ts). Installed under a label of one node instance: a redeployed node
// with the same id installs its own before the old one's close has finished, and must keep them.
import type { HookCompleteEvent, HookReceiveEvent, HookSendEvent, RED } from "./red";
import { receipt, watchDeploys, type DeployListener } from "./deploy-watch";

export interface FlowTarget extends DeployListener {
  /** Between flows:stopping and flows:started. */
  readonly deploying: boolean;
  delivered(msgId: string, sourceId: string, destinationId: string, msg?: object): void;
  completed(msgId: string | undefined, nodeId: string, error?: unknown, msg?: object): void;
  routed(msgId: string, destinationId: string): void;
  /** The node is about to run its input handler for the msg (onReceive); false halts it before. */
  receiving?(msgId: string | undefined, nodeId: string, msg?: object): boolean;
  received(msgId: string | undefined, nodeId: string, msg?: object): void;
  unhandled(msgId: string | undefined, nodeId: string, msg?: object): void;
}

const HOOKS = ["preDeliver", "onComplete", "preRoute", "onReceive", "postReceive"] as const;

/** Feeds `target` from the hooks until the returned function is called. */
export function trackFlows(RED: RED, label: string, target: FlowTarget): () => void {
  const hook = (name: (typeof HOOKS)[number], fn: (e: never) => unknown) =>
    RED.hooks.add(`${name}.${label}`, fn);
  const stopWatch = watchDeploys(RED, target);
  hook("preDeliver", (e: HookSendEvent) => {
    const id = e.msg?._msgid;
    if (id) target.delivered(id, e.source.id, e.destination.id, e.msg);
  });
  hook("onComplete", (e: HookCompleteEvent) => {
    // the msg is passed too: a node may have deleted or changed its _msgid (core split does)
    if (e.msg) target.completed(e.msg._msgid, e.node.id, e.error, e.msg);
  });
  // During a deploy, a msg routed to a node that is stopped (gone from the runtime, not yet started
  // again) reaches nobody: its records are tried again. A stopping node still running receives it.
  hook("preRoute", (e: HookSendEvent) => {
    const id = e.msg?._msgid;
    if (id && target.deploying && !RED.nodes.getNode(e.destination.id)) target.routed(id, e.destination.id);
  });
  if (target.receiving) {
    const receiving = target.receiving.bind(target);
    hook("onReceive", (e: HookReceiveEvent) => {
      if (e.msg && !receiving(e.msg._msgid, e.destination.id, e.msg)) return false;
    });
  }
  // A node whose input handler takes no done callback (core switch and filter, many older contrib nodes)
  // never completes a msg: the tracker infers it from what the node sends next.
  hook("postReceive", (e: HookReceiveEvent) => {
    if (!e.msg) return;
    const how = receipt(RED, e);
    if (how === "closed") target.unhandled(e.msg._msgid, e.destination.id, e.msg);
    else if (how === "no-done") target.received(e.msg._msgid, e.destination.id, e.msg);
  });
  return () => {
    for (const name of HOOKS) RED.hooks.remove(`${name}.${label}`);
    stopWatch();
  };
}
