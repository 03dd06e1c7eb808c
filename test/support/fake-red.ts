// A minimal stand-in for the Node-RED runtime API the nodes use (no Node-RED): registerType, createNode,
// getNode, hooks, events, i18n. Enough to construct a node, send it input and close it.
import { EventEmitter } from "node:events";
import type { RED } from "../../src/nodes/red";

export interface FakeNode extends EventEmitter {
  id: string;
  statuses: { fill?: string; text?: string }[];
  errors: string[];
  warnings: string[];
  sent: unknown[];
  close(): Promise<void>;
}

export function fakeRed(configNodes: Record<string, unknown>) {
  const types = new Map<string, (this: unknown, def: unknown) => void>();
  const nodes = new Map<string, unknown>(Object.entries(configNodes));
  const red = {
    _: (key: string) => key,
    events: new EventEmitter(),
    hooks: { add: () => undefined, remove: () => undefined },
    util: { generateId: () => Math.random().toString(16).slice(2) },
    nodes: {
      registerType: (type: string, ctor: (this: unknown, def: unknown) => void) => types.set(type, ctor),
      createNode: (node: Record<string, unknown>, def: Record<string, unknown>) => {
        node.id = def.id;
        node.name = def.name;
      },
      getNode: (id: string) => nodes.get(id) ?? null,
      eachNode: () => undefined,
    },
  } as unknown as RED;
  const create = (type: string, def: Record<string, unknown>): FakeNode => {
    const ctor = types.get(type);
    if (!ctor) throw new Error(`no type ${type}`);
    const n = Object.assign(new EventEmitter(), {
      id: String(def.id),
      statuses: [] as { fill?: string; text?: string }[],
      errors: [] as string[],
      warnings: [] as string[],
      sent: [] as unknown[],
      status(s: { fill?: string; text?: string }) {
        n.statuses.push(s);
      },
      error(m: unknown) {
        n.errors.push(String(m));
      },
      warn(m: unknown) {
        n.warnings.push(String(m));
      },
      log: () => undefined,
      send(m: unknown) {
        n.sent.push(m);
      },
      close: async () => {
        const listeners = n.listeners("close") as ((removed: boolean, done: () => void) => void)[];
        await Promise.all(listeners.map((l) => new Promise<void>((r) => l(false, r))));
      },
    });
    nodes.set(n.id, n);
    ctor.call(n, def);
    return n;
  };
  return { red, create };
}
