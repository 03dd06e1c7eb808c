// Nodes that stand for contrib nodes in the tests' flows (registered in the real runtime like any node set).

type RED = {
  nodes: {
    createNode(node: object, config: object): void;
    registerType(type: string, ctor: (this: ContribNode, config: Record<string, unknown>) => void): void;
  };
};
interface ContribNode {
  on(event: "input", cb: (msg: Msg, send: (m: object) => void, done: (e?: Error) => void) => void): void;
  on(event: "close", cb: () => void): void;
}
interface Msg {
  payload?: unknown;
  key?: unknown;
}

/**
 * "test-async-result": answers each msg after `delayMs` with a fresh msg (a new _msgid), as contrib nodes
 * that call a service and build `{ payload: result }` do, and calls done() for the msg it came from. The
 * msg whose payload equals `badPayload` gets an object as its key, which pulsar-out refuses.
 */
export function asyncResultNode(RED: RED): void {
  RED.nodes.registerType("test-async-result", function (config) {
    RED.nodes.createNode(this, config);
    const timers = new Set<NodeJS.Timeout>();
    this.on("input", (msg, send, done) => {
      const t = setTimeout(() => {
        timers.delete(t);
        send({ payload: msg.payload, key: msg.payload === config.badPayload ? { not: "a key" } : msg.key });
        done();
      }, Number(config.delayMs));
      timers.add(t);
    });
    this.on("close", () => {
      for (const t of timers) clearTimeout(t);
    });
  });
}

export const CONTRIB_NODES: Record<string, (RED: never) => void> = {
  "test-async-result": asyncResultNode,
};
