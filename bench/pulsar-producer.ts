// Benchmark (a program that prints figures, not a test): our producer's throughput next to the official
// `pulsar-perf produce` on the same broker in the same run, for 100 B and 1 KiB messages, batched.
//   npm run bench:producer [-- seconds per run, default 32 [rounds, default 2]]
// Both run one producer, batches of up to 1000 messages and 128 KiB, 1 ms batching delay, 10000 messages
// outstanding, for the same time, and both rates are the mean of the 10 s windows after the first.
// `npm run bench` (bench/run.ts) uses the same two measurements on partitioned topics.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pulsarAdmin, pulsarUrl, ROOT } from "../test/support/brokers";

// The producer as Node-RED runs it: the compiled library in nodes/lib (the bench commands build it first),
// not the TypeScript sources through tsx's loader, with which the same producer measured about 20 % slower.
const COMPILED_CLIENT = path.join(ROOT, "nodes", "lib", "pulsar", "client.js");
function createClient(...args: Parameters<typeof import("../src/pulsar/client").createClient>) {
  if (!fs.existsSync(COMPILED_CLIENT))
    throw new Error(`${COMPILED_CLIENT} is missing: run \`npm run build\` first`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const compiled = require(COMPILED_CLIENT) as typeof import("../src/pulsar/client");
  return compiled.createClient(...args);
}
const MAX_OUTSTANDING = 10_000;
/** Both producers: batches of up to 1000 messages and 128 KiB (pulsar-perf's own default is larger). */
const BATCH_MAX_BYTES = 128 * 1024;

/** Throughput is counted in windows of this length, the first (warm-up) left out, for both producers. */
const WINDOW_MS = 10_000;

/** Checks a run length: long enough for one window after the warm-up one. */
export function checkSeconds(seconds: number): number {
  const min = (2 * WINDOW_MS) / 1000;
  if (!Number.isFinite(seconds) || seconds < min || seconds > 3600)
    throw new Error(`seconds per run must be a number from ${min} to 3600, not ${String(seconds)}`);
  return seconds;
}

/**
 * Our producer's rate (msg/s) over `seconds` of sending `size`-byte messages, measured as pulsar-perf
 * measures itself: receipts counted in 10 s windows, the first window (JIT and broker warm-up) left out,
 * the mean of the others. `messages` were acknowledged in those windows, which took `windowSeconds`.
 */
export async function ourProducerRate(
  size: number,
  seconds: number,
  topic?: string,
): Promise<{ rate: number; messages: number; windowSeconds: number }> {
  checkSeconds(seconds);
  const client = createClient({ serviceUrl: pulsarUrl });
  try {
    const producer = await client.createProducer({
      topic: topic ?? `persistent://public/default/bench-ours-${size}-${Date.now()}`,
      batchingEnabled: true,
      batchingMaxMessages: 1000,
      batchingMaxBytes: BATCH_MAX_BYTES,
      batchingMaxPublishDelayMs: 1,
      maxPendingMessages: MAX_OUTSTANDING,
      blockIfQueueFull: true,
    });
    const payload = Buffer.alloc(size, 0x61);
    // As pulsar-perf: at most 10000 messages outstanding, a callback per receipt, a send as soon as there is
    // room.
    let outstanding = 0;
    let acknowledged = 0;
    let failed: Error | undefined;
    let room: (() => void) | undefined;
    const settled = () => {
      outstanding--;
      acknowledged++;
      // wake the sender once a batch's worth of room is free, not for every receipt
      if (room && outstanding <= MAX_OUTSTANDING - 1000) {
        const wake = room;
        room = undefined;
        wake();
      }
    };
    const fail = (err: unknown) => {
      failed ??= err instanceof Error ? err : new Error(String(err));
      acknowledged--;
      settled();
    };
    // window boundaries: when, and how many receipts had arrived by then
    const marks = [{ at: performance.now(), acknowledged: 0 }];
    const windowTimer = setInterval(() => marks.push({ at: performance.now(), acknowledged }), WINDOW_MS);
    const end = performance.now() + seconds * 1000;
    try {
      for (let i = 0; failed === undefined; i++) {
        if ((i & 1023) === 0 && performance.now() >= end) break;
        if (outstanding >= MAX_OUTSTANDING) await new Promise<void>((resolve) => (room = resolve));
        outstanding++;
        producer.send({ payload }).then(settled, fail);
      }
      while (outstanding > 0) await new Promise<void>((resolve) => (room = resolve));
    } finally {
      clearInterval(windowTimer);
    }
    if (failed) throw failed;
    await producer.close();
    // marks[1] ends the warm-up window; each later mark ends a counted one
    if (marks.length < 3) throw new Error(`only ${marks.length - 1} window(s) in ${seconds} s`);
    const steady = marks.slice(1);
    const rates = steady
      .slice(1)
      .map((m, i) => ((m.acknowledged - steady[i].acknowledged) * 1000) / (m.at - steady[i].at));
    const first = steady[0];
    const last = steady[steady.length - 1];
    return {
      rate: rates.reduce((x, y) => x + y, 0) / rates.length,
      messages: last.acknowledged - first.acknowledged,
      windowSeconds: (last.at - first.at) / 1000,
    };
  } finally {
    await client.close();
  }
}

/** The process groups of the pulsar-perf runs in progress (each has its own, see below). */
const running = new Set<number | undefined>();

/** Kills a process group, never this process's own (`process.kill(-0)` would). */
function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

// Their own groups do not get the terminal's Ctrl-C: stop them with the bench.
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    for (const pid of running) killGroup(pid);
    process.exit(130);
  });

