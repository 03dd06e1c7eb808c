// The identity effectively-once names come from, against real Kafka and Kafka's own tools as the oracle:
// the cluster id is what kafka-cluster.sh prints, a topic id what kafka-topics.sh --describe prints (in
// every Metadata version 10-13), a recreated topic has a new id, a missing topic is a clear error, a
// broker without topic ids (simulated by capping the version) gives the cluster id alone, and the same
// cluster reached by another address or over SASL_SSL (kafkajs's own authentication) is the same identity
// while another cluster is not.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { createKafka } from "../../src/kafka/client";
import { KafkaIdentityError, kafkaIdentity } from "../../src/kafka/identity";
import { kafkaBrokers, runToolOk, uniqueName } from "../support/brokers";
import { createTopic, testKafka, toolTopicId } from "../support/kafka";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";

const bootstrap = kafkaBrokers[0] ?? "";
const created: string[] = [];

async function newTopic(partitions = 1): Promise<string> {
  const topic = uniqueName("identity");
  await createTopic(topic, partitions);
  created.push(topic);
  return topic;
}

async function deleteTopics(topics: string[]): Promise<void> {
  if (topics.length === 0) return;
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}

/** "Cluster ID: <id>" of Kafka's ClusterTool (bin/kafka-cluster.sh cluster-id). */
async function toolClusterId(server = bootstrap, env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await runToolOk(
    "kafka-tool",
    ["org.apache.kafka.tools.ClusterTool", "cluster-id", "--bootstrap-server", server],
    { env },
  );
  const m = /Cluster ID: (\S+)/.exec(r.stdout);
  assert.ok(m?.[1], `no cluster id in ${r.stdout}`);
  return m[1];
}

after(async () => {
  await deleteTopics(created);
});

test("the cluster id is the one Kafka's cluster tool prints", async () => {
  const identity = await kafkaIdentity(testKafka("identity-test"), []);
  assert.equal(identity.clusterId, await toolClusterId());
  assert.equal(identity.topicIdsSupported, true);
  assert.equal(identity.metadataVersion, 13, "Kafka 4.1 answers Metadata v13");
  assert.equal(identity.topicIds.size, 0);
});

test("each topic's id is the TopicId kafka-topics --describe prints, in Metadata v10, v11, v12 and v13", async () => {
  const [one, three] = [await newTopic(1), await newTopic(3)];
  const expected = new Map([
    [one, await toolTopicId(one)],
    [three, await toolTopicId(three)],
  ]);
  assert.notEqual(expected.get(one), expected.get(three));
  for (const id of expected.values()) assert.match(id, /^[A-Za-z0-9_-]{22}$/, "base64url of 16 bytes");
  const kafka = testKafka("identity-test");
  for (const version of [10, 11, 12, 13]) {
    // a name given twice is asked once
    const identity = await kafkaIdentity(kafka, [three, one, three], { maxMetadataVersion: version });
    assert.equal(identity.metadataVersion, version);
    assert.deepEqual(identity.topicIds, expected, `Metadata v${version}`);
    assert.equal(identity.clusterId, await toolClusterId());
  }
});

test("a topic deleted and created again under the same name has a new id", async () => {
  const topic = await newTopic(2);
  const kafka = testKafka("identity-test");
  const before = (await kafkaIdentity(kafka, [topic])).topicIds.get(topic);
  assert.equal(before, await toolTopicId(topic));
  await deleteTopics([topic]);
  await createTopic(topic, 2);
  const after = (await kafkaIdentity(kafka, [topic])).topicIds.get(topic);
  assert.ok(after);
  assert.notEqual(after, before);
  assert.equal(after, await toolTopicId(topic));
});

