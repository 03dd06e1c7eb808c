// The public shapes of the Pulsar client library: what the nodes (and any other user) see.
// The builtin client (client.ts) and the optional pulsar-client adapter (engine.ts) both speak them.

/** How the client proves who it is. Factories live in auth.ts. */
export interface AuthProvider {
  /** The auth_method_name sent in CONNECT ("token", "tls", or "" for none). */
  readonly methodName: string;
  /** Auth data for CONNECT and for each AUTH_CHALLENGE (may refresh, e.g. OAuth2). */
  getAuthData(): Promise<Buffer>;
  /** Releases timers or connections the provider holds. */
  close?(): void;
}

/** TLS settings for pulsar+ssl:// (PEM text or buffers). */
export interface TlsOptions {
  /** Trusted CA certificates; when absent, Node's default trust store. */
  trustCertsPem?: string | Buffer;
  /** Accept any certificate (tests only). Default false. */
  allowInsecureConnection?: boolean;
  /** Check that the certificate names the host. Default true. */
  verifyHostname?: boolean;
  /** Client certificate and key for mTLS / TLS authentication. */
  certPem?: string | Buffer;
  keyPem?: string | Buffer;
  keyPassphrase?: string;
}

export interface ClientOptions {
  /** pulsar://host:port[,host:port] or pulsar+ssl://... */
  serviceUrl: string;
  auth?: AuthProvider;
  tls?: TlsOptions;
  /** Timeout of each request (lookup, producer creation, ...). Default 30000. */
  operationTimeoutMs?: number;
  /** Timeout of the TCP/TLS connect plus CONNECT/CONNECTED. Default 10000. */
  connectionTimeoutMs?: number;
  /** Keepalive: a PING after this much silence; the connection is dropped if no PONG follows. Default 30000. */
  keepAliveIntervalMs?: number;
  /** Reconnect back-off. Defaults 100 ms doubling to 30000 ms, jittered. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * Bytes of messages sent and not yet acknowledged, over all the client's producers (as the Java client's
   * memoryLimitBytes): past it a send waits for room (or is refused without blockIfQueueFull). Default
   * 64 MiB; 0: no limit.
   */
  memoryLimitBytes?: number;
  /** Diagnostics hook; never receives secrets. */
  log?: (level: "debug" | "info" | "warn" | "error", message: string) => void;
}

export type CompressionType = "none" | "lz4" | "zlib" | "zstd" | "snappy";
export type HashingScheme = "java-string" | "murmur3";
/**
 * Partitioned topics: keyed messages go to hash(key) % partitions (hashingScheme) in every mode but
 * "custom", where the router decides for every message; keyless ones round-robin, to one partition, by the
 * custom router, or with "key-or-sequence" to sequenceId % partitions. "key-or-sequence" is the mode for
 * effectively-once: a message keeps its partition on every try, and a key keeps its partition (order per
 * key) whatever the sequence ids; a keyless message without sequenceId is refused (ConfigError).
 */
export type RoutingMode = "round-robin" | "single-partition" | "custom" | "key-or-sequence";

/**
 * A created producer's link to its broker: "reconnecting" (with the last attempt's error) while the connection
 * is down or the broker refuses to take the producer back, "failed" once it stopped for good (fenced, topic
 * terminated), "closed" after close().
 */
export type ProducerState =
  | { state: "connected" }
  | { state: "reconnecting"; reason: Error }
  | { state: "failed"; reason: Error }
  | { state: "closed" };

/**
 * A schema the producer declares (Pulsar's schema registry checks it against the topic's and gives it a
 * version, which every message then carries). AVRO and JSON: `definition` is an Avro schema in JSON text
 * (the body is Avro binary, resp. JSON text); PROTOBUF: Pulsar's Avro-like description; STRING: "".
 */
export interface ProducerSchema {
  type: "AVRO" | "JSON" | "PROTOBUF" | "STRING";
  definition: string;
  /** Default "". */
  name?: string;
  properties?: Record<string, string>;
}

export interface ProducerOptions {
  /** Fully qualified (persistent://tenant/ns/topic) or short ("my-topic" = persistent://public/default/my-topic). */
  topic: string;
  /** A stable name (required for deduplication). When absent, the broker assigns one. */
  producerName?: string;
  /**
   * On a partitioned topic, each partition's producer is named `<producerName>-<partition count>p`: a topic
   * given more partitions routes keys anew, so the deduplication sequences kept under the old count must
   * not judge the messages routed by the new one (a message never stored would be dropped as a duplicate
   * of another key's higher id on its new partition). The count is then frozen for the producer's life
   * (partitionsUpdateIntervalMs is not used). Default false (the Java client's naming).
   */
  nameCarriesPartitionCount?: boolean;
  /** Batching. Default true, 1000 messages, 128 KiB, 10 ms. */
  batchingEnabled?: boolean;
  batchingMaxMessages?: number;
  batchingMaxBytes?: number;
  batchingMaxPublishDelayMs?: number;
  /** Default "none". */
  compression?: CompressionType;
  /**
   * Partitioned topics: how messages without a key choose a partition (with "custom", every message).
   * Default "round-robin"; "key-or-sequence" for explicit sequence ids (effectively-once), see RoutingMode.
   */
  routingMode?: RoutingMode;
  /** routingMode "custom": returns the partition index for a message. */
  messageRouter?: (message: OutgoingMessage, numPartitions: number) => number;
  /** Keyed messages go to hash(key) % partitions. Default "java-string" (as the Java client). */
  hashingScheme?: HashingScheme;
  /** Messages waiting for a receipt (per partition producer). Default 1000. */
  maxPendingMessages?: number;
  /** When the pending queue is full: wait for room (default) or fail at once with ProducerQueueFullError. */
  blockIfQueueFull?: boolean;
  /** A send fails with TimeoutError when no receipt came after this long (0 = never). Default 30000. */
  sendTimeoutMs?: number;
  /** Properties of the producer itself (sent in PRODUCER). */
  properties?: Record<string, string>;
  /** The schema its messages are written with; none: raw bytes. */
  schema?: ProducerSchema;
  /**
   * Partitioned topics: how often to ask the broker for the partition count, to start producing to
   * partitions added since (as the Java client's autoUpdatePartitions). 0 = never. Default 60000.
   */
  partitionsUpdateIntervalMs?: number;
  /** Told each change of the producer's state after createProducer resolved (connected at first). */
  onStateChange?: (state: ProducerState) => void;
}

