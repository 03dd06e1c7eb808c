// The benchmark's other direction (issue 16): pulsar-in -> kafka-out in a real node-red process, next to
// the two official tools on the same brokers in the same run: `pulsar-perf consume` reading the same
// Pulsar backlog, and Kafka's producer-perf-test writing as many records of the same size (acks=all).
// The backlog (3 partitions) is written by `pulsar-perf produce` before anything is timed; the bridge is
// timed from its deploy to the subscription's backlog at 0 (every message acknowledged, so in Kafka).
import {
  kafkaBrokers,
  pulsarHttpUrl,
  pulsarUrl,
  requestJson,
  runToolOk,
  uniqueName,
} from "../test/support/brokers";
import { memoryOf, startNodeRed } from "./node-red";

const PARTITIONS = 3;

export interface ReverseFigures {
  records: number;
  /** pulsar-perf consume over the backlog (its own aggregated rate). */
  perfConsume: number;
  /** Kafka's producer-perf-test, acks=all (records/s). */
  perfProduce: number;
  /** pulsar-in -> kafka-out, from the deploy to the backlog drained. */
  bridge: number;
  bridgeSeconds: number;
  peakRssMB: number;
}

const admin = (method: string, pathname: string, body?: unknown) =>
  requestJson(`${pulsarHttpUrl}/admin/v2${pathname}`, method, body);

async function ok(what: string, p: Promise<{ status: number; json: unknown }>): Promise<void> {
  const r = await p;
  if (r.status !== 204) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.json)}`);
}

async function backlog(topic: string, subscription: string): Promise<number> {
  const r = await admin("GET", `/persistent/${topic.replace("persistent://", "")}/partitioned-stats`);
  const subs = (r.json as { subscriptions?: Record<string, { msgBacklog?: number }> }).subscriptions ?? {};
  return r.status === 200 ? (subs[subscription]?.msgBacklog ?? -1) : -1;
}

export async function reverseFigures(
  size: number,
  records: number,
  kafkaTopic: (name: string) => Promise<string>,
  log: (line: string) => void,
): Promise<ReverseFigures> {
  const name = uniqueName(`bench-reverse-${size}`);
  const topic = `persistent://public/default/${name}`;
  await ok(
    "creating the Pulsar topic",
    admin("PUT", `/persistent/public/default/${name}/partitions`, PARTITIONS),
  );
  try {
    for (const sub of ["perf", "bridge"])
      await ok(
        `subscription ${sub}`,
        admin("PUT", `/persistent/public/default/${name}/subscription/${sub}`, { entryId: -1, ledgerId: -1 }),
      );
    const t = Date.now();
    await runToolOk(
      "pulsar-perf",
      ["produce", "-m", String(records), "-r", "1000000", "-s", String(size), "-o", "10000", topic],
      { timeoutMs: 600_000 },
    );
    // pulsar-perf may write a few more than asked: what the topic holds, as the broker counts it
    const stats = await admin("GET", `/persistent/public/default/${name}/partitioned-stats`);
    const written = (stats.json as { msgInCounter?: number }).msgInCounter ?? records;
    log(`reverse ${size} B: ${written} messages in Pulsar in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    // the official consumer over the backlog
    const consumed = await runToolOk(
      "pulsar-perf",
      ["consume", "-ss", "perf", "-sp", "Earliest", "-m", String(written), "-q", "1000", topic],
      { timeoutMs: 600_000 },
    );
    const agg = /Aggregated throughput stats[^\n]*?([\d.]+)\s*msg\/s/.exec(consumed.stdout + consumed.stderr);
    if (!agg) throw new Error(`unexpected pulsar-perf consume output:\n${consumed.stdout.slice(-2000)}`);
    const perfConsume = Number(agg[1]);

    // the official producer, as many records of the same size, acks=all
    const perfTopic = await kafkaTopic(`bench-reverse-perf-${size}`);
    const produced = await runToolOk(
      "kafka-tool",
      [
        "producer-perf-test",
        "--topic",
        perfTopic,
        "--num-records",
        String(written),
        "--record-size",
        String(size),
        "--throughput",
        "-1",
        "--producer-props",
        `bootstrap.servers=${kafkaBrokers.join(",")}`,
        "acks=all",
      ],
      { timeoutMs: 600_000 },
    );
    const summary = /(\d+) records sent, ([\d.]+) records\/sec/.exec(
      produced.stdout.trim().split("\n").at(-1) ?? "",
    );
    if (!summary) throw new Error(`unexpected producer-perf-test output:\n${produced.stdout.slice(-2000)}`);
    const perfProduce = Number(summary[2]);

    // the bridge
    const target = await kafkaTopic(`bench-reverse-${size}`);
    const nr = await startNodeRed();
    let peak = 0;
    try {
      const t0 = Date.now();
      await nr.deploy([
        { id: "bench", type: "tab", label: "bench" },
        { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "bench" },
        { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl },
        {
          id: "in",
          type: "pulsar-in",
          z: "bench",
          cluster: "pc",
          topics: topic,
          subscription: "bridge",
          subscriptionType: "shared",
          initialPosition: "earliest",
          valueFormat: "buffer",
          wires: [["out"]],
        },
        { id: "out", type: "kafka-out", z: "bench", cluster: "kc", topic: target, wires: [] },
      ]);
      let last = { left: -1, at: Date.now() };
      for (;;) {
        const left = await backlog(topic, "bridge");
        peak = Math.max(peak, memoryOf(nr.pid)?.rss ?? 0);
        if (left === 0) break;
        if (left !== last.left) last = { left, at: Date.now() };
        else if (Date.now() - last.at > 60_000)
          throw new Error(
            `no progress for 60 s: ${left} left; node-red said:\n${nr.output().split("\n").slice(-15).join("\n")}`,
          );
        await new Promise((r) => setTimeout(r, 100));
      }
      const seconds = (Date.now() - t0) / 1000;
      return {
        records: written,
        perfConsume,
        perfProduce,
        bridge: written / seconds,
        bridgeSeconds: seconds,
        peakRssMB: peak / (1024 * 1024),
      };
    } finally {
      await nr.stop();
    }
  } finally {
    await admin("DELETE", `/persistent/public/default/${name}/partitions?force=true`).catch(() => undefined);
  }
}
