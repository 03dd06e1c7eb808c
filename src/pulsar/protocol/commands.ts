// Pulsar's BaseCommand and the messages a producer and a minimal consumer exchange with the broker.
// Field numbers are those of Pulsar's PulsarApi.proto; only the fields this client uses are written.
import { ProtoMessage, ProtoWriter } from "./protobuf";

export const CommandType = {
  CONNECT: 2,
  CONNECTED: 3,
  SUBSCRIBE: 4,
  PRODUCER: 5,
  SEND: 6,
  SEND_RECEIPT: 7,
  SEND_ERROR: 8,
  MESSAGE: 9,
  ACK: 10,
  FLOW: 11,
  SUCCESS: 13,
  ERROR: 14,
  CLOSE_PRODUCER: 15,
  CLOSE_CONSUMER: 16,
  PRODUCER_SUCCESS: 17,
  PING: 18,
  PONG: 19,
  REDELIVER_UNACKNOWLEDGED_MESSAGES: 20,
  PARTITIONED_METADATA: 21,
  PARTITIONED_METADATA_RESPONSE: 22,
  LOOKUP: 23,
  LOOKUP_RESPONSE: 24,
  REACHED_END_OF_TOPIC: 27,
  ACTIVE_CONSUMER_CHANGE: 31,
  GET_TOPICS_OF_NAMESPACE: 32,
  GET_TOPICS_OF_NAMESPACE_RESPONSE: 33,
  AUTH_CHALLENGE: 36,
  AUTH_RESPONSE: 37,
} as const;

/** v19: AUTH_CHALLENGE (>= v14) without TOPIC_MIGRATED (v20), which this client does not handle. */
export const PROTOCOL_VERSION = 19;
export const CLIENT_VERSION = "node-red-contrib-kafka-pulsar";

function base(type: number, field: number, fill: (w: ProtoWriter) => void): Buffer {
  const w = new ProtoWriter(128);
  w.varint(1, type);
  w.message(field, fill);
  return w.finish();
}

// ------------------------------------------------------------------ client -> broker

export function encodeConnect(o: {
  authMethodName?: string;
  authData?: Buffer;
  proxyToBrokerUrl?: string;
}): Buffer {
  return base(CommandType.CONNECT, 2, (w) => {
    w.string(1, CLIENT_VERSION);
    if (o.authData) w.bytes(3, o.authData);
    w.varint(4, PROTOCOL_VERSION);
    if (o.authMethodName) w.string(5, o.authMethodName);
    if (o.proxyToBrokerUrl) w.string(6, o.proxyToBrokerUrl);
    // FeatureFlags: supports_auth_refresh (1), supports_partial_producer (3)
    w.message(10, (f) => f.varint(1, true).varint(3, true));
  });
}

export function encodeAuthResponse(authMethodName: string, authData: Buffer): Buffer {
  return base(CommandType.AUTH_RESPONSE, 37, (w) => {
    w.string(1, CLIENT_VERSION);
    w.message(2, (a) => a.string(1, authMethodName).bytes(2, authData));
    w.varint(3, PROTOCOL_VERSION);
  });
}

export function encodePing(): Buffer {
  return base(CommandType.PING, 18, () => undefined);
}

export function encodePong(): Buffer {
  return base(CommandType.PONG, 19, () => undefined);
}

export function encodePartitionedMetadata(topic: string, requestId: number): Buffer {
  return base(CommandType.PARTITIONED_METADATA, 21, (w) => w.string(1, topic).varint(2, requestId));
}

export function encodeLookup(topic: string, requestId: number, authoritative: boolean): Buffer {
  return base(CommandType.LOOKUP, 23, (w) =>
    w.string(1, topic).varint(2, requestId).varint(3, authoritative),
  );
}

/** CommandGetTopicsOfNamespace.Mode */
export const TopicsMode = { persistent: 0, "non-persistent": 1, all: 2 } as const;

export function encodeGetTopicsOfNamespace(
  namespace: string,
  mode: keyof typeof TopicsMode,
  requestId: number,
): Buffer {
  return base(CommandType.GET_TOPICS_OF_NAMESPACE, 32, (w) =>
    w.varint(1, requestId).string(2, namespace).varint(3, TopicsMode[mode]),
  );
}

/** Schema.Type of PulsarApi.proto, for the schemas a producer can declare. */
export const SCHEMA_TYPES = { STRING: 1, JSON: 2, PROTOBUF: 3, AVRO: 4 } as const;

