// The builtin Pulsar client: connection pool (one connection per broker address), topic lookup with
// redirects and proxies, partitioned metadata, and the factory for producers and consumers.
import { MemoryLimit } from "./memory-limit";
import { Backoff, retryWithin } from "./backoff";
import { Connection } from "./connection";
import { SequenceHoles } from "./sequence-ranges";
import {
  CommandType,
  encodeGetTopicsOfNamespace,
  encodeLookup,
  encodePartitionedMetadata,
} from "./protocol/commands";
import { AlreadyClosedError, ConnectionError, fromServerError, PulsarError } from "./errors";
import { parseServiceUrl, parseTopicName, type ServiceUrl } from "./service-url";
import { createProducer } from "./producer";
import { createConsumer } from "./consumer";
import type {
  ClientOptions,
  Consumer,
  ConsumerOptions,
  Producer,
  ProducerOptions,
  PulsarClient,
} from "./types";

const MAX_LOOKUP_REDIRECTS = 20;

export interface ResolvedClientOptions extends ClientOptions {
  operationTimeoutMs: number;
  connectionTimeoutMs: number;
  keepAliveIntervalMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/** Where a topic is served: the connection to use. */
export interface BrokerAddress {
  /** The broker that owns the topic (host:port). */
  logical: string;
  /** Where to open the socket: the broker itself, or the service URL when going through a proxy. */
  physical: { host: string; port: number };
  proxied: boolean;
}

function hostPort(url: string): { host: string; port: number } {
  const parsed = parseServiceUrl(url);
  const first = parsed.hosts[0];
  if (!first) throw new ConnectionError(`broker URL ${url} names no host`);
  return first;
}

/** The Java client's default memory limit. */
export const DEFAULT_MEMORY_LIMIT_BYTES = 64 * 1024 * 1024;

export class BuiltinClient implements PulsarClient {
  readonly options: ResolvedClientOptions;
  private readonly service: ServiceUrl;
  private readonly pool = new Map<string, Promise<Connection>>();
  private readonly closeables = new Set<{ close(): Promise<void> }>();
  private nextServiceHost = 0;
  private nextId = 1;
  closed = false;
  /** What the client's producers have sent and Pulsar has not acknowledged yet, in bytes. */
  readonly memory: MemoryLimit;
  /** Sequence ids brokers passed as duplicates without storing them (see Producer.provenStored). */
  readonly holes = new SequenceHoles();

  constructor(options: ClientOptions) {
    this.service = parseServiceUrl(options.serviceUrl);
    this.options = {
      ...options,
      operationTimeoutMs: options.operationTimeoutMs ?? 30_000,
      connectionTimeoutMs: options.connectionTimeoutMs ?? 10_000,
      keepAliveIntervalMs: options.keepAliveIntervalMs ?? 30_000,
      initialBackoffMs: options.initialBackoffMs ?? 100,
      maxBackoffMs: options.maxBackoffMs ?? 30_000,
    };
    this.memory = new MemoryLimit(options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES);
  }

  /** Client-wide ids for producers and consumers: kept across reconnects. */
  newId(): number {
    return this.nextId++;
  }

  log(level: "debug" | "info" | "warn" | "error", message: string): void {
    this.options.log?.(level, message);
  }

  /** A connection to the given physical address (logical broker when proxied); shared and reopened when closed. */
  getConnection(target?: BrokerAddress): Promise<Connection> {
    if (this.closed) return Promise.reject(new AlreadyClosedError("the Pulsar client is closed"));
    const physical = target?.physical ?? this.serviceHost();
    const key = `${physical.host}:${physical.port}|${target?.proxied ? target.logical : ""}`;
    const existing = this.pool.get(key);
    if (existing) return existing;
    const opening = Connection.open({
      host: physical.host,
      port: physical.port,
      tls: this.service.tls ? (this.options.tls ?? {}) : undefined,
      auth: this.options.auth,
      proxyToBrokerUrl: target?.proxied ? target.logical : undefined,
      connectionTimeoutMs: this.options.connectionTimeoutMs,
      operationTimeoutMs: this.options.operationTimeoutMs,
      keepAliveIntervalMs: this.options.keepAliveIntervalMs,
    });
    this.pool.set(key, opening);
    opening.then(
      (conn) => conn.onClose(() => this.pool.get(key) === opening && this.pool.delete(key)),
      () => this.pool.get(key) === opening && this.pool.delete(key),
    );
    return opening;
  }

  private serviceHost(): { host: string; port: number } {
    const hosts = this.service.hosts;
    return hosts[this.nextServiceHost++ % hosts.length];
  }

  async getPartitionCount(topic: string): Promise<number> {
    const name = parseTopicName(topic).fullName;
    const conn = await this.getConnection();
    const res = await conn.request(
      (id) => encodePartitionedMetadata(name, id),
      `partitioned metadata of ${name}`,
    );
    if (res.type !== CommandType.PARTITIONED_METADATA_RESPONSE)
      throw new PulsarError("unexpected answer to a metadata request", "ProtocolError", true);
    if (res.failed) throw fromServerError(res.error, res.message);
    return res.partitions;
  }

