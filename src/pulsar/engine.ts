// The engine seam (DESIGN §6): the nodes talk to PulsarClient; "builtin" is this library's own client,
// "pulsar-client" adapts the official native npm package when it is installed. That package is loaded
// only when selected, never at module load, so its absence costs nothing.
import { createClient } from "./client";
import { ConfigError, PulsarError } from "./errors";
import type {
  ClientOptions,
  Consumer,
  ConsumerOptions,
  MessageId,
  OutgoingMessage,
  Producer,
  ProducerOptions,
  PulsarClient,
  ReceivedMessage,
  SendReceipt,
} from "./types";

export type EngineName = "builtin" | "pulsar-client";

// The part of the official package's API the adapter uses (pulsar-client 1.x).
interface NativeMessageId {
  toString(): string;
}
interface NativeMessage {
  getData(): Buffer;
  getPartitionKey(): string;
  getProperties(): Record<string, string>;
  getEventTimestamp(): number;
  getPublishTimestamp(): number;
  getMessageId(): NativeMessageId;
  getTopicName(): string;
  getRedeliveryCount(): number;
}
interface NativeProducer {
  send(m: Record<string, unknown>): Promise<NativeMessageId>;
  flush(): Promise<null>;
  close(): Promise<null>;
  getProducerName(): string;
  getTopic(): string;
}
interface NativeConsumer {
  receive(timeoutMs?: number): Promise<NativeMessage>;
  acknowledge(m: NativeMessage): Promise<null>;
  negativeAcknowledge(m: NativeMessage): void;
  close(): Promise<null>;
}
interface NativeClient {
  createProducer(c: Record<string, unknown>): Promise<NativeProducer>;
  subscribe(c: Record<string, unknown>): Promise<NativeConsumer>;
  getPartitionsForTopic?(topic: string): Promise<string[]>;
  close(): Promise<null>;
}
export interface NativeModule {
  Client: new (c: Record<string, unknown>) => NativeClient;
  AuthenticationToken: new (p: { token: string | (() => string | Promise<string>) }) => unknown;
  AuthenticationTls?: new (p: { certificatePath: string; privateKeyPath: string }) => unknown;
}

/** Loads the official module; replaceable in tests. */
export type ModuleLoader = () => NativeModule;

const defaultLoader: ModuleLoader = () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require("pulsar-client") as NativeModule;
};

export async function createEngine(
  name: EngineName,
  options: ClientOptions,
  load: ModuleLoader = defaultLoader,
): Promise<PulsarClient> {
  if (name === "builtin") return createClient(options);
  if (name !== "pulsar-client")
    throw new ConfigError(`unknown Pulsar engine "${String(name)}" (builtin or pulsar-client)`);
  let mod: NativeModule;
  try {
    mod = load();
  } catch (err) {
    throw new ConfigError(
      "the pulsar-client engine is selected but the pulsar-client package is not installed " +
        "(it is a native addon: run `npm install pulsar-client` in the Node-RED user directory on a platform it supports, " +
        `then restart Node-RED; or choose the builtin engine). Cause: ${(err as Error).message}`,
    );
  }
  return new NativeAdapter(mod, options, await nativeAuth(mod, options));
}

async function nativeAuth(mod: NativeModule, o: ClientOptions): Promise<unknown> {
  if (!o.auth || o.auth.methodName === "") return undefined;
  if (o.auth.methodName === "token") {
    const auth = o.auth;
    // the token is fetched each time the native client asks, so OAuth2 refresh keeps working
    await auth.getAuthData();
    return new mod.AuthenticationToken({ token: async () => (await auth.getAuthData()).toString("utf8") });
  }
  throw new ConfigError(
    `the pulsar-client engine supports token authentication here, not "${o.auth.methodName}"; use the builtin engine`,
  );
}

function parseNativeId(id: NativeMessageId, partition: number): MessageId {
  // pulsar-client prints ids as "(ledger,entry,partition,batch)"
  const nums = /(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)/.exec(id.toString());
  return nums
    ? {
        ledgerId: Number(nums[1]),
        entryId: Number(nums[2]),
        partition: Number(nums[3]),
        batchIndex: Number(nums[4]),
      }
    : { ledgerId: -1, entryId: -1, partition, batchIndex: -1 };
}

