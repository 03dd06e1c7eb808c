// Kafka records written by Kafka's own Java producer, and Pulsar messages read back by Pulsar's own Java
// client: oracles we did not write, for the msg contract (test/support/java/*.java, run as single source
// files with the jars of the test distributions scripts/brokers.mjs unpacks).
import { spawn } from "node:child_process";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { javaHome, kafkaDist, serdesClasspath } from "../../scripts/brokers.mjs";
import { kafkaBrokers, pulsarUrl, registryUrl, runToolOk, ROOT } from "./brokers";
import { pulsarDistribution } from "./pulsar-process";

const JAVA_DIR = path.join(ROOT, "test", "support", "java");

type Bytes = Buffer | string | null;

export interface JavaRecord {
  /** Default: the producer's partitioner. */
  partition?: number;
  /** Milliseconds; "none" writes Kafka's "no timestamp" (-1); default: the producer's clock. */
  timestamp?: number | "none";
  key?: Bytes;
  value: Bytes;
  /** In this order, repeated names and null values as given. */
  headers?: [string, Bytes][];
}

export interface WrittenRecord {
  partition: number;
  offset: string;
  /** As the producer's RecordMetadata reports it (-1 for none; the append time on LogAppendTime topics). */
  timestamp: number;
}

const hex = (b: Bytes) =>
  b === null ? "-" : (Buffer.isBuffer(b) ? b : Buffer.from(b, "utf8")).toString("hex");

/**
 * Writes `records` to `topic` with Kafka's Java producer (kafka-clients of the test Kafka distribution),
 * one at a time and in order. A record without a timestamp (-1) cannot be made through ProducerRecord,
 * which refuses negative timestamps: the tool sets it past the constructor's check, and the rest of the
 * client and the broker take -1 as Kafka's "no timestamp".
 */
export async function produceWithJava(
  topic: string,
  records: JavaRecord[],
  bootstrap = kafkaBrokers.join(","),
): Promise<WrittenRecord[]> {
  const input = records
    .map((r) =>
      [
        r.partition === undefined ? "" : String(r.partition),
        r.timestamp === undefined ? "" : String(r.timestamp),
        hex(r.key ?? null),
        hex(r.value),
        (r.headers ?? []).map(([name, value]) => `${hex(name)}:${hex(value)}`).join(","),
      ].join("\t"),
    )
    .join("\n");
  const r = await runToolOk(
    "kafka-tool",
    [path.join(JAVA_DIR, "KafkaRecordProducer.java"), bootstrap, topic],
    { input: `${input}\n` },
  );
  const written = r.stdout
    .split("\n")
    .filter((l) => l.startsWith("RECORD "))
    .map((l) => {
      const [, partition, offset, timestamp] = l.split(" ");
      return { partition: Number(partition), offset: String(offset), timestamp: Number(timestamp) };
    });
  if (written.length !== records.length)
    throw new Error(`the Java producer wrote ${written.length} of ${records.length} records\n${r.stderr}`);
  return written;
}

export interface JavaPulsarMessage {
  /** Whether the Java client's getValue() (Schema.BYTES) gave a value: false for a null_value message. */
  hasValue: boolean;
  /** getData(): null for a null_value message. */
  data: Buffer | null;
  hasKey: boolean;
  base64Key: boolean;
  keyBytes: Buffer | undefined;
  /** getEventTime(): 0 when the message has none. */
  eventTime: number;
  properties: Record<string, string>;
}

/**
 * Reads up to `count` messages of `topic` from the earliest with Pulsar's Java client (the jars of the test
 * Pulsar distribution), on a subscription of its own; stops after `timeoutS` seconds in all.
 */
