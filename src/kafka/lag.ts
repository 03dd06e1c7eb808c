// Whether a consumer group is behind on a partition: Kafka's end offset above the group's commit. The window
// node asks it before an idle close (a partition whose records are still on their way is not quiet).
import type { Kafka } from "kafkajs";

/**
 * Whether `groupId` has not committed `partition` of `topic` up to its end: some record of it is not
 * settled yet (not fetched, or still in the flow). No commit at all counts as behind. Rejects when Kafka
 * cannot answer.
 */
export async function groupBehind(
  kafka: Kafka,
  groupId: string,
  topic: string,
  partition: number,
): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [ends, commits] = await Promise.all([
      admin.fetchTopicOffsets(topic),
      admin.fetchOffsets({ groupId, topics: [topic] }),
    ]);
    const end = ends.find((o) => o.partition === partition)?.high;
    const committed = commits
      .find((c) => c.topic === topic)
      ?.partitions.find((p) => p.partition === partition)?.offset;
    if (end === undefined || committed === undefined || committed.startsWith("-")) return true;
    return BigInt(committed) < BigInt(end);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
