// TLS of the builtin Pulsar client against a real broker of this test's own (scripts/brokers.mjs with
// PULSAR_TLS=1 PULSAR_TLS_AUTH=1: AuthenticationProviderTls, a trusted client certificate required):
// - TLS client-certificate authentication: the test certificate with auth method "tls" produces and
//   consumes byte for byte (and the official CLI, authenticated the same way, reads our messages); no
//   certificate, a certificate from another CA, or the certificate without auth method "tls" are refused
//   quickly with a typed error;
// - hostname verification: a name that reaches the broker but is not in its certificate is refused with a
//   name-mismatch error; verifyHostname: false accepts it, yet still verifies the chain.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { lookup } from "node:dns/promises";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { runToolOk, uniqueName } from "../support/brokers";
import { freePort } from "../support/node-red-process";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";
import { noAuth, tlsAuth } from "../../src/pulsar/auth";
import { createClient } from "../../src/pulsar/client";
import { AuthenticationError, ConnectionError, PulsarError } from "../../src/pulsar/errors";
import type { AuthProvider, TlsOptions } from "../../src/pulsar/types";

// A refusal must come well within this (the client retries a retriable ConnectionError until
// operationTimeoutMs; a certificate failure is not retriable).
const timeouts = { connectionTimeoutMs: 3000, operationTimeoutMs: 5000 };
const FAST_MS = 15_000;

let b: OwnBrokers;
let tlsPort: number;
let ca: string;
let clientCert: string;
let clientKey: string;
let otherCa: string; // a CA that signed neither the broker's nor the test client's certificate
let otherClientCert: string; // same subject as the test client certificate, signed by otherCa
let otherClientKey: string;
let controlClientCert: string; // otherClientKey's certificate, signed by the test CA
// A name that resolves to the broker's address but is in neither the certificate's subject nor its SANs.
const MISMATCHED_HOST = "127.1";

