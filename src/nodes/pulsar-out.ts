// pulsar-out: publishes msgs to Pulsar. done() only after Pulsar's receipt; done(err) on any failure, so
// Catch nodes get the original msg and kafka-in does not count the record as settled.
import { payloadSchema, registryPayloadSchema, type PayloadSchema } from "../bridge/schema-payload";
import type { SchemaRegistryNode } from "./schema-registry";
import { PULSAR_OUT_DEFAULTS } from "./properties";
import { coerceConfig } from "../common/coerce";
import { describeError, BridgeError, ConfigurationError, statusText } from "../common/errors";
import {
  instanceKey,
  onClose,
  registerType,
  type Node,
  type NodeConfig,
  type NodeMessage,
  type RED,
} from "./red";
import type { LinkState, PulsarClusterNode } from "./pulsar-cluster";
import { TopicResolver, type TopicSource } from "../bridge/topic";
import { msgToPulsar } from "../bridge/msg-to-pulsar";
import {
  EffectivelyOncePublisher,
  type OrderedSource,
  type Publication,
  type StreamOwner,
} from "../bridge/effectively-once";
import { ProducerPool } from "../bridge/producer-pool";

/** A producer no msg used this long is closed (checked every IDLE_SWEEP_MS). */
const IDLE_PRODUCER_MS = 10 * 60_000;
const IDLE_SWEEP_MS = 60_000;
import { ProducerBusyError } from "../pulsar/errors";
import type { CompressionType, HashingScheme, Producer, PulsarClient, RoutingMode } from "../pulsar/types";

/** The version of `subject` kafka-in decoded the msg's value with, when it did. */
function subjectVersion(m: Record<string, unknown>, subject: string): number | undefined {
  const s = (m.kafka as { schema?: { subject?: unknown; version?: unknown } } | undefined)?.schema;
  return s && s.subject === subject.trim() && typeof s.version === "number" ? s.version : undefined;
}

/** The schema-registry node `registryId` pulsar-out's schema source "registry" reads from. */
function registryOf(RED: RED, registryId: string) {
  const registry = RED.nodes.getNode(registryId) as SchemaRegistryNode | null;
  if (!registry)
    throw new BridgeError(
      "pulsar-out.errors.no-registry",
      "the schema source 'registry' needs a schema-registry node",
      false,
    );
  return registry.client();
}

