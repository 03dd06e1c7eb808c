// `npm run bench`: a program that prints figures (never a test). On the local brokers (`npm run brokers --
// start`), for 100 B and 1 KiB records and 3 partitions everywhere (one Kafka backlog topic per size,
// written by producer-perf-test), it measures
//   - the limit: Kafka's consumer-perf-test reading the backlog topic and `pulsar-perf produce` (batched)
//     to a fresh topic; the limit is the lower of the two;
//   - a raw kafkajs consumer (eachBatch, no work) and our Pulsar producer alone (batched);
//   - in a real node-red process (a new one per case): kafka-in alone (-> a counting function node), the
//     bridge kafka-in -> change -> pulsar-out settled, effectively-once and with batch output, the windowed
//     bridge kafka-in -> window (count per key and minute) -> pulsar-out, and the peer
//     (node-red-contrib-kafka-suite's consumer -> change -> pulsar-out); each reads the last records of the
//     backlog, timed from its consumer group being stable with partitions to every offset committed;
//   - the node-red process's RSS while the bridge drains a backlog of 1M records (100 B);
//   - the latency from Kafka produce (record timestamp) to Pulsar publish (publish time) at 5k msg/s.
// It prints a table (each throughput also as a ratio to the limit of the same run), the goals met or
// missed, and writes bench/results.json.
//
//   npm run bench [-- --quick] [--only <case>[,<case>...]] [--size 100|1024] [--cpu-prof] [--out <file>]
//
// Cases: limit, kafkajs, producer, kafka-in, bridge, effectively-once, batch, window, peer, rss, window-keys,
// latency, reverse (pulsar-in -> kafka-out next to pulsar-perf consume and Kafka's producer-perf-test).
// --quick scales every backlog and duration down (about 1/4); --cpu-prof profiles the node-red process of each
// throughput case that runs (node --cpu-prof; pick them with --only) and prints, for the drain only, its self
// time by module and its top 10 functions by self time (the profiles stay in the system's temp folder).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Kafka, logLevel, type Admin } from "kafkajs";
import { groupMembers, groupOffsets } from "../test/support/kafka";
import * as prettier from "prettier";
import { createClient } from "../src/pulsar/client";
import {
  kafkaBrokers,
  pulsarHttpUrl,
  pulsarUrl,
  requestJson,
  ROOT,
  runToolOk,
  uniqueName,
} from "../test/support/brokers";
import { topSelfTime } from "./cpu-profile";
import { bridge, kafkaInAlone, peerBridge, windowedBridge, type FlowTarget } from "./flows";
import { memoryOf, PEER_PACKAGE, startNodeRed, type BenchNodeRed } from "./node-red";
import { ourProducerRate, pulsarPerfRate } from "./pulsar-producer";
import { reverseFigures } from "./reverse";

const CASES = [
  "limit",
  "kafkajs",
  "producer",
  "kafka-in",
  "bridge",
  "effectively-once",
  "batch",
  "window",
  "peer",
  "rss",
  "window-keys",
  "latency",
  "reverse",
] as const;
type CaseName = (typeof CASES)[number];
const PARTITIONS = 3;
const MB = 1024 * 1024;

// ---------------------------------------------------------------- options

interface Options {
  quick: boolean;
  only: Set<CaseName>;
  sizes: number[];
  cpuProf: boolean;
  out: string;
}

function usage(): never {
  console.log(
    `usage: npm run bench [-- --quick] [--only <case>[,<case>...]] [--size 100|1024] [--cpu-prof] [--out <file>]\ncases: ${CASES.join(", ")}`,
  );
  process.exit(0);
}

function parseOptions(argv: string[]): Options {
  const o: Options = {
    quick: false,
    only: new Set(CASES),
    sizes: [100, 1024],
    cpuProf: false,
    out: path.join(ROOT, "bench", "results.json"),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--quick") o.quick = true;
    else if (a === "--cpu-prof") o.cpuProf = true;
    else if (a === "--only") {
      const names = value().split(",");
      for (const n of names)
        if (!(CASES as readonly string[]).includes(n))
          throw new Error(`unknown case ${n}; cases: ${CASES.join(", ")}`);
      o.only = new Set(names as CaseName[]);
    } else if (a === "--size") o.sizes = [Number(value())];
    else if (a === "--out") o.out = path.resolve(value());
    else if (a === "--help" || a === "-h") usage();
    else throw new Error(`unknown option ${a} (--help)`);
  }
  return o;
}

// ---------------------------------------------------------------- sizing

/**
 * One Kafka topic per record size holds the backlog every case reads: consumer-perf-test and the raw kafkajs
 * consumer read all of it; each node-red case reads its last `tail` records (its group starts there), sized
 * so that the bridge runs about 10 s at either size: a drain ends at a commit, made once a second, so a 5 s
 * run could read up to 20 % slow; the RSS case drains 1M records of the 100 B topic.
 */
const backlogRecords = (size: number, quick: boolean) =>
  (size <= 100 ? 2_000_000 : 600_000) / (quick ? 4 : 1);
const tail = (_size: number, quick: boolean) => 300_000 / (quick ? 4 : 1);
const RSS_RECORDS = (quick: boolean) => (quick ? 250_000 : 1_000_000);
const LATENCY_RATE = 5000;
const LATENCY_SECONDS = (quick: boolean) => (quick ? 10 : 20);
/** Records of the first seconds of the latency run are left out (JIT warm-up). */
const LATENCY_WARMUP_MS = 2000;
const PERF_SECONDS = (quick: boolean) => (quick ? 21 : 32);

// ---------------------------------------------------------------- results

