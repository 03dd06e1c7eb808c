// What the deployed flows wire after a node: the nodes a msg it sends can reach (through wires and link
// nodes), read from the flow configuration Node-RED keeps, for warnings about flow shapes the bridge cannot
// make lossless.
import type { RED } from "./red";

interface WiredConfig {
  id: string;
  type?: string;
  name?: string;
  wires?: string[][];
  /** link out: the link in nodes it goes to */
  links?: string[];
  stream?: unknown;
}

/** The configs of every node reachable from node `id`'s outputs (not `id` itself, unless in a loop). */
export function downstreamOf(RED: RED, id: string): WiredConfig[] {
  const all = new Map<string, WiredConfig>();
  RED.nodes.eachNode((n: WiredConfig) => {
    all.set(n.id, n);
  });
  const seen = new Set<string>();
  const out: WiredConfig[] = [];
  const next = (n: WiredConfig | undefined) => [
    ...(n?.wires ?? []).flat(),
    ...(n?.type === "link out" ? (n.links ?? []) : []),
  ];
  const queue = next(all.get(id));
  while (queue.length > 0) {
    const at = queue.shift() as string;
    if (seen.has(at)) continue;
    seen.add(at);
    const n = all.get(at);
    if (!n) continue;
    out.push(n);
    queue.push(...next(n));
  }
  return out;
}

/**
 * Core split nodes in stream mode after node `id`: such a split keeps the end of one msg's text and sends it
 * with the next msg's, so that part rides on a later record: settled (or failed and replayed) with that
 * record, not its own.
 */
export function streamingSplitsAfter(RED: RED, id: string): WiredConfig[] {
  return downstreamOf(RED, id).filter(
    (n) => n.type === "split" && (n.stream === true || n.stream === "true"),
  );
}
