// The dead-letter copy of a record kafka-in could not deliver: the record's key, value and headers as
// they came from Kafka, plus dlq.* fields saying why and where from. One writer per kafka-in, reusing one
// producer (Kafka's shared one, or a Pulsar producer opened on first use and kept until close).
import type { IHeaders } from "kafkajs";
import type { Producer as PulsarProducer } from "../pulsar/types";
import { SharedResource } from "../common/shared";
import { kafkaHeadersFromList, msgToPulsar } from "./msg-to-pulsar";
import { decodeHeaders, recordToMsg } from "./record-to-msg";
import type { DeliveryRecord } from "./delivery";

export interface DeadLetterFields {
  "dlq.error": string;
  "dlq.topic": string;
  "dlq.partition": string;
  "dlq.offset": string;
  "dlq.attempts": string;
  "dlq.group": string;
}

export function deadLetterFields(r: DeliveryRecord, reason: string, groupId: string): DeadLetterFields {
  return {
    "dlq.error": reason,
    "dlq.topic": r.topic,
    "dlq.partition": String(r.partition),
    "dlq.offset": r.message.offset,
    "dlq.attempts": String(r.attempt),
    "dlq.group": groupId,
  };
}

export interface KafkaDeadLetterSink {
  send(record: {
    topic: string;
    messages: { key: Buffer | null; value: Buffer | null; headers: IHeaders }[];
  }): Promise<unknown>;
}

/**
 * The Kafka dead-letter copy: the record's own headers (repeated ones kept; null values, which kafkajs
 * cannot write, as the kafka.headers list), then the dlq.* fields.
 */
export async function writeKafkaDeadLetter(
  sink: KafkaDeadLetterSink,
  topic: string,
  r: DeliveryRecord,
  fields: DeadLetterFields,
): Promise<void> {
  const headers: IHeaders = kafkaHeadersFromList(decodeHeaders(r.message.headers, r.message).headerList, {
    ...fields,
  });
  await sink.send({ topic, messages: [{ key: r.message.key, value: r.message.value, headers }] });
}

/**
 * A Pulsar dead-letter writer: the copy is mapped exactly as pulsar-out maps a kafka-in msg with headers
 * and provenance (so binary headers, repeated keys and tombstones read back the same way), with the
 * dlq.* fields as properties. The producer is opened on first use and reopened after a failure to open
 * (a SharedResource with one user).
 */
export class PulsarDeadLetterWriter {
  private readonly producer: SharedResource<PulsarProducer>;

  constructor(
    open: () => Promise<PulsarProducer>,
    private readonly groupId: string,
  ) {
    this.producer = new SharedResource(open, (p) => p.close());
  }

  async write(r: DeliveryRecord, fields: DeadLetterFields): Promise<void> {
    const msg = recordToMsg(
      r.message,
      { topic: r.topic, partition: r.partition, groupId: this.groupId },
      { value: "buffer", key: "auto" },
    );
    const out = msgToPulsar(
      { ...msg, properties: { ...fields } },
      { mapHeaders: true, provenanceProperties: true },
    );
    await (await this.producer.acquire("dead-letter")).send(out);
  }

  close(): Promise<void> {
    return this.producer.shutdown();
  }
}
