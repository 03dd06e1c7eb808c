// Flows in a real Node-RED runtime (node-red-node-test-helper) with this package's two node sets.
// The helper builds RED without `hooks` and with a `_` that returns the key; the runtime's own hook registry
// (the one its Flow objects trigger) and message translation are handed in, as the full runtime does.
import path from "node:path";
import { ROOT } from "./brokers";
import { nodeRedHome, resolveFromNodeRed } from "./node-red-process";

interface TestHelper {
  init(runtimePath: string, settings?: Record<string, unknown>): void;
  load(nodes: unknown[], flow: unknown[], credentials?: Record<string, unknown>): Promise<void>;
  setFlows(flow: unknown[], type: "full" | "flows" | "nodes"): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): (NodeLike & Record<string, unknown>) | null;
  startServer(cb: () => void): void;
  stopServer(cb: () => void): void;
  /** The runtime's log calls since the flow was loaded (a spy: each call's first argument is the entry). */
  log(): { args: [{ level: number; id?: string; msg?: unknown }][] };
}

export interface NodeLike {
  id: string;
  on(event: string, cb: (...args: never[]) => void): void;
  receive(msg: unknown): void;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const helper = require(resolveFromNodeRed("node-red-node-test-helper")) as TestHelper;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const util = require(resolveFromNodeRed("@node-red/util")) as {
  hooks: unknown;
  i18n: {
    registerMessageCatalog(namespace: string, dir: string, file: string): Promise<void>;
    _: (key: string, vars?: unknown) => string;
  };
};
const runtimeHooks = util.hooks;

export type NodeSet = (RED: Record<string, unknown>) => void;
export function withHooks(set: NodeSet): NodeSet {
  return (RED) => {
    RED.hooks = runtimeHooks;
    // The helper's RED._ returns the key; the runtime's translates with the registered catalogs.
    RED._ = util.i18n._;
    set(RED);
  };
}

// Core nodes a flow may use; the helper only preloads catch, status and complete itself.
const CORE_NODES: Record<string, string> = {
  function: "function/10-function.js",
  switch: "function/10-switch.js",
  change: "function/15-change.js",
  delay: "function/89-delay.js",
  trigger: "function/89-trigger.js",
  rbe: "function/rbe.js",
  split: "sequence/17-split.js",
  join: "sequence/17-split.js",
  batch: "sequence/19-batch.js",
  sort: "sequence/18-sort.js",
  csv: "parsers/70-CSV.js",
  "link in": "common/60-link.js",
  "link out": "common/60-link.js",
  "link call": "common/60-link.js",
  debug: "common/21-debug.js",
  comment: "common/90-comment.js",
  "tls-config": "network/05-tls.js",
};

let initialised = false;

async function startRuntime(): Promise<void> {
  if (initialised) return;
  helper.init(require.resolve(nodeRedHome));
  await new Promise<void>((resolve) => helper.startServer(resolve));
  // The message catalogs, as the full runtime registers them, so that logs and statuses read as users see them.
  for (const set of ["kafka", "pulsar"]) {
    await util.i18n.registerMessageCatalog(
      `node-red-contrib-kafka-pulsar/${set}`,
      path.join(ROOT, "nodes", "locales"),
      `${set}.json`,
    );
  }
  initialised = true;
}

/** The core node sets `flow` uses. */
function coreSets(flow: unknown[]): NodeSet[] {
  const types = new Set((flow as { type?: string }[]).map((n) => n.type));
  const coreDir = path.join(path.dirname(resolveFromNodeRed("@node-red/nodes/package.json")), "core");
  const files = new Set<string>();
  for (const [type, file] of Object.entries(CORE_NODES)) if (types.has(type)) files.add(file);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return [...files].map((file) => require(path.join(coreDir, file)) as NodeSet);
}

/** Loads `flow` with the kafka and pulsar node sets (compiled in nodes/lib) plus any core nodes it uses. */
export async function loadFlow(flow: unknown[], credentials: Record<string, unknown> = {}): Promise<void> {
  await startRuntime();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const kafka = require(path.join(ROOT, "nodes", "kafka.js")) as NodeSet;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulsar = require(path.join(ROOT, "nodes", "pulsar.js")) as NodeSet;
  await helper.load([withHooks(kafka), withHooks(pulsar), ...coreSets(flow)], flow, credentials);
}

/** Loads `flow` with the given node sets (stand-ins a test defines) and the core nodes it uses. */
export async function loadWithSets(sets: NodeSet[], flow: unknown[]): Promise<void> {
  await startRuntime();
  await helper.load([...sets.map(withHooks), ...coreSets(flow)], flow);
}

export async function unloadFlow(): Promise<void> {
  await helper.unload();
}

export async function stopHelper(): Promise<void> {
  if (!initialised) return;
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  initialised = false;
}
