// The producer's reconnection state machine, driven through a stand-in for the client's lookup and
// connections (no broker: what the broker answers is scripted per attempt). Checked: once created, a
// producer retries refused credentials and permissions with back-off, says so, resends what is pending and
// comes back; a first creation with refused credentials still fails at once; a fenced producer stops; close
// stops the retries. The real broker is in test/integration/pulsar-reconnect-auth.test.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createProducer } from "../../src/pulsar/producer";
import { StandIn } from "../support/pulsar-standin";
import {
  AlreadyClosedError,
  AuthenticationError,
  AuthorizationError,
  ConnectionError,
  endsReconnection,
  fromServerError,
  ProducerFencedError,
  PulsarError,
  TimeoutError,
  TopicNotFoundError,
  TopicTerminatedError,
} from "../../src/pulsar/errors";
import type { ProducerState } from "../../src/pulsar/types";
import { UserLinks, clientFor, linkOf, type LinkState } from "../../src/nodes/pulsar-cluster";

const describe = (s: ProducerState) =>
  s.state === "reconnecting" || s.state === "failed" ? `${s.state}: ${s.reason.message}` : s.state;

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("endsReconnection: only a fenced producer, a terminated topic or a closed client end it", () => {
  for (const e of [
    new ProducerFencedError("fenced"),
    new TopicTerminatedError("terminated"),
    new AlreadyClosedError("closed"),
  ])
    assert.equal(endsReconnection(e), true, e.name);
  for (const e of [
    new AuthenticationError("token expired"),
    new AuthorizationError("not allowed to produce"),
    new TopicNotFoundError("deleted"),
    new ConnectionError("refused"),
    new TimeoutError("no answer"),
    new Error("anything else"),
  ])
    assert.equal(endsReconnection(e), false, e.name);
});

test("a created producer retries refused credentials and permissions, says so, and resends what is pending", async () => {
  const b = new StandIn();
  const states: string[] = [];
  const producer = await createProducer(b.client(), {
    topic: "t",
    batchingEnabled: false,
    onStateChange: (s) => states.push(describe(s)),
  });
  try {
    assert.equal((await sendAndAck(b, producer.send({ payload: Buffer.from("a") }), 0)).sequenceId, 0);

    // the connection drops; the broker then refuses the token twice, then the role, then takes it back
    b.script.push(
      { at: "lookup", step: new AuthenticationError("token expired") },
      { at: "lookup", step: new AuthenticationError("token expired") },
      { at: "producer", step: new AuthorizationError("role may not produce to t") },
      { at: "lookup", step: "ok" },
    );
    b.listener?.onDisconnect(new ConnectionError("connection to standin:6650 closed"));
    const written = b.written.length;
    const pending = producer.send({ payload: Buffer.from("b") });
    await until("the producer back", () => b.script.length === 0 && states.at(-1) === "connected");
    assert.deepEqual(states, [
      "reconnecting: connection to standin:6650 closed",
      "reconnecting: token expired",
      "reconnecting: role may not produce to t",
      "connected",
    ]);
    assert.ok(b.written.length > written, "the pending message was sent after the reconnection");
    b.receipt(1);
    assert.equal((await pending).sequenceId, 1);
    assert.ok(b.logs.some((l) => /^warn: .*cannot reconnect yet \(token expired\)/.test(l)));
    assert.equal(
      b.logs.filter((l) => /token expired/.test(l)).length,
      1,
      "the same reason is logged once, not at every attempt",
    );
  } finally {
    await producer.close();
  }
  assert.equal(states.at(-1), "closed");
});

test("the first creation with refused credentials fails at once (a configuration error shows)", async () => {
  const b = new StandIn();
  b.script.push({ at: "lookup", step: new AuthenticationError("token expired") });
  const started = Date.now();
  await assert.rejects(createProducer(b.client(), { topic: "t" }), AuthenticationError);
  assert.equal(b.lookups, 1, "not retried");
  assert.ok(Date.now() - started < 1000);
});

test("a producer fenced while reconnecting stops: pending sends fail with the reason", async () => {
  const b = new StandIn();
  const states: string[] = [];
  const producer = await createProducer(b.client(), {
    topic: "t",
    batchingEnabled: false,
    onStateChange: (s) => states.push(describe(s)),
  });
  try {
    b.script.push({ at: "producer", step: new ProducerFencedError("another producer took over") });
    b.listener?.onDisconnect(new ConnectionError("closed"));
    const pending = producer.send({ payload: Buffer.from("x") });
    await assert.rejects(pending, ProducerFencedError);
    assert.deepEqual(states, ["reconnecting: closed", "failed: another producer took over"]);
    await assert.rejects(producer.send({ payload: Buffer.from("y") }), ProducerFencedError);
  } finally {
    await producer.close();
  }
});

test("close stops the retries of a producer that cannot reconnect; its pending sends fail as closed", async () => {
  const b = new StandIn();
  const producer = await createProducer(b.client(), { topic: "t", batchingEnabled: false });
  const refusals = Array.from({ length: 1000 }, () => ({
    at: "lookup" as const,
    step: new AuthenticationError("identity provider unavailable"),
  }));
  b.script.push(...refusals);
  b.listener?.onDisconnect(new ConnectionError("closed"));
  const pending = producer.send({ payload: Buffer.from("x") });
  pending.catch(() => undefined);
  await until("a few attempts", () => b.lookups >= 4);
  await producer.close();
  await assert.rejects(pending, AlreadyClosedError);
  const attempts = b.lookups;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.lookups, attempts, "no attempt after close");
});

