// What a Kafka cluster and its topics are, as the cluster itself says: the cluster id and each topic's id
// (Kafka 2.8+, KIP-516). A topic id changes when the topic is deleted and recreated under the same name,
// and neither depends on how the brokers are addressed, so names derived from them (effectively-once
// producer names) stay the same across bootstrap lists and change when the data behind a name is new.
//
// kafkajs speaks Metadata only up to v6, which has the cluster id but no topic ids. This module sends
// Metadata v10-v13 itself, through a connection kafkajs opened and authenticated (TLS, SASL and timeouts
// stay kafkajs's own). kafkajs has no public way to do that, so three of its internals are used here and
// nowhere else (written against kafkajs 2.2.4; checked at run time, and test/unit/kafka-identity.test.ts
// fails when one of them changes):
// 1. the Kafka instance's own symbol "private:Kafka:createCluster", which builds a Cluster (the type
//    kafkajs's typings export) from the client's configuration;
// 2. `broker.connectionPool.send({ request, response })`, which frames a request with header v1 (api key,
//    version, correlation id, client id) and hands the response back after the correlation id;
// 3. the request's `encode()` result is read as kafkajs's Encoder is: `{ buf, buffer }`.
import type { Admin, Broker, Cluster, Kafka } from "kafkajs";

export interface KafkaIdentity {
  /** The cluster id, as `kafka-cluster.sh cluster-id` prints it. */
  clusterId: string;
  /**
   * Topic name -> topic id, as `kafka-topics.sh --describe` prints it: the UUID's 16 bytes in base64url
   * without padding (22 characters). Every requested topic is in it when `topicIdsSupported`, none
   * otherwise.
   */
  topicIds: Map<string, string>;
  /** False when the broker is older than Kafka 2.8 (no Metadata v10): the caller decides what to use. */
  topicIdsSupported: boolean;
  /** The Metadata version the answer came in (diagnostics). */
  metadataVersion: number;
}

export interface KafkaIdentityOptions {
  /** Highest Metadata version to use (13 by default); below 10 gives the identity without topic ids. */
  maxMetadataVersion?: number;
}

/** A failure to learn the identity; `type` is Kafka's error name when the broker answered with one. */
export class KafkaIdentityError extends Error {
  constructor(
    message: string,
    /** Whether trying again can help (a topic being created) or not (refused access, changed kafkajs). */
    readonly retriable: boolean,
    readonly type?: string,
    /** The topics the error is about. */
    readonly topics: string[] = [],
  ) {
    super(message);
    this.name = "KafkaIdentityError";
  }
}

const METADATA = 3;
/** Metadata v10 added topic ids; v13 (Kafka 4.0) the top-level error code. */
const TOPIC_ID_VERSIONS = { min: 10, max: 13 };

/** The cluster id and the ids of `topics`, asked of one broker of the cluster over its own connection. */
export async function kafkaIdentity(
  kafka: Kafka,
  topics: string[],
  options: KafkaIdentityOptions = {},
): Promise<KafkaIdentity> {
  const cluster = createCluster(kafka);
  try {
    await cluster.connect();
    return await askIdentity(cluster, [...new Set(topics)], options, false);
  } finally {
    // a failure to close must not hide the answer or the error
    await cluster.disconnect().catch(() => undefined);
  }
}

async function askIdentity(
  cluster: Cluster,
  names: string[],
  options: KafkaIdentityOptions,
  omitFailed: boolean,
): Promise<KafkaIdentity> {
  await cluster.refreshMetadata();
  const broker = await anyBroker(cluster);
  const range = (await broker.apiVersions())[METADATA];
  const version = Math.min(
    TOPIC_ID_VERSIONS.max,
    options.maxMetadataVersion ?? TOPIC_ID_VERSIONS.max,
    range?.maxVersion ?? 0,
  );
  if (!range || version < TOPIC_ID_VERSIONS.min || version < range.minVersion)
    return await identityWithoutTopicIds(broker, names, range?.maxVersion ?? 0);
  const response = await sendMetadata(broker, version, names);
  return identityOf(response, names, version, omitFailed);
}