export function encodeProducer(o: {
  topic: string;
  producerId: number;
  requestId: number;
  producerName?: string;
  userProvidedName: boolean;
  epoch: number;
  metadata?: Record<string, string>;
  schema?: {
    type: keyof typeof SCHEMA_TYPES;
    name: string;
    data: Buffer;
    properties?: Record<string, string>;
  };
}): Buffer {
  return base(CommandType.PRODUCER, 5, (w) => {
    w.string(1, o.topic).varint(2, o.producerId).varint(3, o.requestId);
    if (o.producerName) w.string(4, o.producerName);
    for (const [k, v] of Object.entries(o.metadata ?? {})) w.keyValue(6, k, v);
    const schema = o.schema;
    if (schema)
      w.message(7, (s) => {
        s.string(1, schema.name).bytes(3, schema.data).varint(4, SCHEMA_TYPES[schema.type]);
        for (const [k, v] of Object.entries(schema.properties ?? {})) s.keyValue(5, k, v);
      });
    w.varint(8, o.epoch);
    w.varint(9, o.userProvidedName);
  });
}

export function encodeSend(o: {
  producerId: number;
  sequenceId: number;
  numMessages: number;
  highestSequenceId: number;
}): Buffer {
  return base(CommandType.SEND, 6, (w) => {
    w.varint(1, o.producerId).varint(2, o.sequenceId);
    if (o.numMessages !== 1) w.varint(3, o.numMessages);
    if (o.highestSequenceId > o.sequenceId) w.varint(6, o.highestSequenceId);
  });
}

export function encodeCloseProducer(producerId: number, requestId: number): Buffer {
  return base(CommandType.CLOSE_PRODUCER, 15, (w) => w.varint(1, producerId).varint(2, requestId));
}

export const SubType = { exclusive: 0, shared: 1, failover: 2, "key-shared": 3 } as const;

export function encodeSubscribe(o: {
  topic: string;
  subscription: string;
  subType: number;
  consumerId: number;
  requestId: number;
  consumerName?: string;
  initialPosition: "latest" | "earliest";
}): Buffer {
  return base(CommandType.SUBSCRIBE, 4, (w) => {
    w.string(1, o.topic)
      .string(2, o.subscription)
      .varint(3, o.subType)
      .varint(4, o.consumerId)
      .varint(5, o.requestId);
    if (o.consumerName) w.string(6, o.consumerName);
    w.varint(13, o.initialPosition === "earliest" ? 1 : 0);
  });
}

export function encodeFlow(consumerId: number, permits: number): Buffer {
  return base(CommandType.FLOW, 11, (w) => w.varint(1, consumerId).varint(2, permits));
}

export function encodeAck(consumerId: number, id: { ledgerId: number; entryId: number }): Buffer {
  return base(CommandType.ACK, 10, (w) => {
    w.varint(1, consumerId).varint(2, 0);
    w.message(3, (m) => m.varint(1, id.ledgerId).varint(2, id.entryId));
  });
}

/**
 * Asks the broker to deliver these unacknowledged messages again (Shared, Key_Shared); without ids, every
 * unacknowledged message of the consumer (what Exclusive and Failover subscriptions take).
 */
export function encodeRedeliver(
  consumerId: number,
  ids: readonly { ledgerId: number; entryId: number }[],
): Buffer {
  return base(CommandType.REDELIVER_UNACKNOWLEDGED_MESSAGES, 20, (w) => {
    w.varint(1, consumerId);
    for (const id of ids) w.message(2, (m) => m.varint(1, id.ledgerId).varint(2, id.entryId));
  });
}

export function encodeCloseConsumer(consumerId: number, requestId: number): Buffer {
  return base(CommandType.CLOSE_CONSUMER, 16, (w) => w.varint(1, consumerId).varint(2, requestId));
}

// ------------------------------------------------------------------ broker -> client

export interface MessageIdData {
  ledgerId: number;
  entryId: number;
  partition: number;
  batchIndex: number;
}

function messageId(m: ProtoMessage | undefined): MessageIdData {
  return {
    ledgerId: m?.num(1, -1) ?? -1,
    entryId: m?.num(2, -1) ?? -1,
    partition: m?.num(3, -1) ?? -1,
    batchIndex: m?.num(4, -1) ?? -1,
  };
}

