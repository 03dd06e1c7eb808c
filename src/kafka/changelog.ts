// Durable state for stateful nodes (the window node, issue 14): a compacted Kafka topic, its partition p
// holding the state of source partition p, as Kafka Streams keeps its changelogs. A checkpoint is one Kafka
// transaction, so that a crash in the middle of one leaves the previous checkpoint whole (restores read
// committed records only). Each source partition has its own transactional id: whoever opens the partition
// fences the writer that had it before (a node that lost it in a rebalance, or a process that was killed
// and whose transaction is still open), and its later writes fail instead of mixing into the new owner's.
//
// Records: key "<source topic> NUL <name>", value JSON bytes (null: the name has no state any more). An
// opening writes a marker "<source topic> NUL open" with a fresh nonce in its own transaction; the restore
// reads the partition from the beginning until it sees that marker, so it knows it has read everything
// committed before it.
import { randomUUID } from "node:crypto";
import { AssignerProtocol, type Kafka, type Producer } from "kafkajs";
import { BridgeError, ConfigurationError } from "../common/errors";

const SEP = "\u0000";
const OPEN = "open";
const ASSIGNER = "changelog-partition";

export interface ChangelogOptions {
  kafka: Kafka;
  /** The changelog topic. */
  topic: string;
  /** Names the transactional ids and restore groups (the node's id). */
  owner: string;
  /** Longest a restore may take. Default 60 s. */
  restoreTimeoutMs?: number;
}

/** What a source partition's changelog held when it was opened: the latest value per name. */
export type Restored = Map<string, Buffer>;

/** One source partition's changelog, opened by its one writer. */
export interface PartitionLog {
  readonly restored: Restored;
  /** Writes the records in one transaction (null value: the name has no state any more). */
  write(records: { name: string; value: Buffer | null }[]): Promise<void>;
  close(): Promise<void>;
}

/** The changelog topic: created compacted when missing, with at least the source topic's partitions. */
export class Changelog {
  /** The check under way or done, and the partition count it is for. */
  private ensured: { partitions: number; done: Promise<void> } | undefined;

  constructor(private readonly o: ChangelogOptions) {}

  /**
   * Creates the topic (compacted, `partitions` partitions) when it does not exist; checks it when it does.
   * Asked again with more partitions (a source topic given more, another source topic), it checks again.
   */
  ensureTopic(partitions: number): Promise<void> {
    const known = this.ensured;
    if (known && known.partitions >= partitions) return known.done;
    const done = this.create(partitions).catch((err: unknown) => {
      if (this.ensured?.done === done) this.ensured = undefined;
      throw err;
    });
    this.ensured = { partitions, done };
    return done;
  }