interface Row {
  case:
    | CaseName
    | "limit: kafka consumer-perf-test"
    | "limit: pulsar-perf produce"
    | "limit"
    | "reverse: pulsar-perf consume"
    | "reverse: kafka producer-perf-test";
  label: string;
  size: number;
  records?: number;
  seconds?: number;
  rate?: number;
  ratio?: number;
  note?: string;
  error?: string;
  details?: Record<string, unknown>;
}

const rows: Row[] = [];
const limits = new Map<number, number>();
const started = Date.now();

function log(line: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  console.error(`[bench ${s}s] ${line}`);
}

const load = () => os.loadavg()[0]?.toFixed(1) ?? "?";

function record(row: Row): Row {
  row.details = { ...row.details, loadAverage1m: os.loadavg()[0] };
  const limit = limits.get(row.size);
  // the other direction has limits of its own (set by reverseCase)
  if (
    row.rate !== undefined &&
    limit !== undefined &&
    row.case !== "limit" &&
    !row.case.startsWith("reverse")
  )
    row.ratio = row.rate / limit;
  rows.push(row);
  log(
    row.error
      ? `${row.label} ${row.size} B: ${row.error}`
      : `${row.label} ${row.size} B: ${row.rate?.toFixed(0) ?? "-"} msg/s${row.note ? ` (${row.note})` : ""}`,
  );
  return row;
}

const fmtRate = (r: number | undefined) =>
  r === undefined ? "–" : r >= 100_000 ? `${(r / 1000).toFixed(0)}k` : `${(r / 1000).toFixed(1)}k`;
const fmtRatio = (r: number | undefined) => (r === undefined ? "–" : `${r.toFixed(2)}×`);

// ---------------------------------------------------------------- brokers

const kafka = new Kafka({ clientId: "bench", brokers: kafkaBrokers, logLevel: logLevel.NOTHING });
let admin: Admin;
const kafkaTopics: string[] = [];

async function pulsarAdmin(method: string, pathname: string, body?: unknown) {
  return requestJson(`${pulsarHttpUrl}/admin/v2${pathname}`, method, body);
}

/** A partitioned Pulsar topic (3 partitions) in `ns` (public/default unless given); returns its full name. */
async function pulsarTopic(name: string, ns = "public/default"): Promise<string> {
  const r = await pulsarAdmin("PUT", `/persistent/${ns}/${name}/partitions`, PARTITIONS);
  if (r.status !== 204)
    throw new Error(`creating Pulsar topic ${name}: ${r.status} ${JSON.stringify(r.json)}`);
  return `persistent://${ns}/${name}`;
}

async function dropPulsarTopic(full: string): Promise<void> {
  const p = full.replace("persistent://", "");
  await pulsarAdmin("DELETE", `/persistent/${p}/partitions?force=true`).catch(() => undefined);
}

/** Messages stored in a partitioned Pulsar topic so far. */
async function storedIn(full: string): Promise<number> {
  const r = await pulsarAdmin("GET", `/persistent/${full.replace("persistent://", "")}/partitioned-stats`);
  return r.status === 200 ? ((r.json as { msgInCounter?: number }).msgInCounter ?? 0) : 0;
}

/** A namespace with broker-side deduplication, for effectively-once. */
async function dedupNamespace(): Promise<string> {
  const ns = `public/${uniqueName("bench-eo")}`;
  let r = await pulsarAdmin("PUT", `/namespaces/${ns}`, {});
  if (r.status !== 204) throw new Error(`creating namespace ${ns}: ${r.status} ${JSON.stringify(r.json)}`);
  r = await pulsarAdmin("POST", `/namespaces/${ns}/deduplication`, true);
  if (r.status !== 204) throw new Error(`enabling deduplication on ${ns}: ${r.status}`);
  return ns;
}

async function createKafkaTopic(name: string): Promise<void> {
  await admin.createTopics({ topics: [{ topic: name, numPartitions: PARTITIONS }], waitForLeaders: true });
  kafkaTopics.push(name);
}

interface Backlog {
  topic: string;
  size: number;
  records: number;
  /** End offset per partition. */
  ends: Map<number, number>;
}

/** A Kafka topic of 3 partitions holding `records` records of `size` bytes, written by producer-perf-test. */
async function kafkaBacklog(prefix: string, size: number, records: number): Promise<Backlog> {
  const topic = uniqueName(prefix);
  await createKafkaTopic(topic);
  const t = Date.now();
  await runToolOk(
    "kafka-tool",
    [
      "producer-perf-test",
      "--topic",
      topic,
      "--num-records",
      String(records),
      "--record-size",
      String(size),
      "--throughput",
      "-1",
      "--producer-props",
      `bootstrap.servers=${kafkaBrokers.join(",")}`,
      "acks=1",
      "linger.ms=10",
      "batch.size=262144",
    ],
    { timeoutMs: 600_000 },
  );
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((e) => [e.partition, Number(e.high)]));
  const n = [...ends.values()].reduce((a, b) => a + b, 0);
  log(
    `backlog ${topic}: ${n} records of ${size} B (${[...ends.values()].join(" + ")}) in ${((Date.now() - t) / 1000).toFixed(1)} s`,
  );
  if (n < records) throw new Error(`backlog ${topic} holds ${n} records, not ${records}`);
  return { topic, size, records: n, ends };
}

/**
 * A new consumer group whose committed offsets leave the last `n` records of the backlog to read (spread
 * over the partitions in proportion to their length). `base` is the sum of those offsets.
 */