/** A group's commit of one partition: the offset (-1: none) and the metadata string committed with it. */
export interface GroupCommit {
  offset: string;
  metadata: string | null;
}

/**
 * Topic ids and a group's commits asked for again and again (kafka-in watches its topics for one deleted
 * and created again) over connections kept open between the questions, closed after a failure or a
 * question left unanswered for `timeoutMs` (the next question connects afresh), and by close().
 */
export class TopicIdWatch {
  private cluster: Cluster | undefined;
  private admin: Promise<Admin> | undefined;
  private closed = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly options: KafkaIdentityOptions & { timeoutMs?: number } = {},
  ) {}

  /**
   * Each topic's id; a topic the brokers give no id for right now (it does not exist, or they refuse to
   * describe it) is left out, so that one such topic does not hide the others. Undefined when the brokers
   * have no topic ids (before Kafka 2.8).
   */
  async ids(topics: string[]): Promise<Map<string, string> | undefined> {
    if (this.closed) throw new KafkaIdentityError("the topic id watch is closed", false);
    const cluster = (this.cluster ??= createCluster(this.kafka));
    try {
      const identity = await this.within("no topic ids", async () => {
        await cluster.connect();
        return await askIdentity(cluster, [...new Set(topics)], this.options, true);
      });
      return identity.topicIdsSupported ? identity.topicIds : undefined;
    } catch (err) {
      // asked again on a new connection next time; the old one closed without waiting (it may hang)
      if (this.cluster === cluster) this.cluster = undefined;
      void cluster.disconnect().catch(() => undefined);
      throw err;
    }
  }

  /** The commits of `groupId` for every partition of `topics`: topic -> partition -> commit. */
  async commits(groupId: string, topics: string[]): Promise<Map<string, Map<number, GroupCommit>>> {
    if (this.closed) throw new KafkaIdentityError("the topic id watch is closed", false);
    const admin = (this.admin ??= (async () => {
      const a = this.kafka.admin();
      await a.connect();
      return a;
    })());
    try {
      const answer = await this.within("no commits of the group", async () =>
        (await admin).fetchOffsets({ groupId, topics: [...new Set(topics)] }),
      );
      return new Map(
        answer.map((t) => [
          t.topic,
          new Map(t.partitions.map((p) => [p.partition, { offset: p.offset, metadata: p.metadata }])),
        ]),
      );
    } catch (err) {
      if (this.admin === admin) this.admin = undefined;
      void admin.then((a) => a.disconnect()).catch(() => undefined);
      throw err;
    }
  }

  private async within<T>(what: string, work: () => Promise<T>): Promise<T> {
    const ms = this.options.timeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new KafkaIdentityError(`Kafka gave ${what} in ${ms / 1000} s`, true)),
            ms,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const cluster = this.cluster;
    const admin = this.admin;
    this.cluster = undefined;
    this.admin = undefined;
    await cluster?.disconnect().catch(() => undefined);
    await admin?.then((a) => a.disconnect()).catch(() => undefined);
  }
}

function createCluster(kafka: Kafka): Cluster {
  const symbol = Object.getOwnPropertySymbols(kafka).find(
    (s) => s.description === "private:Kafka:createCluster",
  );
  const create = symbol && (kafka as unknown as Record<symbol, unknown>)[symbol];
  if (typeof create !== "function") throw internalsChanged("the Kafka client has no createCluster");
  const cluster = (create as (options: object) => unknown)({
    allowAutoTopicCreation: false,
  }) as Partial<Cluster>;
  for (const method of ["connect", "disconnect", "refreshMetadata", "getNodeIds", "findBroker"] as const)
    if (typeof cluster[method] !== "function") throw internalsChanged(`its Cluster has no ${method}()`);
  return cluster as Cluster;
}