export async function readWithJavaPulsar(
  topic: string,
  count: number,
  timeoutS = 60,
  serviceUrl = pulsarUrl,
): Promise<JavaPulsarMessage[]> {
  const stdout = await runJavaSource(
    "PulsarMessageReader.java",
    path.join(pulsarDistribution(), "lib", "*"),
    [serviceUrl, topic, String(count), String(timeoutS)],
    { timeoutS: timeoutS + 60 },
  );
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("MESSAGE\t"))
    .map((l) => {
      const [, value, data, key, b64, keyBytes, eventTime, props] = l.split("\t");
      const properties: Record<string, string> = {};
      for (const p of (props ?? "").split(",").filter(Boolean)) {
        const [n, v] = p.split(":");
        properties[Buffer.from(n ?? "", "hex").toString("utf8")] = Buffer.from(v ?? "", "hex").toString(
          "utf8",
        );
      }
      return {
        hasValue: value === "value",
        data: data === "-" ? null : Buffer.from(data ?? "", "hex"),
        hasKey: key === "key",
        base64Key: b64 === "b64",
        keyBytes: key === "key" ? Buffer.from(keyBytes ?? "", "hex") : undefined,
        eventTime: Number(eventTime),
        properties,
      };
    });
}

/**
 * Runs one of test/support/java/*.java as a single source file with `classpath` (JDK 17, 256 MB heap):
 * its standard output; rejects with the end of its standard error when it exits non-zero or outlives
 * `timeoutS`.
 */
function runJavaSource(
  file: string,
  classpath: string,
  args: string[],
  o: { input?: string; timeoutS?: number } = {},
): Promise<string> {
  const argv = ["-Xmx256m", "-cp", classpath, path.join(JAVA_DIR, file), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(javaHome(), "bin", "java"), argv, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), (o.timeoutS ?? 120) * 1000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${file} exited ${code}\n${stderr.slice(-4000)}`));
    });
    child.stdin.end(o.input ?? "");
  });
}

/**
 * Reads up to `count` messages of `topic` from the earliest with Pulsar's Java client and
 * Schema.AUTO_CONSUME() (it decodes each with the schema version the message names): per message, the
 * schema type and each field's value as Java's String.valueOf prints it.
 */
export async function readWithJavaSchema(
  topic: string,
  count: number,
  timeoutS = 60,
): Promise<{ type: string; fields: Record<string, string> }[]> {
  const stdout = await runJavaSource(
    "PulsarSchemaReader.java",
    path.join(pulsarDistribution(), "lib", "*"),
    [pulsarUrl, topic, String(count), String(timeoutS)],
    { timeoutS: timeoutS + 60 },
  );
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("RECORD\t"))
    .map((l) => {
      const [, type = "", ...fields] = l.split("\t");
      return {
        type,
        fields: Object.fromEntries(
          fields.map((f) => [f.slice(0, f.indexOf("=")), f.slice(f.indexOf("=") + 1)]),
        ),
      };
    });
}

/**
 * Writes Avro records to `topic` with Apicurio Registry's Java serializer in Confluent-compatible mode
 * (test/support/java/RegistryRecordProducer.java), registering `schema` under "<topic>-value" with the test
 * registry. Each value is given in Avro's JSON encoding (unions as {"type": value}, bytes as \u00XX text).
 */
export async function produceWithRegistrySerializer(
  topic: string,
  schema: object,
  records: { key: string; value: string }[],
): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "registry-producer-"));
  const schemaFile = path.join(dir, "schema.avsc");
  fs.writeFileSync(schemaFile, JSON.stringify(schema));
  const classpath = `${path.join(kafkaDist(), "libs", "*")}:${await serdesClasspath()}`;
  const v2 = registryUrl.replace(/\/apis\/ccompat\/v7\/?$/, "/apis/registry/v2");
  try {
    const out = await runJavaSource(
      "RegistryRecordProducer.java",
      classpath,
      [kafkaBrokers.join(","), topic, v2, schemaFile],
      { input: records.map((r) => `${r.key}\t${r.value}\n`).join("") },
    );
    const written = out.split("\n").filter((l) => l.startsWith("RECORD ")).length;
    if (written !== records.length)
      throw new Error(`the registry producer wrote ${written} of ${records.length} records`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
