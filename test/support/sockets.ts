// Counting a process's TCP connections from outside, as the kernel sees them (ss).
import { execFileSync } from "node:child_process";

/** Established TCP connections of `pid` to the given remote ports. */
export function connections(pid: number, ports: number[]): number {
  const out = execFileSync("ss", ["-tnp", "state", "established"], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((line) => line.includes(`pid=${pid},`))
    .filter((line) => ports.some((p) => new RegExp(`:${p}\\s`).test(`${line} `))).length;
}

/** Remote ports of all established TCP connections of `pid` (one entry per connection). */
export function remotePorts(pid: number): number[] {
  const out = execFileSync("ss", ["-tnpH", "state", "established"], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((line) => line.includes(`pid=${pid},`))
    .map((line) => Number(/\S+:(\d+)\s+\S+:(\d+)\s/.exec(line)?.[2] ?? NaN));
}