  /**
   * The topics of a namespace (tenant/namespace), partitions by their own names, as the broker lists
   * them; retriable errors are waited out within the operation timeout.
   */
  async getTopicsOfNamespace(namespace: string, persistent = true): Promise<string[]> {
    let topics: string[] = [];
    const backoff = new Backoff({
      initialMs: this.options.initialBackoffMs,
      maxMs: this.options.maxBackoffMs,
    });
    await retryWithin(this.options.operationTimeoutMs, backoff, async () => {
      const conn = await this.getConnection();
      const res = await conn.request(
        (id) => encodeGetTopicsOfNamespace(namespace, persistent ? "persistent" : "non-persistent", id),
        `topics of ${namespace}`,
      );
      if (res.type !== CommandType.GET_TOPICS_OF_NAMESPACE_RESPONSE)
        throw new PulsarError("unexpected answer to a topic listing", "ProtocolError", true);
      topics = res.topics;
    });
    return topics;
  }

  /** getPartitionCount, waiting out retriable errors (a broker restarting) within the operation timeout. */
  async partitionCountWithRetry(topic: string): Promise<number> {
    let count = 0;
    const backoff = new Backoff({
      initialMs: this.options.initialBackoffMs,
      maxMs: this.options.maxBackoffMs,
    });
    await retryWithin(this.options.operationTimeoutMs, backoff, async () => {
      count = await this.getPartitionCount(topic);
    });
    return count;
  }

  /** Finds the broker serving `topic`, following redirects (at most 20). */
  async lookup(topic: string): Promise<BrokerAddress> {
    // Where the current lookup goes: a service URL host first, then the broker each redirect names.
    let asked = this.serviceHost();
    let conn = await this.getConnection({
      logical: `${asked.host}:${asked.port}`,
      physical: asked,
      proxied: false,
    });
    let authoritative = false;
    for (let i = 0; i < MAX_LOOKUP_REDIRECTS; i++) {
      const res = await conn.request((id) => encodeLookup(topic, id, authoritative), `lookup of ${topic}`);
      if (res.type !== CommandType.LOOKUP_RESPONSE)
        throw new PulsarError("unexpected answer to a lookup", "ProtocolError", true);
      if (res.response === "failed") throw fromServerError(res.error, res.message);
      const url = this.service.tls ? res.brokerServiceUrlTls : res.brokerServiceUrl;
      if (!url)
        throw new ConnectionError(
          `lookup of ${topic} returned no ${this.service.tls ? "TLS " : ""}broker URL`,
        );
      const broker = hostPort(url);
      const logical = `${broker.host}:${broker.port}`;
      // "Through the service URL" means through whoever answered this lookup, as in the Java client: a
      // proxy, or, after a redirect, the broker redirected to. A standalone broker says so about itself
      // (its address is a loopback one): that is a plain connection to it.
      const viaProxy =
        res.proxyThroughServiceUrl && !(asked.host === broker.host && asked.port === broker.port);
      const address: BrokerAddress = viaProxy
        ? { logical, physical: asked, proxied: true }
        : { logical, physical: broker, proxied: false };
      if (res.response === "connect") {
        this.log(
          "debug",
          `lookup of ${topic}: served by ${logical}${viaProxy ? ` through ${asked.host}:${asked.port}` : ""}`,
        );
        return address;
      }
      authoritative = res.authoritative;
      this.log(
        "debug",
        `lookup of ${topic}: redirected to ${logical}${authoritative ? " (authoritative)" : ""}`,
      );
      asked = address.physical;
      conn = await this.getConnection(address);
    }
    throw new ConnectionError(`lookup of ${topic} was redirected more than ${MAX_LOOKUP_REDIRECTS} times`);
  }

  track<T extends { close(): Promise<void> }>(item: T): T {
    this.closeables.add(item);
    return item;
  }

  untrack(item: { close(): Promise<void> }): void {
    this.closeables.delete(item);
  }

  async createProducer(options: ProducerOptions): Promise<Producer> {
    if (this.closed) throw new AlreadyClosedError("the Pulsar client is closed");
    return this.track(await createProducer(this, options));
  }

  async subscribe(options: ConsumerOptions): Promise<Consumer> {
    if (this.closed) throw new AlreadyClosedError("the Pulsar client is closed");
    return this.track(await createConsumer(this, options));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const items = [...this.closeables];
    await Promise.allSettled(items.map((i) => i.close()));
    this.closed = true;
    const conns = await Promise.allSettled([...this.pool.values()]);
    this.pool.clear();
    for (const c of conns) if (c.status === "fulfilled") c.value.shutdown();
    this.options.auth?.close?.();
  }
}

export function createClient(options: ClientOptions): PulsarClient {
  return new BuiltinClient(options);
}