test("a missing topic is an error that names it (and only the missing ones)", async () => {
  const present = await newTopic();
  const missing = [uniqueName("identity-missing"), uniqueName("identity-missing")];
  const kafka = testKafka("identity-test");
  await assert.rejects(kafkaIdentity(kafka, [missing[0] ?? ""]), (err: unknown) => {
    assert.ok(err instanceof KafkaIdentityError);
    assert.equal(err.message, `Kafka topic "${missing[0]}" does not exist (UNKNOWN_TOPIC_OR_PARTITION)`);
    assert.equal(err.type, "UNKNOWN_TOPIC_OR_PARTITION");
    assert.deepEqual(err.topics, [missing[0]]);
    return true;
  });
  await assert.rejects(
    kafkaIdentity(kafka, [missing[0] ?? "", present, missing[1] ?? ""]),
    (err: unknown) => {
      assert.ok(err instanceof KafkaIdentityError);
      assert.deepEqual(err.topics, missing);
      assert.match(err.message, /^Kafka topics ".+", ".+" do not exist/);
      return true;
    },
  );
  // nothing was auto-created by asking
  const r = await runToolOk("kafka-tool", ["topics", "--bootstrap-server", bootstrap, "--list"]);
  for (const m of missing) assert.ok(!r.stdout.split("\n").includes(m), `${m} was created`);
});

test("a broker without topic ids (Metadata before v10) gives the cluster id alone; a missing topic is still an error", async () => {
  const topic = await newTopic();
  const kafka = testKafka("identity-test");
  for (const version of [9, 6]) {
    const identity = await kafkaIdentity(kafka, [topic], { maxMetadataVersion: version });
    assert.equal(identity.topicIdsSupported, false);
    assert.equal(identity.topicIds.size, 0);
    assert.equal(identity.metadataVersion, 6, "kafkajs's own Metadata request, v6 at most");
    assert.equal(identity.clusterId, await toolClusterId());
  }
  const missing = uniqueName("identity-missing");
  await assert.rejects(kafkaIdentity(kafka, [missing], { maxMetadataVersion: 9 }), (err: unknown) => {
    assert.ok(err instanceof KafkaIdentityError);
    assert.equal(err.type, "UNKNOWN_TOPIC_OR_PARTITION");
    assert.match(err.message, new RegExp(`"${missing}" does not exist`));
    return true;
  });
});

test("another spelling of the bootstrap list is the same identity", async () => {
  const topic = await newTopic();
  const port = bootstrap.slice(bootstrap.lastIndexOf(":") + 1);
  const a = await kafkaIdentity(testKafka("identity-test", [bootstrap]), [topic]);
  const b = await kafkaIdentity(testKafka("identity-test", [`localhost:${port}`, bootstrap]), [topic]);
  assert.deepEqual(b, a);
});

test("a broker that is not there fails with kafkajs's connection error", async () => {
  const kafka = new Kafka({
    clientId: "identity-test",
    brokers: ["127.0.0.1:1"],
    connectionTimeout: 500,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  await assert.rejects(kafkaIdentity(kafka, []), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.name, /^KafkaJS/);
    return true;
  });
});

describe("a Kafka of this test's own, with a SASL_SSL listener", () => {
  let own: OwnBrokers;
  let env: Record<string, string>;

  before(async () => {
    own = await ownBrokers({ KAFKA_SECURITY: "sasl-ssl-mtls" });
    await own.brokers("start", "kafka");
    env = Object.fromEntries(
      (await own.brokers("env"))
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
  });

  after(async () => {
    await own?.dispose();
  });

  test("over SCRAM-SHA-512 and TLS it is the same identity as over plaintext, and not the shared cluster's", async () => {
    const topic = uniqueName("identity-own");
    await createTopic(topic, 2, [own.kafkaBootstrap]);
    const plain = await kafkaIdentity(testKafka("identity-test", [own.kafkaBootstrap]), [topic]);
    assert.equal(plain.clusterId, await toolClusterId(own.kafkaBootstrap, own.env));
    assert.equal(plain.topicIds.get(topic), await toolTopicId(topic, own.kafkaBootstrap, own.env));

    const certs = await own.brokers("certs");
    const secured = createKafka({
      brokers: [env.KAFKA_SASL_SSL_BROKERS ?? ""],
      clientId: "identity-test",
      tls: { ca: fs.readFileSync(path.join(certs, "ca.pem"), "utf8") },
      saslMechanism: "scram-sha-512",
      username: env.KAFKA_SCRAM_USER,
      password: fs.readFileSync(env.KAFKA_SCRAM_PASSWORD_FILE ?? "", "utf8").trim(),
      connectionTimeoutMs: 5000,
      requestTimeoutMs: 10_000,
    });
    assert.deepEqual(await kafkaIdentity(secured, [topic]), plain);

    const shared = await kafkaIdentity(testKafka("identity-test"), []);
    assert.notEqual(plain.clusterId, shared.clusterId);
  });
});