function wrapError(err: unknown): PulsarError {
  if (err instanceof PulsarError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PulsarError(
    `pulsar-client: ${message}`,
    "NativeError",
    /timeout|disconnect|not ready/i.test(message),
  );
}

class NativeAdapter implements PulsarClient {
  private readonly client: NativeClient;

  constructor(
    mod: NativeModule,
    private readonly o: ClientOptions,
    authentication: unknown,
  ) {
    this.client = new mod.Client({
      serviceUrl: o.serviceUrl,
      authentication,
      operationTimeoutSeconds: Math.ceil((o.operationTimeoutMs ?? 30_000) / 1000),
      connectionTimeoutMs: o.connectionTimeoutMs ?? 10_000,
      tlsAllowInsecureConnection: o.tls?.allowInsecureConnection ?? false,
      tlsValidateHostname: o.tls?.verifyHostname ?? true,
    });
  }

  async getPartitionCount(topic: string): Promise<number> {
    if (!this.client.getPartitionsForTopic) return 0;
    const parts = await this.client
      .getPartitionsForTopic(topic)
      .catch((e: unknown) => Promise.reject(wrapError(e)));
    return parts.length > 1 || (parts[0] ?? "").includes("-partition-") ? parts.length : 0;
  }

  getTopicsOfNamespace(): Promise<string[]> {
    return Promise.reject(
      new PulsarError("topic patterns are not supported with the native engine", "NotSupported", false),
    );
  }

  async createProducer(p: ProducerOptions): Promise<Producer> {
    const native = await this.client
      .createProducer({
        topic: p.topic,
        producerName: p.producerName,
        batchingEnabled: p.batchingEnabled ?? true,
        batchingMaxMessages: p.batchingMaxMessages ?? 1000,
        batchingMaxPublishDelayMs: p.batchingMaxPublishDelayMs ?? 10,
        compressionType: { none: "None", lz4: "LZ4", zlib: "Zlib", zstd: "ZSTD", snappy: "SNAPPY" }[
          p.compression ?? "none"
        ],
        messageRoutingMode:
          p.routingMode === "single-partition" ? "UseSinglePartition" : "RoundRobinDistribution",
        // The native default (BoostHash) cannot be reproduced elsewhere: always say which hash.
        hashingScheme: p.hashingScheme === "murmur3" ? "Murmur3_32Hash" : "JavaStringHash",
        maxPendingMessages: p.maxPendingMessages ?? 1000,
        blockIfQueueFull: p.blockIfQueueFull ?? true,
        sendTimeoutMs: p.sendTimeoutMs ?? 30_000,
        properties: p.properties,
        // the native package's SchemaInfo
        schema: p.schema && {
          schemaType: { AVRO: "Avro", JSON: "Json", PROTOBUF: "Protobuf", STRING: "String" }[p.schema.type],
          name: p.schema.name,
          schema: p.schema.definition,
          properties: p.schema.properties,
        },
      })
      .catch((e: unknown) => Promise.reject(wrapError(e)));
    return {
      topic: native.getTopic(),
      producerName: native.getProducerName(),
      // The native client cannot tell what the broker last stored.
      lastSequenceId: -1,
      lastSequenceIds: [-1],
      async send(m: OutgoingMessage): Promise<SendReceipt> {
        const id = await native
          .send({
            data: m.payload,
            partitionKey: Buffer.isBuffer(m.key) ? m.key.toString("base64") : m.key,
            orderingKey: m.orderingKey?.toString("utf8"),
            properties: m.properties,
            eventTimestamp: m.eventTime,
            deliverAt: m.deliverAt,
            deliverAfter: m.deliverAfterMs,
            sequenceId: m.sequenceId,
          })
          .catch((e: unknown) => Promise.reject(wrapError(e)));
        const messageId = parseNativeId(id, -1);
        return {
          messageId,
          sequenceId: m.sequenceId ?? -1,
          topic: native.getTopic(),
          producerName: native.getProducerName(),
          duplicate: false,
          duplicateProven: false,
        };
      },
      async flush() {
        await native.flush();
      },
      async close() {
        await native.close();
      },
    };
  }

  async subscribe(c: ConsumerOptions): Promise<Consumer> {
    const native = await this.client
      .subscribe({
        topic: c.topic,
        subscription: c.subscription,
        subscriptionType: {
          exclusive: "Exclusive",
          shared: "Shared",
          failover: "Failover",
          "key-shared": "KeyShared",
        }[c.subscriptionType ?? "exclusive"],
        subscriptionInitialPosition: c.initialPosition === "earliest" ? "Earliest" : "Latest",
        receiverQueueSize: c.receiverQueueSize ?? 1000,
        consumerName: c.consumerName,
      })
      .catch((e: unknown) => Promise.reject(wrapError(e)));
    const byId = new WeakMap<ReceivedMessage, NativeMessage>();
    return {
      topic: c.topic,
      subscription: c.subscription,
      async receive(timeoutMs?: number): Promise<ReceivedMessage> {
        const m = await native.receive(timeoutMs).catch((e: unknown) => Promise.reject(wrapError(e)));
        const key = m.getPartitionKey() || undefined;
        const received: ReceivedMessage = {
          payload: m.getData(),
          key,
          keyBytes: key === undefined ? undefined : Buffer.from(key, "utf8"),
          properties: m.getProperties(),
          eventTime: m.getEventTimestamp() || undefined,
          // the native client's message API does not expose null_value
          nullValue: false,
          publishTime: m.getPublishTimestamp(),
          producerName: "",
          sequenceId: -1,
          messageId: parseNativeId(m.getMessageId(), -1),
          topic: m.getTopicName(),
          redeliveryCount: m.getRedeliveryCount(),
        };
        byId.set(received, m);
        return received;
      },
      async acknowledge(m: ReceivedMessage): Promise<void> {
        const nm = byId.get(m);
        if (nm) await native.acknowledge(nm);
      },
      negativeAcknowledge(m: ReceivedMessage): void {
        // the native consumer's own redelivery delay applies (nAckRedeliverTimeoutMs)
        const nm = byId.get(m);
        try {
          if (nm) native.negativeAcknowledge(nm);
        } catch {
          // a closed consumer: its unacknowledged messages are delivered again anyway
        }
      },
      async close() {
        await native.close();
      },
    };
  }

  async close(): Promise<void> {
    await this.client.close();
    this.o.auth?.close?.();
  }
}