export type Inbound =
  | {
      type: typeof CommandType.CONNECTED;
      serverVersion: string;
      protocolVersion: number;
      maxMessageSize?: number;
    }
  | { type: typeof CommandType.PING }
  | { type: typeof CommandType.PONG }
  | { type: typeof CommandType.AUTH_CHALLENGE; authMethodName?: string }
  | { type: typeof CommandType.SUCCESS; requestId: number }
  | { type: typeof CommandType.ERROR; requestId: number; error: number; message: string }
  | {
      type: typeof CommandType.PARTITIONED_METADATA_RESPONSE;
      requestId: number;
      partitions: number;
      failed: boolean;
      error: number;
      message: string;
    }
  | {
      type: typeof CommandType.LOOKUP_RESPONSE;
      requestId: number;
      brokerServiceUrl?: string;
      brokerServiceUrlTls?: string;
      response: "redirect" | "connect" | "failed";
      authoritative: boolean;
      proxyThroughServiceUrl: boolean;
      error: number;
      message: string;
    }
  | {
      type: typeof CommandType.GET_TOPICS_OF_NAMESPACE_RESPONSE;
      requestId: number;
      topics: string[];
    }
  | {
      type: typeof CommandType.PRODUCER_SUCCESS;
      requestId: number;
      producerName: string;
      lastSequenceId: number;
      /** The version the broker gave the producer's schema (only with a schema). */
      schemaVersion?: Buffer;
      producerReady: boolean;
    }
  | {
      type: typeof CommandType.SEND_RECEIPT;
      producerId: number;
      sequenceId: number;
      highestSequenceId: number;
      messageId: MessageIdData;
    }
  | {
      type: typeof CommandType.SEND_ERROR;
      producerId: number;
      sequenceId: number;
      error: number;
      message: string;
    }
  | { type: typeof CommandType.CLOSE_PRODUCER; producerId: number }
  | { type: typeof CommandType.CLOSE_CONSUMER; consumerId: number }
  | {
      type: typeof CommandType.MESSAGE;
      consumerId: number;
      messageId: MessageIdData;
      redeliveryCount: number;
    }
  | { type: typeof CommandType.REACHED_END_OF_TOPIC | typeof CommandType.ACTIVE_CONSUMER_CHANGE }
  | { type: "unknown"; code: number };

const LOOKUP_TYPES = ["redirect", "connect", "failed"] as const;

export function decodeCommand(data: Buffer): Inbound {
  const cmd = new ProtoMessage(data);
  const type = cmd.num(1);
  const body = cmd.message(type) ?? new ProtoMessage(Buffer.alloc(0));
  switch (type) {
    case CommandType.CONNECTED:
      return {
        type,
        serverVersion: body.str(1) ?? "",
        protocolVersion: body.num(2),
        maxMessageSize: body.has(3) ? body.num(3) : undefined,
      };
    case CommandType.PING:
    case CommandType.PONG:
    case CommandType.REACHED_END_OF_TOPIC:
    case CommandType.ACTIVE_CONSUMER_CHANGE:
      return { type };
    case CommandType.AUTH_CHALLENGE:
      return { type, authMethodName: body.message(2)?.str(1) };
    case CommandType.SUCCESS:
      return { type, requestId: body.num(1) };
    case CommandType.ERROR:
      return { type, requestId: body.num(1), error: body.num(2), message: body.str(3) ?? "" };
    case CommandType.PARTITIONED_METADATA_RESPONSE:
      return {
        type,
        partitions: body.num(1),
        requestId: body.num(2),
        failed: body.num(3) === 1,
        error: body.num(4),
        message: body.str(5) ?? "",
      };
    case CommandType.LOOKUP_RESPONSE:
      return {
        type,
        brokerServiceUrl: body.str(1),
        brokerServiceUrlTls: body.str(2),
        response: LOOKUP_TYPES[body.num(3, 2)] ?? "failed",
        requestId: body.num(4),
        authoritative: body.bool(5),
        error: body.num(6),
        message: body.str(7) ?? "",
        proxyThroughServiceUrl: body.bool(8),
      };
    case CommandType.GET_TOPICS_OF_NAMESPACE_RESPONSE:
      return { type, requestId: body.num(1), topics: body.strs(2) };
    case CommandType.PRODUCER_SUCCESS:
      return {
        type,
        requestId: body.num(1),
        producerName: body.str(2) ?? "",
        lastSequenceId: body.num(3, -1),
        schemaVersion: body.bytes(4),
        producerReady: body.bool(6, true),
      };
    case CommandType.SEND_RECEIPT:
      return {
        type,
        producerId: body.num(1),
        sequenceId: body.num(2),
        messageId: messageId(body.message(3)),
        highestSequenceId: body.num(4, -1),
      };
    case CommandType.SEND_ERROR:
      return {
        type,
        producerId: body.num(1),
        sequenceId: body.num(2),
        error: body.num(3),
        message: body.str(4) ?? "",
      };
    case CommandType.CLOSE_PRODUCER:
      return { type, producerId: body.num(1) };
    case CommandType.CLOSE_CONSUMER:
      return { type, consumerId: body.num(1) };
    case CommandType.MESSAGE:
      return {
        type,
        consumerId: body.num(1),
        messageId: messageId(body.message(2)),
        redeliveryCount: body.num(3), // CommandMessage.redelivery_count (4 is ack_set)
      };
    default:
      return { type: "unknown", code: type };
  }
}
