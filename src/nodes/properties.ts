// The property contract of the node types: each property the editor stores in the flow, with its
// default. nodes/*.html must declare the same defaults (a test compares them); the runtime coerces the
// stored values with these defaults (coerce.ts). Secrets are never here: they are credentials.

export const KAFKA_CLUSTER_DEFAULTS = {
  name: "",
  /** Comma-separated host:port list; ${ENV} substitution as in Node-RED. */
  brokers: "127.0.0.1:9092",
  clientId: "node-red",
  /** Use TLS to the brokers. */
  tls: false,
  /** Optional id of a core tls-config node (CA, client cert/key); PEM credentials are used when empty. */
  tlsConfig: "",
  /** Verify the broker certificate (when no tls-config node decides it). */
  tlsRejectUnauthorized: true,
  /** none | plain | scram-sha-256 | scram-sha-512 | oauthbearer */
  saslMechanism: "none",
  /** OAUTHBEARER client credentials: token endpoint and optional scope. */
  oauthTokenUrl: "",
  oauthScope: "",
  connectionTimeoutMs: 10000,
  requestTimeoutMs: 30000,
} as const;

/** Credentials of kafka-cluster: username (text), password, oauthClientId (text), oauthClientSecret, tlsCa (text), tlsCert (text), tlsKey, tlsPassphrase. */
export const KAFKA_CLUSTER_CREDENTIALS = {
  username: "text",
  password: "password",
  oauthClientId: "text",
  oauthClientSecret: "password",
  tlsCa: "text",
  tlsCert: "text",
  tlsKey: "password",
  tlsPassphrase: "password",
} as const;

export const SCHEMA_REGISTRY_DEFAULTS = {
  name: "",
  /** The Confluent-compatible API's base URL (Apicurio: .../apis/ccompat/v7); ${ENV} substitution. */
  url: "http://127.0.0.1:8081",
  /** none | basic | bearer */
  auth: "none",
  /** Optional id of a core tls-config node for an https URL (CA, client certificate, verification). */
  tlsConfig: "",
  /** Per request to the registry. */
  timeoutMs: 10000,
  /** Schemas kept decoded (the oldest loaded go first). */
  cacheSize: 1000,
} as const;

/** Credentials of schema-registry: username (text), password (basic auth), token (bearer auth). */
export const SCHEMA_REGISTRY_CREDENTIALS = {
  username: "text",
  password: "password",
  token: "password",
} as const;

export const KAFKA_IN_DEFAULTS = {
  name: "",
  cluster: "",
  /** Comma-separated topic names, or one /regular expression/. */
  topics: "",
  /** Required; the editor proposes a stable one. */
  groupId: "",
  /** Where a new group starts: latest | earliest. */
  startFrom: "latest",
  /** auto | string | json | buffer | registry (Avro, Protobuf, JSON Schema through `registry`) */
  valueFormat: "auto",
  /** auto | string | buffer | registry */
  keyFormat: "auto",
  /** schema-registry id, when a format is registry. */
  registry: "",
  /** settled (at-least-once) | auto (at-most-once) */
  commitMode: "settled",
  /** Records emitted and not yet settled, per node; partitions pause above it. */
  maxInFlight: 2000,
  /** retry | dead-letter */
  failurePolicy: "retry",
  /**
   * Tries of a record whose failure a retry may fix; then it goes to the dead-letter topic, or, under the
   * retry policy, its partition stops there (tried again once a minute). 0 = try without end.
   */
  maxAttempts: 5,
  retryBackoffMs: 1000,
  /** A record the flow has not settled this long after it was emitted fails (names the holding nodes); 0 = never. */
  settleTimeoutMs: 300000,
  /** kafka | pulsar */
  deadLetterTarget: "kafka",
  deadLetterTopic: "",
  /** pulsar-cluster id, when deadLetterTarget is pulsar. */
  deadLetterPulsarCluster: "",
  /** Emit one msg carrying an array of records. */
  batchOutput: false,
  batchSize: 100,
} as const;

export const PULSAR_CLUSTER_DEFAULTS = {
  name: "",
  serviceUrl: "pulsar://127.0.0.1:6650",
  /** none | token | oauth2 | tls */
  authMethod: "none",
  oauthIssuerUrl: "",
  oauthAudience: "",
  oauthScope: "",
  /** Optional id of a core tls-config node; PEM credentials are used when empty. */
  tlsConfig: "",
  tlsAllowInsecure: false,
  tlsVerifyHostname: true,
  /** builtin | pulsar-client */
  engine: "builtin",
  /** Optional http(s) URL of the admin API; lets effectively-once check that deduplication is on. */
  adminUrl: "",
  operationTimeoutMs: 30000,
  connectionTimeoutMs: 10000,
  /** Megabytes of messages sent and not acknowledged yet, over all producers (0: no limit). */
  memoryLimitMb: 64,
} as const;

/** Credentials of pulsar-cluster. */
export const PULSAR_CLUSTER_CREDENTIALS = {
  token: "password",
  oauthClientId: "text",
  oauthClientSecret: "password",
  tlsCa: "text",
  tlsCert: "text",
  tlsKey: "password",
} as const;