/**
 * `pulsar-perf produce` for `seconds` (same batching and outstanding limit as ours): the mean of its 10 s
 * windows after the first (which includes the JVM warm-up), in msg/s.
 */
export function pulsarPerfRate(size: number, seconds = 32, topic?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        path.join(ROOT, "scripts", "brokers.mjs"),
        "pulsar-perf",
        "produce",
        "-time",
        String(seconds),
        "-r",
        "10000000",
        "-s",
        String(size),
        "-bm",
        "1000",
        "-bb",
        String(BATCH_MAX_BYTES),
        "-b",
        "1",
        "-o",
        "10000",
        topic ?? `persistent://public/default/bench-perf-${size}-${Date.now()}`,
      ],
      // its own process group, so that a hung run (a full disk makes the broker refuse writes and pulsar-perf
      // wait forever) can be killed with the JVM it started
      { stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    let out = "";
    let hung = false;
    const deadline = setTimeout(
      () => {
        hung = true;
        killGroup(child.pid);
      },
      (seconds + 90) * 1000,
    );
    running.add(child.pid);
    child.on("error", (err) => {
      clearTimeout(deadline);
      running.delete(child.pid);
      reject(err);
    });
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", () => {
      clearTimeout(deadline);
      running.delete(child.pid);
      if (hung) {
        reject(
          new Error(
            `pulsar-perf did not finish within ${seconds + 90} s (is the broker's disk full?):\n${out.slice(-2000)}`,
          ),
        );
        return;
      }
      // pulsar-perf prints "Throughput produced: N msg --- R msg/s" every 10 s; the first window includes the
      // JVM warm-up, so the steady rate is the mean of the later windows.
      const rates = [...out.matchAll(/Throughput produced: +\d+ msg --- +([\d.]+) msg\/s/g)].map((m) =>
        Number(m[1]),
      );
      if (rates.length < 2)
        reject(new Error(`too few throughput lines from pulsar-perf:\n${out.slice(-2000)}`));
      else resolve(rates.slice(1).reduce((a, b) => a + b, 0) / (rates.length - 1));
    });
  });
}

/** Deletes a benchmark topic, so repeated runs do not fill the broker's disk (30 s at 1 KiB is about 9 GB). */
async function dropTopic(topic: string): Promise<void> {
  const name = topic.replace("persistent://", "");
  await pulsarAdmin("DELETE", `/admin/v2/persistent/${name}?force=true`).catch(() => undefined);
}

async function main(): Promise<void> {
  const seconds = checkSeconds(Number(process.argv[2] ?? 32));
  const rounds = Number(process.argv[3] ?? 2);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new Error(`rounds must be a whole number ≥ 1, not ${process.argv[3]}`);
  console.log(`${rounds} round(s) of ${seconds} s per producer and size, taking turns; broker ${pulsarUrl}`);
  console.log("size    round    ours msg/s    pulsar-perf msg/s    ratio");
  const row = (size: number, round: string, a: number, b: number) =>
    console.log(
      `${String(size).padEnd(7)} ${round.padEnd(8)} ${a.toFixed(0).padStart(11)}    ${b.toFixed(0).padStart(17)}    ${(a / b).toFixed(2)}x`,
    );
  for (const size of [100, 1024]) {
    let ourSum = 0;
    let theirSum = 0;
    for (let round = 1; round <= rounds; round++) {
      const ours = `persistent://public/default/bench-ours-${size}-${Date.now()}`;
      const a = (await ourProducerRate(size, seconds, ours)).rate;
      await dropTopic(ours);
      const theirs = `persistent://public/default/bench-perf-${size}-${Date.now()}`;
      const b = await pulsarPerfRate(size, seconds, theirs);
      await dropTopic(theirs);
      row(size, String(round), a, b);
      ourSum += a;
      theirSum += b;
    }
    // the machine's load moves both; the ratio of the means over the rounds is the figure
    if (rounds > 1) row(size, "mean", ourSum / rounds, theirSum / rounds);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
