// The functions with the most self time in a V8 CPU profile (as written by `node --cpu-prof`).
import fs from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  /** Share of the busy time (everything but "(idle)"). */
  share: number;
}

/**
 * Self time per function, counting only the samples within `window` (microseconds of the monotonic clock,
 * which V8's profile timestamps and process.hrtime share on Linux) when given.
 */
export function topSelfTime(
  file: string,
  n = 10,
  window?: { fromUs: number; toUs: number },
): { busyMs: number; idleMs: number; top: SelfTime[]; byModule: { module: string; share: number }[] } {
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
  const byNode = new Map<number, ProfileNode>(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<string, { name: string; where: string; us: number }>();
  const modules = new Map<string, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const node = byNode.get(profile.samples[i] ?? -1);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || "(anonymous)";
    const short = url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "");
    const where = url ? `${short}:${lineNumber + 1}` : "";
    const key = `${name}@${where}`;
    const entry = totals.get(key) ?? { name, where, us: 0 };
    // timeDeltas[i] is the time before sample i; attributing it to sample i is how DevTools counts
    entry.us += profile.timeDeltas[i] ?? 0;
    totals.set(key, entry);
    modules.set(moduleOf(name, url), (modules.get(moduleOf(name, url)) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const idleUs = [...totals.values()].filter((t) => t.name === "(idle)").reduce((a, t) => a + t.us, 0);
  const busyUs = [...totals.values()].reduce((a, t) => a + t.us, 0) - idleUs;
  const top = [...totals.values()]
    .filter((t) => t.name !== "(idle)")
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((t) => ({ name: t.name, where: t.where, ms: t.us / 1000, share: busyUs > 0 ? t.us / busyUs : 0 }));
  const byModule = [...modules]
    .filter(([m]) => m !== "(idle)")
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([module, us]) => ({ module, share: busyUs > 0 ? us / busyUs : 0 }));
  return { busyMs: busyUs / 1000, idleMs: idleUs / 1000, top, byModule };
}

/** Where a function lives: a package, one of our files (nodes/lib/...), Node's core, or a V8 pseudo-entry. */
function moduleOf(name: string, url: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] ?? url;
  const ours = /\/nodes\/lib\/(.+)$/.exec(url);
  if (ours) return `ours: ${ours[1]}`;
  if (url.startsWith("node:")) return "node core";
  return url;
}
