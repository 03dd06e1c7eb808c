// Kafka helpers for tests: topics, producing records, and the committed offsets as Kafka's own
// consumer-groups tool reports them (an oracle we did not write).
import { AssignerProtocol, Kafka, logLevel, type Admin, type IHeaders } from "kafkajs";
import { kafkaBrokers, runToolOk } from "./brokers";

export function testKafka(clientId = "tests", brokers = kafkaBrokers): Kafka {
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING });
}

/** Deletes `topic` and waits (up to 60 s) until Kafka no longer lists it. */
export async function deleteTopic(topic: string, brokers = kafkaBrokers): Promise<void> {
  const admin = testKafka("tests", brokers).admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [topic] });
    const until = Date.now() + 60_000;
    while ((await admin.listTopics()).includes(topic)) {
      if (Date.now() > until) throw new Error(`Kafka still lists ${topic} 60 s after deleting it`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

/** The TopicId column of bin/kafka-topics.sh --describe. */
export async function toolTopicId(
  topic: string,
  server = kafkaBrokers[0] ?? "",
  env?: NodeJS.ProcessEnv,
): Promise<string> {
  const r = await runToolOk(
    "kafka-tool",
    ["topics", "--bootstrap-server", server, "--describe", "--topic", topic],
    { env },
  );
  const m = /TopicId: (\S+)/.exec(r.stdout);
  if (!m?.[1]) throw new Error(`no TopicId in ${r.stdout}`);
  return m[1];
}

/**
 * Commits `offset` of one partition for `groupId` with `metadata`, as a member of the group would (a
 * kafkajs consumer joins it, commits and leaves): what a member still at an old position writes.
 */
export async function commitAsMember(
  groupId: string,
  topic: string,
  partition: number,
  offset: string,
  metadata: string | null,
): Promise<void> {
  const consumer = testKafka("tests-committer").consumer({ groupId });
  await consumer.connect();
  try {
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.subscribe({ topics: [topic] });
    await consumer.run({ autoCommit: false, eachMessage: () => Promise.resolve() });
    await joined;
    await consumer.commitOffsets([{ topic, partition, offset, metadata }]);
  } finally {
    await consumer.disconnect();
  }
}

/**
 * Creates a topic that keeps its records: tests write records with event times years in the past, which
 * Kafka's time retention (7 days) deletes at its next check (every 5 minutes), in the middle of a test.
 */
export async function createTopic(topic: string, numPartitions = 1, brokers = kafkaBrokers): Promise<void> {
  const admin = testKafka("tests", brokers).admin();
  await admin.connect();
  try {
    try {
      await admin.createTopics({
        topics: [{ topic, numPartitions, configEntries: [{ name: "retention.ms", value: "-1" }] }],
        waitForLeaders: true,
      });
    } catch (err) {
      // the name of a topic just deleted: Kafka may answer for the old one while it creates the new one
      if ((err as { type?: string }).type !== "UNKNOWN_TOPIC_OR_PARTITION") throw err;
      const until = Date.now() + 30_000;
      for (;;) {
        const meta = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => undefined);
        const partitions = meta?.topics[0]?.partitions ?? [];
        if (partitions.length === numPartitions && partitions.every((p) => p.leader >= 0)) break;
        if (Date.now() > until) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await admin.disconnect();
  }
}

export interface TestRecord {
  key?: string | Buffer | null;
  value: string | Buffer | null;
  partition?: number;
  headers?: IHeaders;
  timestamp?: string;
}

export async function produce(
  topic: string,
  records: TestRecord[],
  chunk = 500,
  brokers = kafkaBrokers,
): Promise<void> {
  const producer = testKafka("tests", brokers).producer();
  await producer.connect();
  try {
    for (let i = 0; i < records.length; i += chunk) {
      await producer.send({ topic, messages: records.slice(i, i + chunk) });
    }
  } finally {
    await producer.disconnect();
  }
}

/** Committed offset per partition of `group` on `topic`, read with kafka-consumer-groups (-1 when none). */
export async function committedOffsets(
  group: string,
  topic: string,
  bootstrap = kafkaBrokers[0] ?? "",
): Promise<Map<number, { committed: number; logEnd: number }>> {
  const r = await runToolOk("kafka-tool", [
    "consumer-groups",
    "--bootstrap-server",
    bootstrap,
    "--describe",
    "--group",
    group,
  ]);
  const out = new Map<number, { committed: number; logEnd: number }>();
  for (const line of r.stdout.split("\n")) {
    const cols = line.trim().split(/\s+/);
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    if (cols.length >= 5 && cols[1] === topic && /^\d+$/.test(cols[2] ?? "")) {
      const committed = cols[3] === "-" ? -1 : Number(cols[3]);
      out.set(Number(cols[2]), { committed, logEnd: Number(cols[4]) });
    }
  }
  return out;
}

/** A group's committed offsets on a topic, through a connected kafkajs admin client (fast, for polling). */
export async function groupOffsets(
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<{ committed: number; settled: boolean }> {
  const [ends, groups] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  const byPartition = new Map(groups[0]?.partitions.map((p) => [p.partition, Number(p.offset)]) ?? []);
  return {
    /** Records committed over all partitions (a partition with no commit counts 0). */
    committed: [...byPartition.values()].reduce((a, b) => a + Math.max(0, b), 0),
    /** Every partition committed up to its log end. */
    settled: ends.every((e) => byPartition.get(e.partition) === Number(e.high)),
  };
}

/** Members of a Stable group, and how many of them hold partitions (both 0 while it rebalances). */
export async function groupMembers(
  admin: Admin,
  groupId: string,
): Promise<{ members: number; withPartitions: number }> {
  const { groups } = await admin.describeGroups([groupId]);
  const members = groups[0]?.state === "Stable" ? groups[0].members : [];
  return {
    members: members.length,
    withPartitions: members.filter(
      (m) =>
        Object.keys(AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment ?? {}).length >
        0,
    ).length,
  };
}

/** The first `maxMessages` records of `topic` as Kafka's console consumer prints them, headers included. */
export async function consoleConsume(
  topic: string,
  maxMessages: number,
  bootstrap = kafkaBrokers[0] ?? "",
): Promise<string> {
  const r = await runToolOk("kafka-tool", [
    "console-consumer",
    "--bootstrap-server",
    bootstrap,
    "--topic",
    topic,
    "--from-beginning",
    "--max-messages",
    String(maxMessages),
    "--property",
    "print.headers=true",
  ]);
  return r.stdout;
}

/**
 * The records of `topic` as Kafka's own console consumer reads them from the beginning (the independent
 * reader): timestamp, partition, headers ("name:value" joined by ",", or "NO_HEADERS"), key and value of
 * each, `maxMessages` of them (it fails when fewer come). Keys and values are printed as text ("null" for
 * none).
 */
export async function consoleRecords(
  topic: string,
  maxMessages: number,
  bootstrap = kafkaBrokers[0] ?? "",
): Promise<{ key: string; value: string; timestamp: number; partition: number; headers: string }[]> {
  const r = await runToolOk("kafka-tool", [
    "console-consumer",
    "--bootstrap-server",
    bootstrap,
    "--topic",
    topic,
    "--from-beginning",
    "--max-messages",
    String(maxMessages),
    "--property",
    "print.timestamp=true",
    "--property",
    "print.partition=true",
    "--property",
    "print.headers=true",
    "--property",
    "print.key=true",
  ]);
  // CreateTime:<ms> TAB Partition:<n> TAB headers TAB key TAB value
  return r.stdout
    .split("\n")
    .filter((line) => /^(CreateTime|LogAppendTime):/.test(line))
    .map((line) => {
      const [time = "", partition = "", headers = "", key = "", ...value] = line.split("\t");
      return {
        key,
        value: value.join("\t"),
        timestamp: Number(time.slice(time.indexOf(":") + 1)),
        partition: Number(partition.slice(partition.indexOf(":") + 1)),
        headers,
      };
    });
}