async function tailGroup(
  prefix: string,
  b: Backlog,
  n: number,
): Promise<{ groupId: string; base: number; records: number }> {
  const groupId = uniqueName(prefix);
  if (n >= b.records) return { groupId, base: 0, records: b.records };
  const partitions = [...b.ends].map(([partition, end]) => ({
    partition,
    offset: String(end - Math.round((n * end) / b.records)),
  }));
  await admin.setOffsets({ groupId, topic: b.topic, partitions });
  const base = partitions.reduce((a, p) => a + Number(p.offset), 0);
  return { groupId, base, records: b.records - base };
}

async function committed(groupId: string, topic: string): Promise<number> {
  return (await groupOffsets(admin, groupId, topic)).committed;
}

/** Waits until `groupId` is Stable with partitions assigned: the start of consumption. */
async function groupStable(groupId: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await groupMembers(admin, groupId)).withPartitions > 0) return Date.now();
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`consumer group ${groupId} not stable with partitions within ${timeoutMs / 1000} s`);
}

// ---------------------------------------------------------------- the limit

async function consumerPerfTest(topic: string, records: number): Promise<{ rate: number; seconds: number }> {
  const r = await runToolOk(
    "kafka-tool",
    [
      "consumer-perf-test",
      "--bootstrap-server",
      kafkaBrokers.join(","),
      "--topic",
      topic,
      "--messages",
      String(records),
      "--group",
      uniqueName("bench-cpt"),
      "--timeout",
      "30000",
    ],
    { timeoutMs: 300_000 },
  );
  // start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms,
  // fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec: the fetch figures leave out the group join, as we do.
  const line = r.stdout
    .trim()
    .split("\n")
    .reverse()
    .find((l) => /^\d{4}-/.test(l));
  const cols = line?.split(",").map((c) => c.trim());
  if (!cols || cols.length < 10)
    throw new Error(`unexpected consumer-perf-test output:\n${r.stdout}\n${r.stderr}`);
  const consumed = Number(cols[4]);
  if (consumed < records) throw new Error(`consumer-perf-test read ${consumed} of ${records} records`);
  return { rate: Number(cols[9]), seconds: Number(cols[7]) / 1000 };
}

async function limitCase(size: number, backlogTopic: Backlog, o: Options) {
  // Three runs of the JVM tool (each a few seconds at most on this backlog); the best one counts.
  const runs: { rate: number; seconds: number }[] = [];
  for (let i = 0; i < 3; i++) runs.push(await consumerPerfTest(backlogTopic.topic, backlogTopic.records));
  const best = runs.reduce((a, b) => (b.rate > a.rate ? b : a));
  const kafkaRate = best.rate;
  const topic = await pulsarTopic(uniqueName(`bench-perf-${size}`));
  let pulsarRate: number;
  try {
    pulsarRate = await pulsarPerfRate(size, PERF_SECONDS(o.quick), topic);
  } finally {
    await dropPulsarTopic(topic);
  }
  const limit = Math.min(kafkaRate, pulsarRate);
  limits.set(size, limit);
  record({
    case: "limit: kafka consumer-perf-test",
    label: "limit: Kafka consumer-perf-test",
    size,
    records: backlogTopic.records,
    seconds: best.seconds,
    rate: kafkaRate,
    ratio: kafkaRate / limit,
    note: `fetch rate, best of ${runs.map((r) => r.rate.toFixed(0)).join(" / ")}`,
  });
  record({
    case: "limit: pulsar-perf produce",
    label: "limit: pulsar-perf produce",
    size,
    seconds: PERF_SECONDS(o.quick),
    rate: pulsarRate,
    ratio: pulsarRate / limit,
    note: "batched, mean of the 10 s windows after the first",
  });
  record({
    case: "limit",
    label: "limit (the lower)",
    size,
    rate: limit,
    ratio: 1,
    note: kafkaRate <= pulsarRate ? "Kafka consumer" : "Pulsar producer",
  });
}

// ---------------------------------------------------------------- outside node-red

async function rawKafkajs(size: number, backlogTopic: Backlog): Promise<void> {
  const consumer = kafka.consumer({ groupId: uniqueName("bench-raw") });
  let count = 0;
  let t0 = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  consumer.on(consumer.events.GROUP_JOIN, () => (t0 = Date.now()));
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [backlogTopic.topic], fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        count += batch.messages.length;
        if (count >= backlogTopic.records) finish();
        await Promise.resolve();
      },
    });
    const timeout = setTimeout(finish, 300_000);
    await finished;
    clearTimeout(timeout);
    const seconds = (Date.now() - t0) / 1000;
    if (count < backlogTopic.records) throw new Error(`read ${count} of ${backlogTopic.records} in 300 s`);
    record({
      case: "kafkajs",
      label: "raw kafkajs consumer (eachBatch)",
      size,
      records: count,
      seconds,
      rate: count / seconds,
      note: "in the bench process, kafkajs defaults",
    });
  } finally {
    await consumer.disconnect();
  }
}

async function ourProducer(size: number, o: Options): Promise<void> {
  const topic = await pulsarTopic(uniqueName(`bench-ours-${size}`));
  try {
    // as long as pulsar-perf, measured the same way (10 s windows after the first)
    const { rate, messages, windowSeconds } = await ourProducerRate(size, PERF_SECONDS(o.quick), topic);
    record({
      case: "producer",
      label: "our Pulsar producer (batched)",
      size,
      records: messages,
      seconds: windowSeconds,
      rate,
      note: "bench/pulsar-producer.ts settings",
    });
  } finally {
    await dropPulsarTopic(topic);
  }
}

// ---------------------------------------------------------------- inside node-red

