// Token authentication against a Pulsar of this test's own started with PULSAR_AUTH=token: a valid token
// (as a value or a file) works; a wrong or missing token gives an AuthenticationError, fast.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { createClient } from "../../src/pulsar/client";
import { tokenAuth } from "../../src/pulsar/auth";
import { AuthenticationError, PulsarError } from "../../src/pulsar/errors";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";

let pulsar: OwnBrokers;

before(async () => {
  pulsar = await ownBrokers({ PULSAR_AUTH: "token" });
  await pulsar.brokers("start", "pulsar");
});

after(async () => {
  await pulsar.dispose();
});

function forgedToken(): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: "admin" })}`;
  return `${unsigned}.${createHmac("sha256", Buffer.alloc(32, 7)).update(unsigned).digest("base64url")}`;
}

test("a valid token, given as a value or as a file, is accepted: a producer publishes and a consumer (pulsar-in's) reads and acknowledges it", async () => {
  const token = await pulsar.brokers("token", "admin");
  const file = path.join(pulsar.home, "token.jwt");
  fs.writeFileSync(file, `${token}\n`);
  for (const [i, auth] of [tokenAuth({ token }), tokenAuth({ file })].entries()) {
    const client = createClient({ serviceUrl: pulsar.serviceUrl, auth });
    const topic = `persistent://public/default/secured-${i}`;
    const consumer = await client.subscribe({ topic, subscription: "in", subscriptionType: "shared" });
    const producer = await client.createProducer({ topic });
    const receipt = await producer.send({ payload: Buffer.from(`ok ${i}`) });
    assert.ok(receipt.messageId.entryId >= 0);
    const m = await consumer.receive(10_000);
    assert.equal(m.payload.toString(), `ok ${i}`);
    await consumer.acknowledge(m);
    await client.close();
  }
});

test("a wrong token or no token is refused with an AuthenticationError, without hanging", async () => {
  for (const auth of [tokenAuth({ token: forgedToken() }), undefined]) {
    const client = createClient({
      serviceUrl: pulsar.serviceUrl,
      auth,
      connectionTimeoutMs: 5000,
      operationTimeoutMs: 5000,
    });
    const started = Date.now();
    await assert.rejects(
      client.subscribe({ topic: "persistent://public/default/secured", subscription: "in" }),
      (e: unknown) => e instanceof PulsarError,
      "a consumer is refused too",
    );
    await assert.rejects(
      client.createProducer({ topic: "persistent://public/default/secured" }),
      (e: unknown) => {
        assert.ok(e instanceof PulsarError);
        assert.ok(e instanceof AuthenticationError || /authentication/i.test(e.message), e.message);
        assert.doesNotMatch(e.message, /eyJ/, "the token never appears in the error");
        return true;
      },
    );
    assert.ok(Date.now() - started < 15_000);
    await client.close();
  }
  assert.throws(() => tokenAuth({ token: " " }), /no token is set/);
});
