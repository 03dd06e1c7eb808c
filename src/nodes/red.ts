// The slice of the Node-RED runtime API these nodes use, typed once. Node-RED passes RED in; nothing here
// requires node-red at runtime.
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeStatus } from "node-red";
import { randomBytes } from "node:crypto";
import { ConfigurationError } from "../common/errors";

export type { Node, NodeDef, NodeMessage, NodeStatus };

export interface HookSendEvent {
  msg: NodeMessage & { _msgid?: string };
  source: { id: string; node?: Node };
  destination: { id: string };
}

export interface HookReceiveEvent {
  msg: NodeMessage & { _msgid?: string };
  /**
   * `_expectedDoneCount`: input handlers that take done(); 0 when Node-RED never completes its msgs.
   * `_inputCallback(s)`: the input handler(s); both null once the node was closed.
   */
  destination: {
    id: string;
    node?: { _expectedDoneCount?: number; _inputCallback?: unknown; _inputCallbacks?: unknown };
  };
}

export interface HookCompleteEvent {
  msg: NodeMessage & { _msgid?: string };
  error?: unknown;
  node: { id: string };
}

export interface Hooks {
  add(hookId: string, callback: (event: never) => unknown): void;
  remove(hookId: string): void;
}

export type RED = NodeAPI & {
  hooks: Hooks;
  util: NodeAPI["util"] & { generateId(): string };
  _: (key: string, substitutions?: Record<string, unknown>) => string;
};

/** A core tls-config node, as other nodes use it. */
export interface TlsConfigNode extends Node {
  /** false when a certificate or key is missing or unreadable (it then adds no certificate at all). */
  valid?: boolean;
  addTLSOptions(options: Record<string, unknown>): Record<string, unknown>;
}

/**
 * The tls-config node a config node refers to, or undefined when it refers to none. A reference to a node
 * that is not deployed (left out of an import, or disabled) or that is invalid (a certificate or key file
 * missing or unreadable) is an error: connecting without the certificates the user chose would only fail
 * later with a misleading TLS error.
 */
export function tlsConfigNode(
  RED: RED,
  id: string,
  owner: "kafka-cluster" | "pulsar-cluster" | "schema-registry",
): TlsConfigNode | undefined {
  if (!id) return undefined;
  const tlsNode = RED.nodes.getNode(id) as TlsConfigNode | null;
  if (!tlsNode)
    throw new ConfigurationError(
      `${owner}.errors.tls-config-missing`,
      `the TLS configuration node ${id} is not deployed (missing or disabled): deploy it or choose another`,
    );
  if (tlsNode.valid === false)
    throw new ConfigurationError(
      `${owner}.errors.tls-config-invalid`,
      `the TLS configuration node "${tlsNode.name || id}" is invalid: a certificate or key file is missing or unreadable (its error is in the log)`,
    );
  return tlsNode;
}

/** close(removed, done) handler registration with the two-argument form the conventions ask for. */
export function onClose(node: Node, handler: (removed: boolean) => Promise<void>): void {
  node.on("close", (removed: boolean, done: () => void) => {
    handler(removed).then(done, (err: unknown) => {
      node.warn(err instanceof Error ? err.message : String(err));
      done();
    });
  });
}

/**
 * The name this instance of `node` uses with a shared resource (a config node's client or producer). A
 * redeployed node has the same id and can start before the old instance's close has finished (Node-RED
 * waits 15 s for it at most): under the node id, that late release would close the new instance's share.
 */
export function instanceKey(node: Node): string {
  return `${node.id}#${randomBytes(4).toString("hex")}`;
}

export type NodeConfig = NodeDef & Record<string, unknown>;

/** RED.nodes.registerType for a constructor whose `this` carries the node's own fields. */
export function registerType<T>(
  RED: RED,
  type: string,
  ctor: (this: T, def: NodeConfig) => void,
  credentials?: Record<string, "text" | "password">,
): void {
  const creds = credentials
    ? Object.fromEntries(Object.entries(credentials).map(([name, t]) => [name, { type: t }]))
    : undefined;
  RED.nodes.registerType(
    type,
    function (this: Node, def: NodeDef) {
      (ctor as unknown as (this: Node, def: NodeDef) => void).call(this, def);
      quietWhenReplaced(this);
    },
    creds ? { credentials: creds } : undefined,
  );
}

/** The newest instance of each node id. */
const current = new Map<string, Node>();

/**
 * A redeployed node's new instance can start before the old one's close has ended (see instanceKey): the
 * status is per node id, so the old instance's last words (node.status({}) as it closes) would blank the
 * new one's. An instance that a newer one replaced shows no status any more.
 */
function quietWhenReplaced(node: Node): void {
  current.set(node.id, node);
  const status = node.status.bind(node);
  node.status = (s: Parameters<Node["status"]>[0]) => {
    if (current.get(node.id) === node) status(s);
  };
  // two parameters: Node-RED passes (removed, done) to a close listener of that length
  node.on("close", (removed: boolean, done: () => void) => {
    if (removed && current.get(node.id) === node) current.delete(node.id);
    done();
  });
}