interface Drain {
  t0: number;
  /** The drain's window on the monotonic clock, in microseconds (for the CPU profile). */
  monoFromUs: number;
  monoToUs: number;
  /** When every offset was committed / the Pulsar topic held every record (ms since t0). */
  committedMs?: number;
  storedMs?: number;
  samples: { ms: number; rss: number; progress: number }[];
  hwm?: number;
}

/**
 * Deploys `flow` on a running node-red and watches from outside: the start of consumption is when the
 * group is stable with partitions assigned; the end is when every offset is committed (or, with
 * until = "stored", when the Pulsar topic holds every record). Fails after 60 s without progress.
 */
async function drain(o: {
  nr: BenchNodeRed;
  flow: unknown[];
  target: FlowTarget;
  /** Offsets committed for the group before it started (see tailGroup). */
  base: number;
  records: number;
  until: "committed" | "stored";
  watchPulsar: boolean;
}): Promise<Drain> {
  await o.nr.deploy(o.flow);
  const t0 = await groupStable(o.target.groupId);
  const monoUs = () => Number(process.hrtime.bigint() / 1000n);
  const d: Drain = { t0, monoFromUs: monoUs(), monoToUs: 0, samples: [] };
  let last = { committed: -1, stored: -1, at: Date.now() };
  for (;;) {
    const [c, s] = await Promise.all([
      committed(o.target.groupId, o.target.kafkaTopic).then(
        (x) => x - o.base,
        () => last.committed,
      ),
      o.watchPulsar ? storedIn(o.target.pulsarTopic).catch(() => last.stored) : Promise.resolve(0),
    ]);
    const now = Date.now();
    const mem = memoryOf(o.nr.pid);
    if (mem) d.samples.push({ ms: now - t0, rss: mem.rss, progress: Math.max(c, s) / o.records });
    if (c >= o.records && d.committedMs === undefined) d.committedMs = now - t0;
    if (o.watchPulsar && s >= o.records && d.storedMs === undefined) d.storedMs = now - t0;
    if (o.until === "committed" ? d.committedMs !== undefined : d.storedMs !== undefined) break;
    if (c !== last.committed || s !== last.stored) last = { committed: c, stored: s, at: now };
    else if (now - last.at > 60_000) {
      throw new Error(
        `no progress for 60 s: ${c} of ${o.records} offsets committed, ${o.watchPulsar ? `${s} stored in Pulsar` : ""}; node-red said:\n${o.nr
          .output()
          .split("\n")
          .slice(-15)
          .join("\n")}`,
      );
    }
    if (o.nr.process.exitCode !== null) throw new Error(`node-red exited:\n${o.nr.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  d.monoToUs = monoUs();
  d.hwm = memoryOf(o.nr.pid)?.hwm;
  return d;
}

type NodeRedCase = "kafka-in" | "bridge" | "effectively-once" | "batch" | "window" | "peer";

const LABELS: Record<NodeRedCase, string> = {
  "kafka-in": "kafka-in alone (-> counting function)",
  bridge: "bridge settled",
  "effectively-once": "bridge effectively-once",
  batch: "bridge, batch output",
  window: "windowed bridge (count per key and minute)",
  peer: `peer: ${PEER_PACKAGE} consumer bridge`,
};

const profileReports: (ReturnType<typeof topSelfTime> & { file: string; window: string })[] = [];

async function nodeRedCase(
  which: NodeRedCase,
  size: number,
  backlogTopic: Backlog,
  o: Options,
): Promise<void> {
  const label = LABELS[which];
  let records = 0;
  let ns: string | undefined;
  let pulsar: string | undefined;
  let nr: BenchNodeRed | undefined;
  let window: { fromUs: number; toUs: number } | undefined;
  const profDir = o.cpuProf ? fs.mkdtempSync(path.join(os.tmpdir(), "bench-prof-")) : undefined;
  try {
    if (which === "effectively-once") ns = await dedupNamespace();
    if (which !== "kafka-in") pulsar = await pulsarTopic(uniqueName(`bench-${which}-${size}`), ns);
    const group = await tailGroup(`bench-${which}`, backlogTopic, tail(size, o.quick));
    records = group.records;
    const target: FlowTarget = {
      kafkaTopic: backlogTopic.topic,
      groupId: group.groupId,
      pulsarTopic: pulsar ?? "",
    };
    nr = await startNodeRed(profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []);
    if (which === "peer") {
      const types = await nr.types();
      if (!types.includes("kafka-suite-consumer"))
        throw new Error(
          `${PEER_PACKAGE} is not installed or registered no kafka-suite-consumer type (registered: ${types.join(", ")})`,
        );
    }
    const flow =
      which === "kafka-in"
        ? kafkaInAlone(target)
        : which === "peer"
          ? peerBridge(target)
          : which === "window"
            ? windowedBridge(target, `bench-window-${size}-${group.groupId}`)
            : bridge(target, which === "bridge" ? "settled" : which);
    // The peer commits on receipt (auto-commit every 5 s), not after Pulsar's receipt: its end is when Pulsar
    // holds every record. Batch output stores one Pulsar message per batch: its end is the last commit.
    const until = which === "peer" ? "stored" : "committed";
    const d = await drain({
      nr,
      flow,
      target,
      base: group.base,
      records,
      until,
      watchPulsar: which !== "kafka-in" && which !== "batch" && which !== "window",
    });
    window = { fromUs: d.monoFromUs, toUs: d.monoToUs };
    const endMs = (until === "stored" ? d.storedMs : d.committedMs) ?? NaN;
    const seconds = endMs / 1000;
    const notes: string[] = [];
    if (until === "committed") notes.push("until every offset committed");
    else notes.push("until Pulsar held every record (it commits on receipt)");
    // Commits happen once a second, so the last one can come up to 1 s after the last Pulsar receipt.
    const storedRate = d.storedMs === undefined ? undefined : records / (d.storedMs / 1000);
    if (d.storedMs !== undefined && storedRate !== undefined && until === "committed")
      notes.push(
        `Pulsar held all at ${(d.storedMs / 1000).toFixed(1)} s: ${fmtRate(storedRate)} msg/s by that measure`,
      );
    if (which === "batch") notes.push("one Pulsar message per batch of ≤100");
    if (which === "window") notes.push("records commit once checkpointed to the changelog");
    const peakRss = Math.max(...d.samples.map((s) => s.rss));
    notes.push(`peak RSS ${(peakRss / MB).toFixed(0)} MB`);
    record({
      case: which,
      label,
      size,
      records,
      seconds,
      rate: records / seconds,
      note: notes.join("; "),
      details: {
        committedSeconds: d.committedMs === undefined ? undefined : d.committedMs / 1000,
        storedSeconds: d.storedMs === undefined ? undefined : d.storedMs / 1000,
        storedRate,
        peakRssMB: peakRss / MB,
      },
    });
  } catch (err) {
    record({ case: which, label, size, records: records || undefined, error: (err as Error).message });
  } finally {
    await nr?.stop();
    if (pulsar) await dropPulsarTopic(pulsar);
    if (ns) await pulsarAdmin("DELETE", `/namespaces/${ns}?force=true`).catch(() => undefined);
    if (profDir) {
      const file = fs.readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
      if (file) {
        const target = path.join(os.tmpdir(), `bench-node-red-${which}-${size}.cpuprofile`);
        fs.copyFileSync(path.join(profDir, file), target);
        profileReports.push({
          file: target,
          window: window
            ? `${label}, ${size} B, the drain`
            : `${label}, ${size} B, the whole process life (the case failed)`,
          ...topSelfTime(target, 10, window),
        });
      } else log(`--cpu-prof: node-red wrote no profile in ${profDir}`);
      fs.rmSync(profDir, { recursive: true, force: true });
    }
  }
}

// ---------------------------------------------------------------- the other direction

async function reverseCase(size: number, o: Options): Promise<void> {
  const records = tail(size, o.quick);
  try {
    const f = await reverseFigures(
      size,
      records,
      async (name) => {
        const topic = uniqueName(name);
        await createKafkaTopic(topic);
        return topic;
      },
      log,
    );
    const lower = Math.min(f.perfConsume, f.perfProduce);
    record({
      case: "reverse: pulsar-perf consume",
      label: "reverse limit: pulsar-perf consume",
      size,
      records: f.records,
      rate: f.perfConsume,
      ratio: f.perfConsume / lower,
      note: "the same backlog, its own aggregated rate",
    });
    record({
      case: "reverse: kafka producer-perf-test",
      label: "reverse limit: Kafka producer-perf-test",
      size,
      records: f.records,
      rate: f.perfProduce,
      ratio: f.perfProduce / lower,
      note: "acks=all",
    });
    record({
      case: "reverse",
      label: "pulsar-in -> kafka-out",
      size,
      records: f.records,
      seconds: f.bridgeSeconds,
      rate: f.bridge,
      ratio: f.bridge / lower,
      note: `until the subscription's backlog is 0; × limit: of the lower of the two tools; peak RSS ${f.peakRssMB.toFixed(0)} MB`,
      details: { reverseLimit: lower, peakRssMB: f.peakRssMB },
    });
  } catch (err) {
    record({ case: "reverse", label: "pulsar-in -> kafka-out", size, error: (err as Error).message });
  }
}