export interface OutgoingMessage {
  payload: Buffer;
  /** Partition key; a Buffer key is sent base64 with partition_key_b64_encoded. */
  key?: string | Buffer;
  orderingKey?: Buffer;
  properties?: Record<string, string>;
  /** Milliseconds since the epoch. */
  eventTime?: number;
  /** Delayed delivery (absolute, ms since the epoch) or relative. Such messages are never batched. */
  deliverAt?: number;
  deliverAfterMs?: number;
  /** Explicit sequence id (effectively-once). When set, every message of the producer must carry one. */
  sequenceId?: number;
  /**
   * Lower sequence ids this message also stands for (one message merging several records, published under
   * the highest): once it is stored, a duplicate receipt for any of them proves it stored too. Never sent.
   */
  covers?: readonly number[];
  /**
   * A message with no value (a Kafka tombstone): sent with MessageMetadata.null_value set, so readers
   * (the Java client's hasValue/getValue) see no value rather than an empty one. The payload must be empty.
   */
  nullValue?: boolean;
}

export interface MessageId {
  ledgerId: number;
  entryId: number;
  partition: number;
  batchIndex: number;
}

export interface SendReceipt {
  messageId: MessageId;
  sequenceId: number;
  /** The partition topic the message went to. */
  topic: string;
  producerName: string;
  /** True when the broker reported the message as a duplicate (deduplication), so it was not stored again. */
  duplicate: boolean;
  /**
   * For a duplicate: whether this producer can prove the broker stored that sequence id, per partition: it
   * had it when the producer first connected (stored before it existed), or it was stored since: a receipt,
   * or a write of it reached the broker while it had no higher id (known from the order in which the broker
   * takes a connection's frames, and its last id at the next connect). False: it may never have been stored,
   * e.g. a higher id was stored first, and the broker drops every lower one, however often it is tried.
   * False when not a duplicate.
   */
  duplicateProven: boolean;
}

export interface Producer {
  readonly topic: string;
  readonly producerName: string;
  /**
   * The highest sequence id the broker stored from a producer of this name before this one started
   * (-1 when none). With several partitions: the lowest over the partitions is not meaningful,
   * so this is per partition (see lastSequenceIds).
   */
  readonly lastSequenceId: number;
  /** lastSequenceId per partition index (one entry for a non-partitioned topic). */
  readonly lastSequenceIds: readonly number[];
  send(message: OutgoingMessage): Promise<SendReceipt>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export type SubscriptionType = "exclusive" | "shared" | "failover" | "key-shared";
export type InitialPosition = "latest" | "earliest";

export interface ConsumerOptions {
  topic: string;
  subscription: string;
  subscriptionType?: SubscriptionType;
  initialPosition?: InitialPosition;
  /** Flow permits. Default 1000. */
  receiverQueueSize?: number;
  consumerName?: string;
}

export interface ReceivedMessage {
  payload: Buffer;
  key?: string;
  /** The key as bytes (decoded from base64 when the producer flagged it so). */
  keyBytes?: Buffer;
  /** The producer flagged the key as base64 of bytes (the Java client's keyBytes). */
  keyBase64?: boolean;
  orderingKey?: Buffer;
  properties: Record<string, string>;
  eventTime?: number;
  /** The producer sent no value (null_value), as opposed to an empty one. */
  nullValue: boolean;
  publishTime: number;
  producerName: string;
  sequenceId: number;
  messageId: MessageId;
  topic: string;
  redeliveryCount: number;
}

export interface Consumer {
  readonly topic: string;
  readonly subscription: string;
  /** Next message; rejects with TimeoutError after timeoutMs (when given). */
  receive(timeoutMs?: number): Promise<ReceivedMessage>;
  acknowledge(message: ReceivedMessage): Promise<void>;
  /**
   * The message failed: it is delivered again after `delayMs` (default 1 s). On Exclusive and Failover
   * subscriptions the broker redelivers every unacknowledged message of the partition then; messages the
   * application still holds are not handed out twice (see receive).
   */
  negativeAcknowledge(message: ReceivedMessage, delayMs?: number): void;
  close(): Promise<void>;
}

export interface PulsarClient {
  createProducer(options: ProducerOptions): Promise<Producer>;
  subscribe(options: ConsumerOptions): Promise<Consumer>;
  /** Number of partitions (0 for a non-partitioned topic). */
  getPartitionCount(topic: string): Promise<number>;
  /** The topics of a namespace ("tenant/namespace"), partitions by their own names. */
  getTopicsOfNamespace(namespace: string, persistent?: boolean): Promise<string[]>;
  close(): Promise<void>;
}