test("review 31 F9: sends that time out while the broker refuses the producer back for good reason (IncompatibleSchema) fail with that reason, not as a timeout", async () => {
  const b = new StandIn();
  const producer = await createProducer(b.client(), {
    topic: "t",
    batchingEnabled: false,
    sendTimeoutMs: 200,
  });
  try {
    b.script.push(
      ...Array.from({ length: 1000 }, () => ({
        at: "producer" as const,
        step: fromServerError(18, "the topic's schema policy refuses this schema"),
      })),
    );
    b.listener?.onDisconnect(new ConnectionError("closed"));
    await assert.rejects(
      producer.send({ payload: Buffer.from("x") }),
      (e: unknown) => e instanceof PulsarError && e.code === "IncompatibleSchema" && !e.retriable,
    );
  } finally {
    b.script.splice(0);
    await producer.close();
  }
  // a connection that is merely away still times out
  const c = new StandIn();
  const other = await createProducer(c.client(), { topic: "t", batchingEnabled: false, sendTimeoutMs: 200 });
  try {
    c.script.push(
      ...Array.from({ length: 1000 }, () => ({
        at: "lookup" as const,
        step: new ConnectionError("refused"),
      })),
    );
    c.listener?.onDisconnect(new ConnectionError("closed"));
    await assert.rejects(other.send({ payload: Buffer.from("y") }), TimeoutError);
  } finally {
    c.script.splice(0);
    await other.close();
  }
});

async function sendAndAck<T>(b: StandIn, p: Promise<T>, sequenceId: number): Promise<T> {
  await new Promise((r) => setImmediate(r));
  b.receipt(sequenceId);
  return p;
}

test("UserLinks: each user is told the worst state of its own producers, when it changes", () => {
  const links = new UserLinks();
  const told: Record<string, LinkState[]> = { a: [], b: [] };
  links.register("a", (s) => told.a.push(s));
  links.register("b", (s) => told.b.push(s));
  const a1 = links.add("a");
  const b1 = links.add("b");
  links.set("a", a1, { state: "connected" });
  links.set("b", b1, { state: "connected" });
  const a2 = links.add("a"); // a second topic: a stays connected meanwhile
  links.set("a", a2, { state: "connected" });
  links.set("a", a2, { state: "reconnecting", reason: "AuthorizationError: no permission" });
  links.set("a", a2, { state: "reconnecting", reason: "AuthorizationError: no permission" });
  links.set("a", a2, { state: "connected" });
  links.set("b", b1, { state: "error", reason: "fenced" });
  assert.deepEqual(told.a, [
    { state: "connecting" },
    { state: "connected" },
    { state: "reconnecting", reason: "AuthorizationError: no permission" },
    { state: "connected" },
  ]);
  assert.deepEqual(told.b, [
    { state: "connecting" },
    { state: "connected" },
    { state: "error", reason: "fenced" },
  ]);
  // a late registration is told the current state; a deregistered user nothing more
  const late: LinkState[] = [];
  links.register("b", (s) => late.push(s));
  assert.deepEqual(late, [{ state: "error", reason: "fenced" }]);
  links.deregister("a");
  links.set("a", a1, { state: "reconnecting", reason: "down" });
  assert.equal(told.a.length, 4);
  // a listener that throws does not stop the others
  links.register("c", () => {
    throw new Error("broken status");
  });
  assert.doesNotThrow(() => links.tell("c", { state: "error", reason: "no client" }));
});

test("clientFor: the producers a user creates are tracked from creation to close", async () => {
  const links = new UserLinks();
  const told: LinkState[] = [];
  links.register("u", (s) => told.push(s));
  let report: ((s: ProducerState) => void) | undefined;
  let released = false;
  const shared = {
    createProducer: (o: { topic: string; onStateChange?: (s: ProducerState) => void }) => {
      if (o.topic === "bad") return Promise.reject(new AuthorizationError("no"));
      report = o.onStateChange;
      return Promise.resolve({ topic: o.topic } as never);
    },
    subscribe: () => Promise.reject(new Error("unused")),
    getPartitionCount: () => Promise.resolve(0),
    getTopicsOfNamespace: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
  const client = clientFor("u", shared, links, () => {
    released = true;
    return Promise.resolve();
  });
  await assert.rejects(client.createProducer({ topic: "bad" }), AuthorizationError);
  assert.deepEqual(told, [{ state: "connecting" }], "a failed creation is reported by its caller");
  await client.createProducer({ topic: "good" });
  report?.({ state: "reconnecting", reason: new AuthenticationError("token expired") });
  report?.({ state: "connected" });
  report?.({ state: "closed" });
  assert.deepEqual(told.slice(1), [
    { state: "connecting" },
    { state: "connected" },
    { state: "reconnecting", reason: "token expired" },
    { state: "connected" },
  ]);
  await client.close();
  assert.ok(released);
  assert.equal(linkOf({ state: "failed", reason: new ProducerFencedError("f") })?.state, "error");
});