// ---------------------------------------------------------------- memory

interface RssResult {
  records: number;
  beforeMB: number;
  peakMB: number;
  hwmMB?: number;
  afterMB: number;
  /** RSS (max within each quarter of the drain, by progress). */
  quartersMB: number[];
  flat: boolean;
  seconds: number;
  rate: number;
  error?: string;
}

let rssResult: RssResult | undefined;

async function rssCase(o: Options, existing: Backlog | undefined): Promise<void> {
  const size = 100;
  const records = RSS_RECORDS(o.quick);
  let nr: BenchNodeRed | undefined;
  let pulsar: string | undefined;
  try {
    const b =
      existing && existing.records >= records ? existing : await kafkaBacklog("bench-rss", size, records);
    const group = await tailGroup("bench-rss", b, records);
    pulsar = await pulsarTopic(uniqueName("bench-rss"));
    nr = await startNodeRed();
    await new Promise((r) => setTimeout(r, 2000));
    const before = memoryOf(nr.pid)?.rss ?? NaN;
    const target: FlowTarget = { kafkaTopic: b.topic, groupId: group.groupId, pulsarTopic: pulsar };
    const d = await drain({
      nr,
      flow: bridge(target, "settled"),
      target,
      base: group.base,
      records: group.records,
      until: "committed",
      watchPulsar: true,
    });
    await new Promise((r) => setTimeout(r, 5000));
    const after = memoryOf(nr.pid)?.rss ?? NaN;
    const quarters = [0, 1, 2, 3].map((q) => {
      const inQ = d.samples.filter(
        (s) => s.progress >= q / 4 && s.progress < (q + 1) / 4 + (q === 3 ? 1 : 0),
      );
      return inQ.length ? Math.max(...inQ.map((s) => s.rss)) / MB : NaN;
    });
    const peak = Math.max(...d.samples.map((s) => s.rss)) / MB;
    // flat: the last quarter of the drain needs no more than 20 MB above the second quarter
    const flat = (quarters[3] ?? NaN) <= (quarters[1] ?? NaN) + 20;
    const seconds = (d.committedMs ?? NaN) / 1000;
    rssResult = {
      records: group.records,
      beforeMB: before / MB,
      peakMB: peak,
      hwmMB: d.hwm === undefined ? undefined : d.hwm / MB,
      afterMB: after / MB,
      quartersMB: quarters,
      flat,
      seconds,
      rate: group.records / seconds,
    };
    log(`rss: ${JSON.stringify(rssResult)}`);
  } catch (err) {
    rssResult = {
      records,
      beforeMB: NaN,
      peakMB: NaN,
      afterMB: NaN,
      quartersMB: [],
      flat: false,
      seconds: NaN,
      rate: NaN,
      error: (err as Error).message,
    };
    log(`rss: ${(err as Error).message}`);
  } finally {
    await nr?.stop();
    if (pulsar) await dropPulsarTopic(pulsar);
  }
}

