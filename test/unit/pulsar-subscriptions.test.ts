// pulsar-in's topics: patterns parsed and matched as Pulsar's clients match them (the whole local name,
// partitions counting as their topic), and PulsarSubscriptions keeping the subscribed set equal to what
// the namespace listing matches (topics that come are subscribed, those gone are closed).
import assert from "node:assert/strict";
import { test } from "node:test";
import { matchingTopics, parseTopicPattern } from "../../src/pulsar/topic-pattern";
import { decodeCommand, encodeGetTopicsOfNamespace, CommandType } from "../../src/pulsar/protocol/commands";
import { ProtoMessage, ProtoWriter } from "../../src/pulsar/protocol/protobuf";
import { PulsarSubscriptions } from "../../src/bridge/pulsar-subscriptions";
import type { Consumer } from "../../src/pulsar/types";
import { waitFor } from "../support/wait";

test("a topic pattern: domain, tenant/namespace and an expression matched against the whole local name", () => {
  const p = parseTopicPattern("persistent://public/default/sensor-.*");
  assert.equal(p.namespace, "public/default");
  assert.equal(p.persistent, true);
  const listed = [
    "persistent://public/default/sensor-a",
    "persistent://public/default/sensor-b-partition-0",
    "persistent://public/default/sensor-b-partition-1",
    "persistent://public/default/other-sensor-c", // matches only in part
    "persistent://public/other/sensor-d", // another namespace
    "non-persistent://public/default/sensor-e", // another domain
  ];
  assert.deepEqual(matchingTopics(listed, p), [
    "persistent://public/default/sensor-a",
    "persistent://public/default/sensor-b",
  ]);
  assert.equal(parseTopicPattern("t1/ns1/a|b").text, "persistent://t1/ns1/a|b");
  assert.deepEqual(
    matchingTopics(["persistent://t1/ns1/ab", "persistent://t1/ns1/b"], parseTopicPattern("t1/ns1/a|b")),
    ["persistent://t1/ns1/b"],
  );
  assert.equal(parseTopicPattern("non-persistent://t/n/x.*").persistent, false);
});

test("a bad topic pattern is refused with the reason", () => {
  assert.throws(() => parseTopicPattern(""), /empty/);
  assert.throws(() => parseTopicPattern("sensor-.*"), /tenant\/namespace\/regular-expression/);
  assert.throws(() => parseTopicPattern("public/def.*/sensor"), /plain names/);
  assert.throws(() => parseTopicPattern("public/default/sensor-(["), /not a regular expression/);
  assert.throws(() => parseTopicPattern("http://public/default/x"), /unknown domain/);
});

test("CommandGetTopicsOfNamespace: request id, namespace and mode as PulsarApi.proto numbers them; the answer's topics", () => {
  const frame = new ProtoMessage(encodeGetTopicsOfNamespace("public/default", "persistent", 7));
  assert.equal(frame.num(1), CommandType.GET_TOPICS_OF_NAMESPACE);
  const body = frame.message(32);
  assert.ok(body);
  assert.equal(body.num(1), 7);
  assert.equal(body.str(2), "public/default");
  assert.equal(body.num(3), 0);
  const answer = new ProtoWriter(64);
  answer.varint(1, CommandType.GET_TOPICS_OF_NAMESPACE_RESPONSE);
  answer.message(33, (w) =>
    w.varint(1, 7).string(2, "persistent://public/default/a").string(2, "persistent://public/default/b"),
  );
  assert.deepEqual(decodeCommand(answer.finish()), {
    type: CommandType.GET_TOPICS_OF_NAMESPACE_RESPONSE,
    requestId: 7,
    topics: ["persistent://public/default/a", "persistent://public/default/b"],
  });
});

type StandIn = Consumer & { topic: string; closed: boolean };

function standInConsumer(topic: string): StandIn {
  const c = { topic, closed: false } as StandIn;
  c.close = () => {
    c.closed = true;
    return Promise.resolve();
  };
  return c;
}

test("with a pattern, the subscribed topics follow the listing: a topic created later is subscribed, one deleted is closed; a failed listing or subscription is tried again", async () => {
  let listing = ["persistent://public/default/s-1", "persistent://public/default/x"];
  let listFailures = 1;
  let subscribeFailures = 1;
  const open = new Map<string, StandIn>();
  const events: string[] = [];
  const subs = new PulsarSubscriptions(
    {
      subscribe: (topic) => {
        if (topic.endsWith("s-2") && subscribeFailures-- > 0) return Promise.reject(new Error("not yet"));
        return Promise.resolve(standInConsumer(topic));
      },
      started: (topic, c) => open.set(topic, c as StandIn),
      stopped: async (topic, c) => {
        await c.close();
        open.delete(topic);
      },
      subscribeFailed: (topic) => events.push(`subscribe failed ${topic}`),
      listFailed: () => events.push("list failed"),
      matched: (added, removed) => events.push(`+${added.join(",")} -${removed.join(",")}`),
    },
    10,
  );
  subs.watch(
    parseTopicPattern("public/default/s-\\d+"),
    () => (listFailures-- > 0 ? Promise.reject(new Error("Pulsar away")) : Promise.resolve(listing)),
    30,
  );
  await waitFor("s-1 subscribed", () => open.has("persistent://public/default/s-1"), 2000, 5);
  assert.deepEqual([...open.keys()], ["persistent://public/default/s-1"]);
  const first = open.get("persistent://public/default/s-1");
  listing = ["persistent://public/default/s-2-partition-0", "persistent://public/default/s-2-partition-1"];
  await waitFor("s-2 subscribed", () => open.has("persistent://public/default/s-2"), 2000, 5);
  assert.deepEqual([...open.keys()], ["persistent://public/default/s-2"]);
  assert.equal(first?.closed, true, "the deleted topic's consumer is closed");
  await subs.close();
  assert.deepEqual(events, [
    "list failed",
    "+persistent://public/default/s-1 -",
    "subscribe failed persistent://public/default/s-2",
    "+persistent://public/default/s-2 -persistent://public/default/s-1",
  ]);
});

test("a topic removed while its subscribe is still on its way is closed when it comes, not started; close stops the retries", async () => {
  let resolve: ((c: Consumer) => void) | undefined;
  const started: string[] = [];
  let tries = 0;
  const subs = new PulsarSubscriptions(
    {
      subscribe: (topic) =>
        topic === "slow"
          ? new Promise<Consumer>((r) => (resolve = r))
          : (tries++, Promise.reject(new Error("never"))),
      started: (topic) => started.push(topic),
      stopped: () => Promise.resolve(),
      subscribeFailed: () => undefined,
      listFailed: () => undefined,
    },
    10,
  );
  subs.add("slow");
  subs.add("failing");
  await subs.remove("slow");
  const late = standInConsumer("slow");
  resolve?.(late);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(late.closed, true);
  assert.deepEqual(started, []);
  await subs.close();
  const after = tries;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(tries, after, "no retry after close");
});