export const PULSAR_OUT_DEFAULTS = {
  name: "",
  cluster: "",
  /** A topic name, or a mustache template over msg (e.g. persistent://public/default/{{kafka.topic}}). */
  topic: "",
  /** str: the topic field (fixed or template) | msg: msg.topic */
  topicType: "str",
  batching: true,
  batchMaxMessages: 1000,
  batchMaxBytes: 131072,
  batchMaxDelayMs: 10,
  /** none | lz4 | zlib | zstd | snappy */
  compression: "none",
  /** none (the payload's bytes as they are) | avro (Avro binary) | json (JSON text), of schemaDefinition */
  schemaType: "none",
  /** node: schemaDefinition | registry: the latest version of schemaSubject in the schema-registry `registry` */
  schemaSource: "node",
  /** An Avro schema (JSON text): the Pulsar schema the producer declares, and what msg.payload must fit. */
  schemaDefinition: "",
  /** schema-registry id, when schemaSource is registry. */
  registry: "",
  /** The registry subject whose latest Avro or Protobuf schema is used (e.g. sensors-value). */
  schemaSubject: "",
  /** A Protobuf subject: the message published (its name or full name); default the file's first message. */
  schemaMessage: "",
  /** round-robin | single-partition (keyed messages are always hashed) */
  routingMode: "round-robin",
  /** java-string | murmur3 */
  hashingScheme: "java-string",
  maxPending: 1000,
  sendTimeoutMs: 30000,
  /** Kafka headers (msg.kafka.headers) become Pulsar properties. */
  mapHeaders: true,
  /** Add kafka.topic, kafka.partition, kafka.offset properties. */
  provenanceProperties: false,
  /** One producer per source partition, sequence id = Kafka offset, broker-side deduplication. */
  effectivelyOnce: false,
  /** 0 or 1: with 1, the msg is sent on after Pulsar acknowledged it, with msg.pulsar. */
  outputs: 0,
} as const;

export const KAFKA_OUT_DEFAULTS = {
  name: "",
  cluster: "",
  /** A Kafka topic, or a mustache template over the msg (topicType str); or msg.topic (topicType msg). */
  topic: "",
  topicType: "str",
  /** none | gzip | snappy | lz4 | zstd */
  compression: "none",
  /** msg.kafka.headers (a msg from kafka-in), else msg.properties (a msg from pulsar-in), as headers. */
  mapHeaders: true,
  /** Records per request at most. */
  maxBatchRecords: 1000,
  /** Bytes per request at most (keep it under the topic's max.message.bytes, 1 MiB by default). */
  maxBatchBytes: 524288,
} as const;

export const PULSAR_IN_DEFAULTS = {
  name: "",
  cluster: "",
  /** list | pattern: `topics` is a comma-separated list, or one regular expression over a namespace */
  topicMode: "list",
  /** Comma-separated topics (a partitioned topic is read on all its partitions), or the pattern. */
  topics: "",
  /** With a pattern: the namespace is listed again this often (s), for topics that came or went. */
  discoverySeconds: 60,
  subscription: "",
  /** exclusive | shared | failover | key-shared */
  subscriptionType: "exclusive",
  /** latest | earliest: where a new subscription starts */
  initialPosition: "latest",
  /** auto | string | json | buffer */
  valueFormat: "auto",
  /** Messages in the flow at most (not settled yet). */
  maxInFlight: 1000,
  /** A failed message is delivered again after this long (ms). */
  nackDelayMs: 1000,
  /** Tries before a message goes to the dead-letter topic (with one set); 0: without end. */
  maxTries: 5,
  /** Pulsar topic for messages that failed their last try; empty: they are tried without end. */
  deadLetterTopic: "",
  /** A msg the flow has not settled this long fails (ms); 0: never. */
  settleTimeoutMs: 300000,
} as const;

export const KAFKA_WINDOW_DEFAULTS = {
  name: "",
  /** The kafka-cluster that keeps the window state (the changelog topic). */
  cluster: "",
  /** Compacted topic of the window state; names its transactional ids too. Required; the editor proposes one. */
  changelogTopic: "",
  /** tumbling | hopping | sliding */
  windowType: "tumbling",
  /** time (event time, ms) | count (records of the key) */
  by: "time",
  /** Length: ms, or records. */
  size: 60000,
  /** Hopping: how far each window starts after the previous one (ms or records). */
  advance: 30000,
  /** Time windows: how long after its end a window still takes records (ms). */
  graceMs: 0,
  /** final (once, when the window closes) | current (on every update) */
  emit: "final",
  /** partition | key: whose highest event time closes windows */
  watermark: "partition",
  /** Group key, a TypedInput (msg | jsonata | str). */
  key: "key",
  keyType: "msg",
  /** Event time, a TypedInput (msg | jsonata); ms or a date string. */
  time: "kafka.timestamp",
  timeType: "msg",
  /** What the aggregations take, a TypedInput (msg | jsonata). */
  value: "payload",
  valueType: "msg",
  /** Comma-separated kind or name:kind (count, sum, min, max, mean, first, last, collect(limit)). */
  aggregations: "count",
  /** Custom reduce, JSONata: start value; step ($A the accumulator, payload the value, time); final shape. */
  reduceInit: "",
  reduceStep: "",
  reduceResult: "",
  /** Open windows at most (all keys of the node); a record that would open more fails. */
  maxOpenWindows: 100000,
  /** Close a partition's windows after this long without a record (ms); 0: never. */
  idleTimeoutMs: 0,
  /** Longest applied records wait for their checkpoint (ms). */
  checkpointMs: 200,
  /** A result the flow has not settled this long after it was sent is sent again (ms); 0: never. */
  settleTimeoutMs: 300000,
} as const;