// ---------------------------------------------------------------- window-keys

/**
 * The windowed bridge's memory with many keys open (issue 14): one record per key, a one-hour window so
 * that none closes, and the node-red process's RSS before, at its peak and once drained (every key's window
 * open, its state in memory and in the changelog).
 */
async function windowKeysCase(o: Options): Promise<void> {
  const keys = o.quick ? 25_000 : 100_000;
  const label = `windowed bridge, ${keys / 1000}k keys open (one-hour window)`;
  let nr: BenchNodeRed | undefined;
  let pulsar: string | undefined;
  try {
    const topic = uniqueName("bench-window-keys");
    await createKafkaTopic(topic);
    const producer = kafka.producer();
    await producer.connect();
    const value = Buffer.alloc(100, 0x61);
    try {
      for (let i = 0; i < keys; i += 5000)
        await producer.send({
          topic,
          acks: 1,
          messages: Array.from({ length: Math.min(5000, keys - i) }, (_, j) => ({
            key: `key-${i + j}`,
            value,
          })),
        });
    } finally {
      await producer.disconnect();
    }
    const ends = new Map((await admin.fetchTopicOffsets(topic)).map((e) => [e.partition, Number(e.high)]));
    const group = await tailGroup("bench-window-keys", { topic, size: 100, records: keys, ends }, keys);
    pulsar = await pulsarTopic(uniqueName("bench-window-keys"));
    nr = await startNodeRed();
    await new Promise((r) => setTimeout(r, 2000));
    const before = memoryOf(nr.pid)?.rss ?? NaN;
    const target: FlowTarget = { kafkaTopic: topic, groupId: group.groupId, pulsarTopic: pulsar };
    const d = await drain({
      nr,
      flow: windowedBridge(target, uniqueName("bench-window-keys-state"), 3_600_000),
      target,
      base: group.base,
      records: group.records,
      until: "committed",
      watchPulsar: false,
    });
    await new Promise((r) => setTimeout(r, 5000));
    const after = memoryOf(nr.pid)?.rss ?? NaN;
    const peak = Math.max(...d.samples.map((s) => s.rss));
    const seconds = (d.committedMs ?? NaN) / 1000;
    record({
      case: "window-keys",
      label,
      size: 100,
      records: group.records,
      seconds,
      rate: group.records / seconds,
      note:
        `RSS ${(before / MB).toFixed(0)} MB before, peak ${(peak / MB).toFixed(0)} MB, ${(after / MB).toFixed(0)} MB ` +
        `with every key's window open: ~${Math.round((after - before) / keys)} B per key`,
      details: { beforeMB: before / MB, peakRssMB: peak / MB, afterMB: after / MB, keys },
    });
  } catch (err) {
    record({ case: "window-keys", label, size: 100, error: (err as Error).message });
  } finally {
    await nr?.stop();
    if (pulsar) await dropPulsarTopic(pulsar);
  }
}

// ---------------------------------------------------------------- latency

interface LatencyResult {
  rate: number;
  seconds: number;
  produced: number;
  measured: number;
  p50?: number;
  p99?: number;
  max?: number;
  error?: string;
}

