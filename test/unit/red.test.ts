// The Node-RED glue shared by the node types (src/nodes/red.ts).
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import { registerType, type RED } from "../../src/nodes/red";

test("a node instance replaced by a newer one of the same id shows no status any more (its late close would blank the new one's)", () => {
  let ctor: ((this: unknown, def: unknown) => void) | undefined;
  const red = { nodes: { registerType: (_t: string, c: typeof ctor) => (ctor = c) } } as unknown as RED;
  registerType(red, "probe", function (this: { status(s: unknown): void }) {
    this.status({ text: "starting" });
  });
  const shown: string[] = [];
  const instance = (tag: string) => {
    const n = Object.assign(new EventEmitter(), {
      id: "n1",
      status: (s: { text?: string }) => shown.push(`${tag}:${s.text ?? ""}`),
    });
    ctor?.call(n, { id: "n1" });
    return n;
  };
  const old = instance("old");
  old.status({ text: "connected" });
  const fresh = instance("new");
  fresh.status({ text: "connected" });
  old.status({}); // the old instance's close, ending late
  assert.deepEqual(shown, ["old:starting", "old:connected", "new:starting", "new:connected"]);
});