  private async create(partitions: number): Promise<void> {
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      const existing = await admin.fetchTopicMetadata({ topics: [] });
      const found = existing.topics.find((t) => t.name === this.o.topic);
      if (!found) {
        await admin.createTopics({
          waitForLeaders: true,
          topics: [
            {
              topic: this.o.topic,
              numPartitions: partitions,
              configEntries: [{ name: "cleanup.policy", value: "compact" }],
            },
          ],
        });
        return;
      }
      if (found.partitions.length < partitions)
        throw new ConfigurationError(
          "kafka-window.errors.changelog-partitions",
          `the changelog topic ${this.o.topic} has ${found.partitions.length} partitions, fewer than the ${partitions} of its source topic`,
        );
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /**
   * Opens source partition `partition` of `sourceTopic`: fences its previous writer, then reads what it
   * committed. The changelog's partition of the same number holds it.
   */
  async open(sourceTopic: string, partition: number): Promise<PartitionLog> {
    const producer = this.o.kafka.producer({
      transactionalId: `${this.o.owner}-${sourceTopic}-${partition}`,
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    try {
      const nonce = randomUUID();
      // the first transaction fences the previous writer (and aborts what it left open)
      await commitOne(producer, async (t) => {
        await t.send({
          topic: this.o.topic,
          messages: [{ key: `${sourceTopic}${SEP}${OPEN}`, value: nonce, partition }],
        });
      });
      const restored = await this.read(sourceTopic, partition, nonce);
      return {
        restored,
        write: (records) =>
          commitOne(producer, async (t) => {
            // in sends of at most CHUNK_BYTES: Kafka takes a request's batch for a partition only up to the
            // topic's max.message.bytes (1 MiB by default), and a checkpoint of many keys is larger
            for (const chunk of chunks(records, Buffer.byteLength(`${sourceTopic}${SEP}`)))
              await t.send({
                topic: this.o.topic,
                messages: chunk.map((r) => ({
                  key: `${sourceTopic}${SEP}${r.name}`,
                  value: r.value,
                  partition,
                })),
              });
          }).catch((err: unknown) => {
            if (!hasKafkaType(err, TOO_LARGE_TYPES) || records.length === 0) throw err;
            const biggest = records.reduce((a, b) =>
              (b.value?.length ?? 0) > (a.value?.length ?? 0) ? b : a,
            );
            throw new BridgeError(
              "kafka-window.errors.state-too-large",
              `the changelog ${this.o.topic} refused the state of ${sourceTopic} partition ${partition}: ` +
                `"${biggest.name}" is ${biggest.value?.length ?? 0} bytes, more than the topic takes ` +
                "(its max.message.bytes); bound what the windows collect, or raise that setting",
              false,
            );
          }),
        close: () => producer.disconnect(),
      };
    } catch (err) {
      await producer.disconnect().catch(() => undefined);
      throw err;
    }
  }

  /** Reads the partition from the beginning up to the opening marker `nonce` (committed records only). */
  private async read(sourceTopic: string, partition: number, nonce: string): Promise<Restored> {
    const prefix = `${sourceTopic}${SEP}`;
    const out: Restored = new Map();
    const topic = this.o.topic;
    // a group of its own whose one member is given exactly this partition
    const consumer = this.o.kafka.consumer({
      groupId: `${this.o.owner}-restore-${randomUUID()}`,
      readUncommitted: false,
      partitionAssigners: [
        () => ({
          name: ASSIGNER,
          version: 1,
          assign: ({ members }: { members: { memberId: string }[] }) =>
            Promise.resolve(
              members.map((m, i) => ({
                memberId: m.memberId,
                memberAssignment: AssignerProtocol.MemberAssignment.encode({
                  version: 1,
                  assignment: i === 0 ? { [topic]: [partition] } : {},
                  userData: Buffer.alloc(0),
                }),
              })),
            ),
          protocol({ topics }: { topics: string[] }) {
            return {
              name: ASSIGNER,
              metadata: AssignerProtocol.MemberMetadata.encode({
                version: 1,
                topics,
                userData: Buffer.alloc(0),
              }),
            };
          },
        }),
      ],
    });
    // one record of the partition; true at the opening marker
    const take = (k: Buffer | null, value: Buffer | null): boolean => {
      const key = k?.toString("utf8") ?? "";
      if (!key.startsWith(prefix)) return false;
      const name = key.slice(prefix.length);
      if (name === OPEN) return value?.toString("utf8") === nonce;
      if (value === null) out.delete(name);
      else out.set(name, value);
      return false;
    };
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new BridgeError(
                "kafka-window.errors.restore-timeout",
                `the state of ${sourceTopic} partition ${partition} was not read back from ${topic} in time`,
                true,
              ),
            ),
          this.o.restoreTimeoutMs ?? 60_000,
        );
        consumer
          .run({
            autoCommit: false,
            eachMessage: ({ message, partition: p }) => {
              if (p === partition && take(message.key, message.value)) {
                clearTimeout(timer);
                resolve();
              }
              return Promise.resolve();
            },
          })
          .catch((err: unknown) => {
            clearTimeout(timer);
            reject(err instanceof Error ? err : new Error(String(err)));
          });
      });
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
    return out;
  }
}

/** Runs `fn` in a transaction and commits it; aborts it when `fn` fails. */
async function commitOne(
  producer: Producer,
  fn: (t: Awaited<ReturnType<Producer["transaction"]>>) => Promise<void>,
): Promise<void> {
  const t = await producer.transaction();
  try {
    await fn(t);
  } catch (err) {
    await t.abort().catch(() => undefined);
    throw err;
  }
  await t.commit();
}

/** The most one send of a checkpoint carries (keys and values), well under Kafka's 1 MiB default. */
const CHUNK_BYTES = 512 * 1024;

/**
 * The records in runs of at most CHUNK_BYTES (a record larger than that alone), each counted with its key:
 * `keyPrefix` bytes (the source topic's) before its name.
 */
function chunks(
  records: { name: string; value: Buffer | null }[],
  keyPrefix: number,
): { name: string; value: Buffer | null }[][] {
  const out: { name: string; value: Buffer | null }[][] = [];
  let run: { name: string; value: Buffer | null }[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = keyPrefix + Buffer.byteLength(r.name) + (r.value?.length ?? 0) + 64;
    if (run.length > 0 && bytes + size > CHUNK_BYTES) {
      out.push(run);
      run = [];
      bytes = 0;
    }
    run.push(r);
    bytes += size;
  }
  if (run.length > 0) out.push(run);
  return out;
}

const FENCED_TYPES = new Set(["INVALID_PRODUCER_EPOCH", "PRODUCER_FENCED"]);
const TOO_LARGE_TYPES = new Set(["MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE"]);

/** Whether a write failed because another writer opened the partition since (the error or its causes say so). */
export function isFencedError(err: unknown): boolean {
  return hasKafkaType(err, FENCED_TYPES);
}

/** Whether the error, or one of its causes, is a Kafka protocol error of one of `types`. */
function hasKafkaType(err: unknown, types: ReadonlySet<string>): boolean {
  const seen = new Set<unknown>();
  const walk = (e: unknown): boolean => {
    if (!e || typeof e !== "object" || seen.has(e)) return false;
    seen.add(e);
    const o = e as { type?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown };
    if (typeof o.type === "string" && types.has(o.type)) return true;
    return (
      walk(o.cause) || walk(o.originalError) || (Array.isArray(o.errors) && o.errors.some((x) => walk(x)))
    );
  };
  return walk(err);
}