let latencyResult: LatencyResult | undefined;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function latencyCase(o: Options): Promise<void> {
  const seconds = LATENCY_SECONDS(o.quick);
  let nr: BenchNodeRed | undefined;
  let pulsar: string | undefined;
  const producer = kafka.producer();
  const client = createClient({ serviceUrl: pulsarUrl });
  try {
    const topic = uniqueName("bench-latency");
    await createKafkaTopic(topic);
    pulsar = await pulsarTopic(uniqueName("bench-latency"));
    const target: FlowTarget = {
      kafkaTopic: topic,
      groupId: uniqueName("bench-latency"),
      pulsarTopic: pulsar,
    };
    nr = await startNodeRed();
    await nr.deploy(bridge(target, "settled"));
    await groupStable(target.groupId);
    await producer.connect();
    // A steady LATENCY_RATE: every 5 ms, what the clock says is due, in one send (the record timestamp is
    // set by kafkajs when it builds the batch).
    const payload = Buffer.alloc(100, 0x61);
    const t0 = Date.now();
    let sent = 0;
    const sends: Promise<unknown>[] = [];
    const total = LATENCY_RATE * seconds;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((Date.now() - t0) * LATENCY_RATE) / 1000));
      if (due > sent) {
        const n = due - sent;
        sent = due;
        sends.push(
          producer.send({ topic, acks: 1, messages: Array.from({ length: n }, () => ({ value: payload })) }),
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(sends);
    const produceSeconds = (Date.now() - t0) / 1000;
    const deadline = Date.now() + 120_000;
    while ((await storedIn(pulsar)) < total) {
      if (Date.now() > deadline)
        throw new Error(`Pulsar holds ${await storedIn(pulsar)} of ${total} after 120 s`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // Read back with our consumer: publish time (set by pulsar-out's producer when it sends the batch) minus
    // event time (the Kafka record timestamp, carried by pulsar-out).
    const consumer = await client.subscribe({
      topic: pulsar,
      subscription: "bench-latency",
      initialPosition: "earliest",
    });
    const latencies: number[] = [];
    for (let i = 0; i < total; i++) {
      const m = await consumer.receive(10_000);
      if (m.eventTime !== undefined && m.eventTime >= t0 + LATENCY_WARMUP_MS)
        latencies.push(m.publishTime - m.eventTime);
    }
    await consumer.close();
    latencies.sort((a, b) => a - b);
    latencyResult = {
      rate: total / produceSeconds,
      seconds: produceSeconds,
      produced: total,
      measured: latencies.length,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies[latencies.length - 1],
    };
    log(`latency: ${JSON.stringify(latencyResult)}`);
  } catch (err) {
    latencyResult = {
      rate: LATENCY_RATE,
      seconds,
      produced: 0,
      measured: 0,
      error: (err as Error).message,
    };
    log(`latency: ${(err as Error).message}`);
  } finally {
    await producer.disconnect().catch(() => undefined);
    await client.close().catch(() => undefined);
    await nr?.stop();
    if (pulsar) await dropPulsarTopic(pulsar);
  }
}

// ---------------------------------------------------------------- report

interface Goal {
  goal: string;
  measured: string;
  met: boolean | undefined;
}

function goals(o: Options): Goal[] {
  const out: Goal[] = [];
  const rate = (c: Row["case"], size: number) => rows.find((r) => r.case === c && r.size === size)?.rate;
  const ratioGoal = (goal: string, a: Row["case"], b: Row["case"], min: number) => {
    for (const size of o.sizes) {
      const x = rate(a, size);
      const y = rate(b, size);
      if (x === undefined || y === undefined) continue;
      out.push({ goal: `${goal} (${size} B)`, measured: `${(x / y).toFixed(2)}×`, met: x / y >= min });
    }
  };
  ratioGoal("our producer ≥ 1.0× pulsar-perf", "producer", "limit: pulsar-perf produce", 1.0);
  ratioGoal("kafka-in ≥ 0.8× raw kafkajs", "kafka-in", "kafkajs", 0.8);
  ratioGoal("bridge ≥ 0.6× the limit", "bridge", "limit", 0.6);
  ratioGoal("effectively-once ≥ 0.8× settled", "effectively-once", "bridge", 0.8);
  ratioGoal("windowed bridge ≥ 0.8× the bridge", "window", "bridge", 0.8);
  for (const size of o.sizes) {
    const r = rows.find((x) => x.case === "reverse" && x.size === size);
    const lower = r?.details?.reverseLimit;
    if (r?.rate === undefined || typeof lower !== "number") continue;
    out.push({
      goal: `pulsar-in -> kafka-out ≥ 0.6× the lower of pulsar-perf consume and producer-perf-test (${size} B)`,
      measured: `${(r.rate / lower).toFixed(2)}×`,
      met: r.rate / lower >= 0.6,
    });
  }
  // The peer commits on receipt: both bridges are compared until Pulsar held every record.
  for (const size of o.sizes) {
    const ours = rows.find((r) => r.case === "bridge" && r.size === size)?.details?.storedRate;
    const peer = rows.find((r) => r.case === "peer" && r.size === size);
    if (typeof ours !== "number" || peer?.rate === undefined) continue;
    out.push({
      goal: `kafka-in ≥ 1.5× the peer, bridge vs peer bridge until Pulsar held all (${size} B)`,
      measured: `${(ours / peer.rate).toFixed(2)}×`,
      met: ours / peer.rate >= 1.5,
    });
  }
  for (const size of o.sizes) {
    const peer = rows.find((r) => r.case === "peer" && r.size === size);
    if (peer?.error)
      out.push({ goal: `kafka-in ≥ 1.5× the peer (${size} B)`, measured: "peer failed", met: undefined });
  }
  if (rssResult) {
    out.push({
      goal: `RSS ≤ 200 MB and flat (bridge, backlog of ${rssResult.records} × 100 B)`,
      measured: rssResult.error
        ? (rssResult.error.split("\n")[0] ?? "")
        : `peak ${rssResult.peakMB.toFixed(0)} MB, ${rssResult.flat ? "flat" : "growing"}`,
      met: rssResult.error ? false : rssResult.peakMB <= 200 && rssResult.flat,
    });
  }
  if (latencyResult) {
    out.push({
      goal: `p99 ≤ 25 ms at ${LATENCY_RATE / 1000}k msg/s`,
      measured: latencyResult.error
        ? (latencyResult.error.split("\n")[0] ?? "")
        : `p99 ${latencyResult.p99} ms`,
      met: latencyResult.error ? false : (latencyResult.p99 ?? Infinity) <= 25,
    });
  }
  return out;
}

function table(): string {
  const lines = [
    "| case | size | records | s | msg/s | × limit | load | note |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${r.size} B | ${r.records ?? "–"} | ${r.seconds === undefined ? "–" : r.seconds.toFixed(1)} | ${r.error ? "**failed**" : fmtRate(r.rate)} | ${fmtRatio(r.ratio)} | ${typeof r.details?.loadAverage1m === "number" ? r.details.loadAverage1m.toFixed(1) : "–"} | ${r.error ? r.error.replace(/\s*\n\s*/g, " ⏎ ").slice(0, 400) : (r.note ?? "")} |`,
    );
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (!fs.existsSync(path.join(ROOT, "nodes", "lib", "kafka.js")))
    throw new Error("nodes/lib is missing: run `npm run build` first");
  const on = (c: CaseName) => o.only.has(c);
  const loadAtStart = load();
  log(
    `brokers ${kafkaBrokers.join(",")} and ${pulsarUrl}; ${o.quick ? "quick" : "full"} run of ${[...o.only].join(", ")}; ${os.cpus().length} cores, node ${process.version}, load average ${loadAtStart}`,
  );
  admin = kafka.admin();
  await admin.connect();
  let backlog100: Backlog | undefined;
  try {
    const needsBacklog = (
      ["limit", "kafkajs", "kafka-in", "bridge", "effectively-once", "batch", "window", "peer"] as const
    ).some(on);
    for (const size of o.sizes) {
      const b = needsBacklog
        ? await kafkaBacklog(`bench-${size}`, size, backlogRecords(size, o.quick))
        : undefined;
      if (b && size === 100) backlog100 = b;
      if (b && on("limit")) await limitCase(size, b, o);
      if (b && on("kafkajs")) await rawKafkajs(size, b);
      if (on("producer")) await ourProducer(size, o);
      for (const c of ["kafka-in", "bridge", "effectively-once", "batch", "window", "peer"] as const)
        if (b && on(c)) await nodeRedCase(c, size, b, o);
      if (on("reverse")) await reverseCase(size, o);
    }
    if (on("rss")) await rssCase(o, backlog100);
    if (on("window-keys")) await windowKeysCase(o);
    if (on("latency")) await latencyCase(o);
  } finally {
    if (kafkaTopics.length) await admin.deleteTopics({ topics: kafkaTopics }).catch(() => undefined);
    await admin.disconnect();
  }

  const seconds = (Date.now() - started) / 1000;
  const g = goals(o);
  const out: string[] = [];
  out.push("");
  out.push(
    `Benchmark (${o.quick ? "--quick" : "full"}), ${new Date().toISOString()}, ${os.cpus().length} cores, node ${process.version}, load average (1 min) ${loadAtStart} at the start and ${load()} at the end; 3 partitions (Kafka and Pulsar); node-red cases: from the group joined to every offset committed; load: 1-min load average when the case ended`,
  );
  if (rows.length) {
    out.push("");
    out.push(table());
  }
  if (rssResult) {
    out.push("");
    out.push(
      rssResult.error
        ? `RSS (bridge, ${rssResult.records} × 100 B): failed: ${rssResult.error}`
        : `RSS of node-red, bridge draining ${rssResult.records} × 100 B (${rssResult.rate.toFixed(0)} msg/s, ${rssResult.seconds.toFixed(1)} s): before ${rssResult.beforeMB.toFixed(0)} MB, peak ${rssResult.peakMB.toFixed(0)} MB (VmHWM ${rssResult.hwmMB?.toFixed(0) ?? "?"} MB), per quarter of the drain ${rssResult.quartersMB.map((q) => q.toFixed(0)).join(" / ")} MB, after (5 s idle) ${rssResult.afterMB.toFixed(0)} MB: ${rssResult.flat ? "flat" : "growing"}`,
    );
  }
  if (latencyResult) {
    out.push("");
    out.push(
      latencyResult.error
        ? `Latency: failed: ${latencyResult.error}`
        : `Latency Kafka record timestamp -> Pulsar publish time, bridge settled, ${latencyResult.rate.toFixed(0)} msg/s for ${latencyResult.seconds.toFixed(0)} s (first ${LATENCY_WARMUP_MS / 1000} s left out, ${latencyResult.measured} records): p50 ${latencyResult.p50} ms, p99 ${latencyResult.p99} ms, max ${latencyResult.max} ms`,
    );
  }
  for (const profileReport of profileReports) {
    out.push("");
    out.push(
      `CPU profile of node-red (${profileReport.window}: ${(profileReport.busyMs / 1000).toFixed(1)} s busy, ${(profileReport.idleMs / 1000).toFixed(1)} s idle; ${profileReport.file}), top 10 by self time:`,
    );
    out.push(
      `  by module: ${profileReport.byModule.map((m) => `${m.module} ${(m.share * 100).toFixed(1)} %`).join(", ")}`,
    );
    for (const t of profileReport.top)
      out.push(
        `  ${(t.share * 100).toFixed(1).padStart(5)} %  ${t.ms.toFixed(0).padStart(6)} ms  ${t.name}  ${t.where}`,
      );
  }
  if (g.length) {
    out.push("");
    out.push("Goals:");
    for (const x of g)
      out.push(`  ${x.met === undefined ? "n/a   " : x.met ? "met   " : "MISSED"}  ${x.goal}: ${x.measured}`);
  }
  out.push("");
  out.push(`Took ${(seconds / 60).toFixed(1)} min.`);
  console.log(out.join("\n"));

  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  const json =
    JSON.stringify(
      {
        date: new Date().toISOString(),
        mode: o.quick ? "quick" : "full",
        cases: [...o.only],
        machine: { cores: os.cpus().length, node: process.version, loadAverageAtStart: Number(loadAtStart) },
        partitions: PARTITIONS,
        limits: Object.fromEntries(limits),
        rows,
        rss: rssResult,
        latency: latencyResult,
        cpuProfiles: profileReports,
        goals: g,
        seconds,
      },
      null,
      2,
    ) + "\n";
  // formatted as `npm run lint` (prettier --check) expects it
  fs.writeFileSync(
    o.out,
    await prettier.format(json, { ...(await prettier.resolveConfig(o.out)), filepath: o.out }),
  );
  log(`wrote ${path.relative(process.cwd(), o.out)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