/** The first broker of the cluster's metadata that connects. */
async function anyBroker(cluster: Cluster): Promise<Broker> {
  let last: unknown = new KafkaIdentityError("the Kafka cluster named no broker", true);
  for (const nodeId of cluster.getNodeIds()) {
    try {
      return await cluster.findBroker({ nodeId: String(nodeId) });
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

interface ConnectionPool {
  send(protocol: {
    request: {
      apiKey: number;
      apiVersion: number;
      apiName: string;
      encode(): { buf: Buffer; buffer: Buffer };
    };
    response: {
      decode(payload: Buffer): MetadataResponse;
      parse(decoded: MetadataResponse): MetadataResponse;
    };
    logResponseError: boolean;
  }): Promise<MetadataResponse>;
}

async function sendMetadata(broker: Broker, version: number, topics: string[]): Promise<MetadataResponse> {
  const pool = (broker as unknown as { connectionPool?: Partial<ConnectionPool> }).connectionPool;
  if (typeof pool?.send !== "function") throw internalsChanged("its Broker has no connectionPool.send()");
  // kafkajs writes request header v1; the flexible versions' header v2 adds tagged fields after it,
  // so the body starts with that empty tagged-field section.
  const body = Buffer.concat([Buffer.from([0]), encodeMetadataRequest(version, topics)]);
  return await (pool as ConnectionPool).send({
    request: {
      apiKey: METADATA,
      apiVersion: version,
      apiName: "Metadata",
      encode: () => ({ buf: body, buffer: body }),
    },
    response: {
      // kafkajs hands over what follows the correlation id: response header v1's tagged fields, then the body
      decode: (payload) => decodeMetadataResponse(version, payload, true),
      parse: (decoded) => decoded,
    },
    logResponseError: false,
  });
}

function identityOf(
  response: MetadataResponse,
  topics: string[],
  version: number,
  omitFailed = false,
): KafkaIdentity {
  if (response.errorCode !== 0) throw kafkaError(response.errorCode, "the Kafka broker refused Metadata", []);
  const clusterId = requireClusterId(response.clusterId);
  const byName = new Map(response.topics.map((t) => [t.name, t]));
  const failed = new Map<number, string[]>();
  const topicIds = new Map<string, string>();
  for (const name of topics) {
    const t = byName.get(name);
    const code = t ? t.errorCode : UNKNOWN_TOPIC_OR_PARTITION;
    // a topic whose leader is being elected exists and has its id
    if (t?.topicId && (code === 0 || code === LEADER_NOT_AVAILABLE)) topicIds.set(name, t.topicId);
    else if (!omitFailed) failed.set(code, [...(failed.get(code) ?? []), name]);
  }
  const [code, names] = [...failed][0] ?? [];
  if (code !== undefined && names) throw kafkaError(code, topicMessage(code, names), names);
  return { clusterId, topicIds, topicIdsSupported: true, metadataVersion: version };
}

/** For brokers before Kafka 2.8: kafkajs's own Metadata request (v6 at most), which has the cluster id. */
async function identityWithoutTopicIds(
  broker: Broker,
  topics: string[],
  brokerMax: number,
): Promise<KafkaIdentity> {
  let response: { clusterId?: string | null };
  try {
    // kafkajs's typings omit the cluster id its Metadata v2+ response carries
    response = (await broker.metadata(topics)) as { clusterId?: string | null };
  } catch (err) {
    const e = err as { type?: unknown; retriable?: unknown; message?: unknown };
    if (typeof e.type !== "string") throw err;
    // kafkajs names the first error, not the topic it is about
    const message =
      e.type !== "UNKNOWN_TOPIC_OR_PARTITION"
        ? `Kafka refused the metadata of ${quoted(topics)}: ${String(e.message)}`
        : topics.length === 1
          ? topicMessage(UNKNOWN_TOPIC_OR_PARTITION, topics)
          : `one of the Kafka topics ${quoted(topics)} does not exist`;
    throw new KafkaIdentityError(`${message} (${e.type})`, e.retriable === true, e.type, topics);
  }
  return {
    clusterId: requireClusterId(response.clusterId),
    topicIds: new Map(),
    topicIdsSupported: false,
    // kafkajs uses the highest version both sides speak, of v0-v6
    metadataVersion: Math.min(6, brokerMax),
  };
}

function requireClusterId(clusterId: string | null | undefined): string {
  // brokers before Kafka 0.10.1 have no cluster id
  if (!clusterId)
    throw new KafkaIdentityError("the Kafka cluster has no cluster id (Kafka before 0.10.1)", false);
  return clusterId;
}

function internalsChanged(what: string): KafkaIdentityError {
  return new KafkaIdentityError(
    `kafkajs internals changed (src/kafka/identity.ts was written for kafkajs 2.2.4): ${what}`,
    false,
    "KAFKAJS_INTERNALS",
  );
}

// ---------------------------------------------------------------- errors (codes from the Kafka protocol)

const UNKNOWN_TOPIC_OR_PARTITION = 3;
const LEADER_NOT_AVAILABLE = 5;
const KAFKA_ERRORS: Record<number, { type: string; retriable: boolean }> = {
  [UNKNOWN_TOPIC_OR_PARTITION]: { type: "UNKNOWN_TOPIC_OR_PARTITION", retriable: true },
  [LEADER_NOT_AVAILABLE]: { type: "LEADER_NOT_AVAILABLE", retriable: true },
  7: { type: "REQUEST_TIMED_OUT", retriable: true },
  17: { type: "INVALID_TOPIC_EXCEPTION", retriable: false },
  29: { type: "TOPIC_AUTHORIZATION_FAILED", retriable: false },
  31: { type: "CLUSTER_AUTHORIZATION_FAILED", retriable: false },
  129: { type: "REBOOTSTRAP_REQUIRED", retriable: true },
};

function kafkaError(code: number, message: string, topics: string[]): KafkaIdentityError {
  const known = KAFKA_ERRORS[code];
  const type = known?.type ?? `KAFKA_ERROR_${code}`;
  return new KafkaIdentityError(`${message} (${type})`, known?.retriable ?? false, type, topics);
}

function topicMessage(code: number, topics: string[]): string {
  const plural = topics.length > 1;
  switch (code) {
    case UNKNOWN_TOPIC_OR_PARTITION:
      return `Kafka topic${plural ? "s" : ""} ${quoted(topics)} ${plural ? "do" : "does"} not exist`;
    case 29:
      return `not authorized to describe Kafka topic${plural ? "s" : ""} ${quoted(topics)}`;
    default:
      return `Kafka refused the metadata of ${quoted(topics)}`;
  }
}

const quoted = (topics: string[]) => topics.map((t) => `"${t}"`).join(", ");

// ---------------------------------------------------------------- Metadata v10-v13 (flexible versions)

export interface MetadataResponse {
  throttleTimeMs: number;
  /** kafkajs throttles the connection by this (KIP-219). */
  clientSideThrottleTime: number;
  brokers: { nodeId: number; host: string; port: number; rack: string | null }[];
  clusterId: string | null;
  controllerId: number;
  topics: {
    errorCode: number;
    name: string | null;
    /** base64url of the 16 bytes; undefined for the zero UUID (a topic the broker does not know). */
    topicId: string | undefined;
    isInternal: boolean;
    partitions: number;
  }[];
  /** Top-level error code (v13+); 0 before. */
  errorCode: number;
}

/**
 * The request body of Metadata `version` (10-13) for `topics` by name, without auto-creation or
 * authorized operations. The request header's tagged fields are not part of it.
 */
export function encodeMetadataRequest(version: number, topics: string[]): Buffer {
  checkVersion(version);
  const parts: Buffer[] = [unsignedVarint(topics.length + 1)];
  for (const name of topics) {
    // topic id: the zero UUID, as the topic is named (querying by id is v12+ and not needed)
    parts.push(Buffer.alloc(16), compactString(name), TAGS_NONE);
  }
  parts.push(Buffer.from([0])); // allow_auto_topic_creation
  if (version === 10) parts.push(Buffer.from([0])); // include_cluster_authorized_operations (v8-10)
  parts.push(Buffer.from([0])); // include_topic_authorized_operations
  parts.push(TAGS_NONE);
  return Buffer.concat(parts);
}

/** Decodes a Metadata `version` (10-13) response; `withHeader`: it starts with response header v1's tags. */
export function decodeMetadataResponse(version: number, data: Buffer, withHeader = false): MetadataResponse {
  checkVersion(version);
  const r = new Reader(data);
  if (withHeader) r.skipTags();
  const throttleTimeMs = r.int32();
  const brokers = r.array(() => {
    const broker = { nodeId: r.int32(), host: r.string() ?? "", port: r.int32(), rack: r.string() };
    r.skipTags();
    return broker;
  });
  const clusterId = r.string();
  const controllerId = r.int32();
  const topics = r.array(() => {
    const errorCode = r.int16();
    const name = r.string();
    const topicId = r.uuid();
    const isInternal = r.int8() !== 0;
    const partitions = r.array(() => {
      r.skip(2 + 4 + 4 + 4); // error code, index, leader, leader epoch
      for (let i = 0; i < 3; i++) r.array(() => r.int32()); // replicas, in-sync, offline
      r.skipTags();
    }).length;
    r.int32(); // topic authorized operations
    r.skipTags();
    return { errorCode, name, topicId, isInternal, partitions };
  });
  if (version === 10) r.int32(); // cluster authorized operations (v8-10)
  const errorCode = version >= 13 ? r.int16() : 0;
  r.skipTags();
  if (!r.done())
    throw new KafkaIdentityError(`Metadata v${version} response has ${r.left()} bytes too many`, false);
  return {
    throttleTimeMs,
    clientSideThrottleTime: throttleTimeMs,
    brokers,
    clusterId,
    controllerId,
    topics,
    errorCode,
  };
}

/** Kafka's printed form of a UUID (Uuid.toString): base64url without padding; the zero UUID is none. */
export function uuidToString(bytes: Buffer): string | undefined {
  if (bytes.length !== 16) throw new RangeError(`a UUID has 16 bytes, not ${bytes.length}`);
  return bytes.every((b) => b === 0) ? undefined : bytes.toString("base64url");
}

function checkVersion(version: number): void {
  if (!Number.isInteger(version) || version < TOPIC_ID_VERSIONS.min || version > TOPIC_ID_VERSIONS.max)
    throw new RangeError(
      `Metadata v${version} is not one of v${TOPIC_ID_VERSIONS.min}-v${TOPIC_ID_VERSIONS.max}`,
    );
}

const TAGS_NONE = Buffer.from([0]);

function unsignedVarint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value >>> 0;
  while (v >= 0x80) {
    bytes.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

function compactString(value: string): Buffer {
  const utf8 = Buffer.from(value, "utf8");
  return Buffer.concat([unsignedVarint(utf8.length + 1), utf8]);
}

class Reader {
  private offset = 0;
  constructor(private readonly data: Buffer) {}

  done(): boolean {
    return this.offset === this.data.length;
  }
  left(): number {
    return this.data.length - this.offset;
  }
  skip(n: number): void {
    this.need(n);
    this.offset += n;
  }
  int8(): number {
    this.need(1);
    return this.data.readInt8(this.offset++);
  }
  int16(): number {
    this.need(2);
    const v = this.data.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.data.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  unsignedVarint(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      this.need(1);
      const b = this.data[this.offset++] ?? 0;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    throw new KafkaIdentityError("Metadata response has a varint longer than 5 bytes", false);
  }
  /** A compact (nullable) string: length + 1 as an unsigned varint, 0 for null. */
  string(): string | null {
    const n = this.unsignedVarint();
    if (n === 0) return null;
    this.need(n - 1);
    const s = this.data.toString("utf8", this.offset, this.offset + n - 1);
    this.offset += n - 1;
    return s;
  }
  uuid(): string | undefined {
    this.need(16);
    const id = uuidToString(this.data.subarray(this.offset, this.offset + 16));
    this.offset += 16;
    return id;
  }
  /** A compact array (null read as empty). */
  array<T>(item: () => T): T[] {
    const n = this.unsignedVarint();
    const out: T[] = [];
    for (let i = 1; i < n; i++) out.push(item());
    return out;
  }
  /** Tagged fields: a count, then tag, size and data each; none of them is needed here. */
  skipTags(): void {
    const count = this.unsignedVarint();
    for (let i = 0; i < count; i++) {
      this.unsignedVarint();
      this.skip(this.unsignedVarint());
    }
  }
  private need(n: number): void {
    if (this.offset + n > this.data.length)
      throw new KafkaIdentityError("Metadata response ends before its last field", false);
  }
}