before(async () => {
  const [pulsarTlsPort, pulsarHttpsPort] = [await freePort(), await freePort()];
  b = await ownBrokers({
    PULSAR_TLS: "1",
    PULSAR_TLS_AUTH: "1",
    PULSAR_TLS_PORT: String(pulsarTlsPort),
    PULSAR_HTTPS_PORT: String(pulsarHttpsPort),
  });
  await b.brokers("start", "pulsar");
  const env = Object.fromEntries(
    (await b.brokers("env"))
      .split("\n")
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  assert.equal(env.PULSAR_TLS_AUTH, "1");
  assert.equal(env.PULSAR_TLS_URL, `pulsar+ssl://127.0.0.1:${pulsarTlsPort}`);
  tlsPort = pulsarTlsPort;
  const certs = env.BROKERS_CERTS ?? "";
  const pem = (name: string) => fs.readFileSync(path.join(certs, name), "utf8");
  ca = pem("ca.pem");
  clientCert = pem("client.pem");
  clientKey = pem("client-key.pem");

  // The mismatched name must really reach the broker and really be absent from its certificate.
  const server = new X509Certificate(pem("server.pem"));
  assert.equal(server.subjectAltName, "IP Address:127.0.0.1, DNS:localhost");
  assert.equal(server.subject, "CN=localhost");
  assert.equal(server.checkHost(MISMATCHED_HOST), undefined);
  assert.equal(net.isIP(MISMATCHED_HOST), 0, "connected to as a name, not as an IP literal");
  assert.equal((await lookup(MISMATCHED_HOST, { family: 4 })).address, "127.0.0.1");

  // Another CA, and a client certificate it signed with the same subject as the trusted one; the same
  // request signed the same way by the test CA is the control (accepted), so only the issuer differs.
  const other = path.join(b.home, "other-ca");
  fs.mkdirSync(other);
  const openssl = (...args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: other, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  };
  openssl(
    ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=some other CA"],
    ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
    ...["-keyout", "ca-key.pem", "-out", "ca.pem"],
  );
  openssl(
    ...["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=bridge-client"],
    ...["-keyout", "client-key.pem", "-out", "client.csr"],
  );
  fs.writeFileSync(path.join(other, "client.ext"), "extendedKeyUsage=clientAuth\n");
  const sign = (caDir: string, serial: string, out: string) =>
    openssl(
      ...["x509", "-req", "-sha256", "-days", "2", "-in", "client.csr", "-extfile", "client.ext"],
      ...["-CA", path.join(caDir, "ca.pem"), "-CAkey", path.join(caDir, "ca-key.pem")],
      ...["-set_serial", serial, "-out", out],
    );
  sign(other, "0x01", "client.pem");
  sign(certs, "0x02", "control.pem");
  const read = (name: string) => fs.readFileSync(path.join(other, name), "utf8");
  otherCa = read("ca.pem");
  otherClientCert = read("client.pem");
  otherClientKey = read("client-key.pem");
  controlClientCert = read("control.pem");
  assert.equal(new X509Certificate(otherClientCert).subject, new X509Certificate(clientCert).subject);
  assert.equal(new X509Certificate(otherClientCert).issuer, "CN=some other CA");
});

after(async () => {
  await b?.dispose();
});

const withCert = (extra: TlsOptions = {}): TlsOptions => ({
  trustCertsPem: ca,
  certPem: clientCert,
  keyPem: clientKey,
  ...extra,
});

/** Produces the payloads to a new topic with the given client settings and reads them back with the same. */
async function roundTrip(
  host: string,
  tls: TlsOptions,
  auth: AuthProvider,
  payloads: Buffer[],
): Promise<string> {
  const topic = `persistent://public/default/${uniqueName("pulsar-tls")}`;
  const client = createClient({ serviceUrl: `pulsar+ssl://${host}:${tlsPort}`, tls, auth, ...timeouts });
  try {
    const consumer = await client.subscribe({ topic, subscription: "check", initialPosition: "earliest" });
    const producer = await client.createProducer({ topic });
    await Promise.all(payloads.map((payload) => producer.send({ payload })));
    for (const [i, payload] of payloads.entries()) {
      const msg = await consumer.receive(15_000);
      assert.ok(msg.payload.equals(payload), `message ${i} arrived byte for byte`);
      await consumer.acknowledge(msg);
    }
    await producer.close();
    await consumer.close();
  } finally {
    await client.close();
  }
  return topic;
}

/** The error of a producer creation that must fail, and how long it took. */
async function refusal(host: string, tls: TlsOptions, auth: AuthProvider): Promise<PulsarError> {
  const client = createClient({ serviceUrl: `pulsar+ssl://${host}:${tlsPort}`, tls, auth, ...timeouts });
  const started = Date.now();
  try {
    await client.createProducer({ topic: `persistent://public/default/${uniqueName("refused")}` });
  } catch (err) {
    const took = Date.now() - started;
    assert.ok(took < FAST_MS, `refused in ${took} ms, not after a hang`);
    assert.ok(err instanceof PulsarError, `a typed error, not ${String(err)}`);
    return err;
  } finally {
    await client.close();
  }
  assert.fail(`the connection to ${host} was accepted`);
}

test("client certificate + auth 'tls': produce and consume byte for byte; the official CLI (AuthenticationTls) reads our messages", async () => {
  const binary = [
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    randomBytes(64 * 1024),
    Buffer.alloc(0),
  ];
  await roundTrip("127.0.0.1", withCert(), tlsAuth(), binary);

  const texts = Array.from({ length: 5 }, (_, i) => `over TLS with a client certificate #${i}`);
  const topic = await roundTrip(
    "127.0.0.1",
    withCert(),
    tlsAuth(),
    texts.map((t) => Buffer.from(t, "utf8")),
  );
  // client.conf of PULSAR_TLS_AUTH: pulsar+ssl:// with the test certificate and AuthenticationTls
  const r = await runToolOk(
    "pulsar-client",
    ["consume", "-s", "cli", "-p", "Earliest", "-n", String(texts.length), topic],
    { env: b.env, timeoutMs: 120_000 },
  );
  const contents = r.stdout
    .split("\n")
    .map((line) => /^publishTime:\[\d+\], .*, content:(.*)$/.exec(line)?.[1])
    .filter((c) => c !== undefined);
  assert.deepEqual(contents, texts, r.stdout);
});

test("no client certificate: refused at the TLS handshake with a ConnectionError, fast", async () => {
  const err = await refusal("127.0.0.1", { trustCertsPem: ca }, tlsAuth());
  assert.ok(err instanceof ConnectionError, `${err.name}: ${err.message}`);
  assert.match(err.message, /certificate required/);
  assert.equal(
    err.retriable,
    false,
    "a certificate failure is final: no retrying until the operation timeout",
  );
});

test("a client certificate signed by another CA: refused at the TLS handshake with a ConnectionError, fast", async () => {
  const err = await refusal(
    "127.0.0.1",
    { trustCertsPem: ca, certPem: otherClientCert, keyPem: otherClientKey },
    tlsAuth(),
  );
  assert.ok(err instanceof ConnectionError, `${err.name}: ${err.message}`);
  // The broker (netty-tcnative) answers a certificate it cannot chain with alert 80, "internal error"; its
  // log says "unable to find valid certification path".
  assert.match(err.message, /alert (internal error|unknown ca|bad certificate|certificate unknown)/);
  // control: the same key and request, signed by the test CA, is accepted
  await roundTrip(
    "127.0.0.1",
    { trustCertsPem: ca, certPem: controlClientCert, keyPem: otherClientKey },
    tlsAuth(),
    [Buffer.from("control")],
  );
});

test("the trusted certificate without auth method 'tls': the broker refuses CONNECT with an AuthenticationError", async () => {
  const err = await refusal("127.0.0.1", withCert(), noAuth());
  assert.ok(err instanceof AuthenticationError, `${err.name}: ${err.message}`);
  assert.equal(err.retriable, false);
});

test("hostname verification: a name not in the broker's certificate is refused with a name-mismatch error; the certificate's names are accepted", async () => {
  const err = await refusal(MISMATCHED_HOST, withCert(), tlsAuth());
  assert.ok(err instanceof ConnectionError, `${err.name}: ${err.message}`);
  assert.match(err.message, /does not match certificate's altnames/);
  assert.ok(err.message.includes(`Host: ${MISMATCHED_HOST}.`), err.message);
  assert.ok(err.message.includes("IP Address:127.0.0.1, DNS:localhost"), err.message);
  assert.equal(err.retriable, false);
  // the names the certificate does carry (127.0.0.1 is in the first test)
  await roundTrip("localhost", withCert(), tlsAuth(), [Buffer.from("by name")]);
});

test("verifyHostname: false accepts the mismatched name, but still refuses a certificate chain it does not trust", async () => {
  await roundTrip(MISMATCHED_HOST, withCert({ verifyHostname: false }), tlsAuth(), [
    Buffer.from("name check off"),
    randomBytes(1000),
  ]);
  const err = await refusal(
    MISMATCHED_HOST,
    withCert({ verifyHostname: false, trustCertsPem: otherCa }),
    tlsAuth(),
  );
  assert.ok(err instanceof ConnectionError, `${err.name}: ${err.message}`);
  assert.match(
    err.message,
    /unable to verify the first certificate|self[- ]signed|unable to get local issuer/,
  );
  assert.equal(err.retriable, false);
});
