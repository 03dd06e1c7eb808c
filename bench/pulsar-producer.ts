// Benchmark (a program that prints figures, not a test): our producer's throughput next to the official
// `pulsar-perf produce` on the same broker in the same run, for 100 B and 1 KiB messages, batched.
//   npm run bench:producer [-- messages per run of ours, default 1000000]
// Both run one producer, batches of up to 1000 messages and 128 KiB, 1 ms batching delay, 10000 messages
// outstanding.
// `npm run bench` (bench/run.ts) uses the same two measurements on partitioned topics.
import { spawn } from "node:child_process";
import path from "node:path";
import { createClient } from "../src/pulsar/client";

const ROOT = path.resolve(__dirname, "..");
const PULSAR_URL = process.env.PULSAR_URL ?? "pulsar://127.0.0.1:6650";
const MAX_OUTSTANDING = 10_000;
/** Both producers: batches of up to 1000 messages and 128 KiB (pulsar-perf's own default is larger). */
const BATCH_MAX_BYTES = 128 * 1024;

/** Our producer's rate (msg/s) over `n` messages of `size` bytes, after 10000 messages of warm-up. */
export async function ourProducerRate(size: number, n: number, topic?: string): Promise<number> {
  const client = createClient({ serviceUrl: PULSAR_URL });
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
  // warm-up
  await Promise.all(Array.from({ length: 10_000 }, () => producer.send({ payload })));
  // As pulsar-perf: at most 10000 messages outstanding, a callback per receipt, a send as soon as there is room.
  let outstanding = 0;
  let failed: Error | undefined;
  let room: (() => void) | undefined;
  const settled = () => {
    outstanding--;
    // wake the sender once a batch's worth of room is free, not for every receipt
    if (room && outstanding <= MAX_OUTSTANDING - 1000) {
      const wake = room;
      room = undefined;
      wake();
    }
  };
  const fail = (err: unknown) => {
    failed ??= err instanceof Error ? err : new Error(String(err));
    settled();
  };
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (outstanding >= MAX_OUTSTANDING) await new Promise<void>((resolve) => (room = resolve));
    outstanding++;
    producer.send({ payload }).then(settled, fail);
  }
  while (outstanding > 0) await new Promise<void>((resolve) => (room = resolve));
  if (failed) throw failed;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await producer.close();
  await client.close();
  return n / seconds;
}

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
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", () => {
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

/** Deletes a benchmark topic, so repeated runs do not fill the broker's disk (1M x 1 KiB is 1 GB). */
async function dropTopic(topic: string): Promise<void> {
  const http = process.env.PULSAR_HTTP_URL ?? "http://127.0.0.1:8080";
  const name = topic.replace("persistent://", "");
  await fetch(`${http}/admin/v2/persistent/${name}?force=true`, { method: "DELETE" }).catch(() => undefined);
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 1_000_000);
  console.log(`messages per run: ${n}; broker ${PULSAR_URL}`);
  console.log("size    ours msg/s    pulsar-perf msg/s    ratio");
  for (const size of [100, 1024]) {
    const ours = `persistent://public/default/bench-ours-${size}-${Date.now()}`;
    const a = await ourProducerRate(size, n, ours);
    await dropTopic(ours);
    const theirs = `persistent://public/default/bench-perf-${size}-${Date.now()}`;
    const b = await pulsarPerfRate(size, 32, theirs);
    await dropTopic(theirs);
    console.log(
      `${String(size).padEnd(7)} ${a.toFixed(0).padStart(11)}    ${b.toFixed(0).padStart(17)}    ${(a / b).toFixed(2)}x`,
    );
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