export function registerPulsarOut(RED: RED): void {
  function PulsarOutNode(this: Node, def: NodeConfig) {
    RED.nodes.createNode(this, def);
    const node = this;
    const share = instanceKey(node);
    const cfg = coerceConfig(def, PULSAR_OUT_DEFAULTS);
    const cluster = RED.nodes.getNode(cfg.cluster) as PulsarClusterNode | null;
    const t = (key: string, vars?: Record<string, unknown>) =>
      RED._(`node-red-contrib-kafka-pulsar/pulsar:${key}`, vars);

    const report = (err: unknown) => {
      const d = describeError(err);
      node.status({ fill: "red", shape: "ring", text: statusText(d.message) });
      return d;
    };

    let resolver: TopicResolver | undefined;
    let setupError: Error | undefined;
    let schema: PayloadSchema | undefined;
    // schema source "registry": the subject's latest schema, read once (again after a failure)
    let schemaLoad: ((atLeast?: number) => Promise<PayloadSchema>) | undefined;
    try {
      if (!cluster)
        throw new BridgeError("pulsar-out.errors.no-cluster", "no pulsar-cluster is configured", false);
      resolver = new TopicResolver(cfg.topic, cfg.topicType as TopicSource);
      if (cfg.effectivelyOnce && cluster.settings.engine === "pulsar-client")
        throw new BridgeError(
          "pulsar-out.errors.native-effectively-once",
          "effectively-once needs the builtin Pulsar engine: the pulsar-client engine cannot route by key " +
            "with the offset as sequence id, nor tell a duplicate from a stored message",
          false,
        );
      if (cfg.schemaType === "avro" || cfg.schemaType === "json") {
        if (cfg.schemaSource === "registry")
          schemaLoad = registryPayloadSchema(
            registryOf(RED, cfg.registry),
            cfg.schemaSubject,
            cfg.schemaType,
            cfg.schemaMessage,
          );
        else schema = payloadSchema(cfg.schemaType, cfg.schemaDefinition);
      }
    } catch (err) {
      // a configuration error (an invalid fixed topic too): every msg fails the same way, none is at fault
      setupError = new ConfigurationError(
        err instanceof BridgeError ? err.key : "pulsar-out.errors.no-cluster",
        describeError(err).message,
      );
      report(err);
      node.error(describeError(err).message);
    }

    let client: Promise<PulsarClient> | undefined;
    const producers = new ProducerPool<Producer, StreamOwner>({
      idleMs: IDLE_PRODUCER_MS,
      closeFailed: (_key, err) => node.warn(describeError(err).message),
    });
    const eo = cfg.effectivelyOnce
      ? new EffectivelyOncePublisher({
          nodeId: node.id,
          findSource: (id) =>
            (RED.nodes.getNode(id) as { orderedSource?: OrderedSource } | null)?.orderedSource,
          closeProducers: (select) => producers.closeWhere(select),
        })
      : undefined;
    let inFlight = 0;
    let closing = false;

    // The state of this node's producers' connections, as the pulsar-cluster tells it: green only while
    // they are up.
    let link: LinkState | undefined;
    const showLink = () => {
      // a configuration error keeps its red status: the connection is not what fails
      if (closing || setupError) return;
      switch (link?.state) {
        case "connecting":
          node.status({ fill: "yellow", shape: "ring", text: "node-red:common.status.connecting" });
          return;
        case "reconnecting":
          node.status({
            fill: "yellow",
            shape: "ring",
            text: statusText(t("pulsar-out.status.reconnecting", { reason: link.reason })),
          });
          return;
        case "error":
          node.status({ fill: "red", shape: "ring", text: statusText(link.reason) });
          return;
        default:
          // connected, or no producer yet
          if (link || inFlight > 0)
            node.status({
              fill: "green",
              shape: "dot",
              text: inFlight > 0 ? "pulsar-out.status.sending" : "node-red:common.status.connected",
            });
      }
    };
    cluster?.register(share, (state) => {
      link = state;
      showLink();
    });

    // Effectively-once depends on Pulsar's deduplication: checked per topic through the cluster's admin URL,
    // the answer kept for a minute (so turning it on, or off, is noticed); without an admin URL, a warning once.
    // One check per topic that every msg awaits: msgs must reach the producer in their order, because
    // the broker drops a sequence id lower than one it stored.
    const dedupChecks = new Map<
      string,
      { at: number; settled: boolean; ok: boolean; check: Promise<void> }
    >();
    let warnedUnchecked = false;
    /** undefined: checked and on (no turn of the microtask queue for it, msg after msg). */
    const ensureDeduplication = (topic: string): Promise<void> | undefined => {
      const known = dedupChecks.get(topic);
      if (known && (!known.settled || Date.now() - known.at < 60_000))
        return known.ok ? undefined : known.check;
      const entry = { at: Date.now(), settled: false, ok: false, check: checkDeduplication(topic) };
      entry.check.then(
        () => {
          entry.settled = true;
          entry.ok = true;
        },
        () => (entry.settled = true),
      );
      dedupChecks.set(topic, entry);
      return entry.check;
    };
    const checkDeduplication = async (topic: string): Promise<void> => {
      let on: boolean | undefined;
      try {
        on = await (cluster as PulsarClusterNode).deduplicationEnabled(topic);
      } catch (err) {
        node.warn(t("pulsar-out.errors.dedup-unchecked", { topic, message: describeError(err).message }));
        return;
      }
      if (on === undefined) {
        if (!warnedUnchecked) node.warn(t("pulsar-out.errors.dedup-no-admin"));
        warnedUnchecked = true;
        return;
      }
      if (!on) throw dedupOffError(topic);
    };
    const dedupOffError = (topic: string) =>
      new BridgeError(
        "pulsar-out.errors.dedup-off",
        `deduplication is off for ${topic}, so effectively-once would store duplicates: enable it ` +
          "(pulsar-admin namespaces set-deduplication --enable <tenant>/<namespace>, or on the topic)",
        false,
      );

    const getClient = (): Promise<PulsarClient> => {
      // a msg that waited while the node closed (effectively-once admits offsets in order) opens nothing:
      // a producer opened now would outlive the node and hold its name against its successor
      if (closing)
        return Promise.reject(
          new BridgeError(
            "pulsar-out.errors.closing",
            "pulsar-out is closing: its record is delivered again",
            true,
          ),
        );
      client ??= (cluster as PulsarClusterNode).acquireClient(share);
      client.catch(() => (client = undefined));
      return client;
    };

    // the payload schema each producer declared (a registry subject's schema may change under a running node)
    const declared = new WeakMap<Producer, PayloadSchema>();
    const openProducer = (topic: string, producerName: string | undefined) => (): Promise<Producer> => {
      const declaring = schema;
      const p = getClient().then((c) =>
        c.createProducer({
          topic,
          producerName,
          batchingEnabled: cfg.batching,
          batchingMaxMessages: cfg.batchMaxMessages,
          batchingMaxBytes: cfg.batchMaxBytes,
          batchingMaxPublishDelayMs: cfg.batchMaxDelayMs,
          compression: cfg.compression as CompressionType,
          // Effectively-once needs the same partition for a record on every delivery: by the key's hash
          // (as without effectively-once: one key, one partition), or without a key by the sequence id
          // (the offset), never by a moving round-robin cursor.
          routingMode: (cfg.effectivelyOnce ? "key-or-sequence" : cfg.routingMode) as RoutingMode,
          hashingScheme: cfg.hashingScheme as HashingScheme,
          maxPendingMessages: cfg.maxPending,
          blockIfQueueFull: true,
          sendTimeoutMs: cfg.sendTimeoutMs,
          // Partitions added would move records to other partitions between deliveries, which
          // deduplication cannot follow: in effectively-once mode the count is frozen for the producer's
          // life and named in its partition producers' names, so a redeploy after a change starts new
          // sequences (records not committed then may be stored twice, none is dropped as a duplicate).
          partitionsUpdateIntervalMs: cfg.effectivelyOnce ? 0 : 60_000,
          nameCarriesPartitionCount: cfg.effectivelyOnce,
          schema: declaring?.producerSchema,
        }),
      );
      void p.then(
        (producer) => declaring && declared.set(producer, declaring),
        () => undefined,
      );
      p.then(
        () => showLink(),
        (err: unknown) => report(busy(err, topic, producerName)),
      );
      return p.catch((err: unknown) => {
        throw busy(err, topic, producerName);
      });
    };
    // A named producer (effectively-once) that Pulsar still knows on another connection: the instance that
    // had the Kafka partition before (until its connection closes) or another bridge of the same records.
    // Not the record's fault: its tries are not used up while it waits (DESIGN §4).
    const busy = (err: unknown, topic: string, producerName: string | undefined) =>
      err instanceof ProducerBusyError && producerName !== undefined
        ? new BridgeError(
            "pulsar-out.errors.producer-busy",
            t("pulsar-out.errors.producer-busy", { name: producerName, topic }),
            true,
          )
        : err;

    // Producers (and deduplication checks) of topics no msg went to for a while are closed: a template
    // topic may name ever new ones.
    const sweep = setInterval(() => {
      for (const { tag } of producers.evictIdle()) if (tag) eo?.closed(tag);
      for (const [topic, entry] of dedupChecks)
        if (entry.settled && Date.now() - entry.at > IDLE_PRODUCER_MS) dedupChecks.delete(topic);
    }, IDLE_SWEEP_MS);
    sweep.unref();

    // A fixed topic is connected at deploy, so the status tells at once whether Pulsar is reachable.
    const fixed = resolver?.fixedTopic;
    // (a schema still to be read from the registry: the first msg opens it, with the schema)
    if (fixed && !cfg.effectivelyOnce && !setupError && !schemaLoad) {
      node.status({ fill: "yellow", shape: "ring", text: "node-red:common.status.connecting" });
      producers.open(fixed, openProducer(fixed, undefined), { pinned: true }).catch(() => undefined);
    }

    let warnedCopy = false;
    node.on("input", (msg: NodeMessage, send: (m: NodeMessage) => void, done: (err?: Error) => void) => {
      void (async () => {
        if (setupError) throw setupError;
        const m = msg as NodeMessage & Record<string, unknown>;
        // every msg waits for the same load, so they go on in their order; a msg kafka-in decoded with a
        // newer version of the subject has the latest read again, and the producers reopen with it
        if (schemaLoad) {
          const next = await schemaLoad(subjectVersion(m, cfg.schemaSubject));
          if (!schema || (next.version ?? 0) > (schema.version ?? 0)) {
            if (schema) for (const tag of producers.retireAll()) if (tag) eo?.closed(tag);
            schema = next;
          }
        }
        const topic = (resolver as TopicResolver).resolve(m);
        const out = msgToPulsar(m, {
          mapHeaders: cfg.mapHeaders,
          provenanceProperties: cfg.provenanceProperties,
          encodePayload: schema?.encode,
        });
        const encodedWith = schema;
        let publication: Publication | undefined;
        if (eo) {
          const p = await eo.prepare(m, topic);
          if (p === "stale") {
            // a pass kafka-in discarded: its replay brings the record again. A copy of such a msg (a Catch
            // node's) is not published either: said once, so that error notices are sent another way
            if (!warnedCopy && eo.isCopy(m)) {
              warnedCopy = true;
              node.warn(
                t("pulsar-out.errors.stale-copy", {
                  offset: String((m.kafka as { offset?: unknown }).offset),
                }),
              );
            }
            return;
          }
          publication = p;
          out.sequenceId = p.sequenceId;
          out.covers = p.covers;
          if (p.tainted) node.warn(t("pulsar-out.errors.discarded-part", { offset: p.offset }));
        }
        inFlight++;
        if (inFlight === 1) showLink();
        try {
          let receipt;
          try {
            receipt = await producers.use(
              publication?.producerKey ?? topic,
              openProducer(topic, publication?.owner.producerName),
              async (producer) => {
                // after the producer: the topic exists then, so its applied policy can be read
                const checking = eo ? ensureDeduplication(topic) : undefined;
                if (checking) await checking;
                if (publication) eo?.recheck(publication);
                // encoded with another schema than this producer declares (the subject's latest changed
                // meanwhile): written again with the producer's, so body and schema version agree
                const its = declared.get(producer);
                if (its && its !== encodedWith && m.payload !== null) out.payload = its.encode(m.payload);
                return producer.send(out);
              },
              { tag: publication?.owner },
            );
          } catch (err) {
            if (publication) eo?.failed(publication);
            throw err;
          }
          if (publication) eo?.received(publication, receipt);
          if (cfg.outputs > 0) {
            m.pulsar = {
              topic: receipt.topic,
              messageId: receipt.messageId,
              sequenceId: receipt.sequenceId,
              producerName: receipt.producerName,
              duplicate: receipt.duplicate,
            };
            send(m);
          }
        } finally {
          inFlight--;
          if (inFlight === 0) showLink();
        }
      })().then(
        () => done(),
        (err: unknown) => {
          const d = report(err);
          const e = err instanceof Error ? err : new Error(d.message);
          done(e);
        },
      );
    });

    onClose(node, async () => {
      closing = true;
      cluster?.deregister(share);
      clearInterval(sweep);
      eo?.close();
      await producers.closeAll();
      if (client) await cluster?.releaseClient(share);
      client = undefined;
      node.status({});
    });
  }

  registerType(RED, "pulsar-out", PulsarOutNode);
}
