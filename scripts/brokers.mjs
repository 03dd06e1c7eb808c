#!/usr/bin/env node
// Local Apache Kafka (KRaft, one node), Apache Pulsar (standalone) and a schema registry (Apicurio Registry,
// in memory, its Confluent-compatible API at REGISTRY_URL) for development and tests, resolved from Maven
// Central with `mvn` and started without docker.
//
//   node scripts/brokers.mjs start [kafka|pulsar|registry]   start (no-op for one already running)
//   node scripts/brokers.mjs stop [kafka|pulsar|registry]    stop what this script started (by pid)
//   node scripts/brokers.mjs status                 one line per broker; exit 0 when all are ready
//   node scripts/brokers.mjs fetch                  download and unpack only
//   node scripts/brokers.mjs env                    the settings in effect, as shell assignments
//   node scripts/brokers.mjs kafka-tool <tool|class> [args...]   an official Kafka CLI tool
//   node scripts/brokers.mjs pulsar-client|pulsar-admin|pulsar-perf [args...]   official Pulsar CLI
//   node scripts/brokers.mjs token [role]           a JWT for the token-auth broker (PULSAR_AUTH=token)
//   node scripts/brokers.mjs certs                  folder of the test CA and certificates (made once)
//
// Secured brokers (off by default): KAFKA_SECURITY=sasl-ssl-mtls adds to Kafka a SASL_SSL listener with
// SCRAM-SHA-512 (user "bridge", password in BROKERS_HOME/kafka-scram-password), SCRAM-SHA-256 (user
// "bridge-sha256", kafka-scram-sha256-password) and PLAIN (user "bridge-plain", kafka-plain-password), and
// an SSL listener that requires a client certificate; PULSAR_TLS=1 adds Pulsar's TLS ports.
// Certificates: BROKERS_HOME/certs.
// KAFKA_OAUTH=1 adds a SASL_PLAINTEXT listener with OAUTHBEARER, validated by Kafka's built-in unsecured JWS
// validator (tokens with "alg":"none", a "sub" and an "exp" claim), on KAFKA_OAUTH_PORT (9096).
// PULSAR_TLS_AUTH=1 (with PULSAR_TLS=1) makes Pulsar require TLS client authentication
// (AuthenticationProviderTls): a client must show a certificate signed by the test CA (certs/client.pem,
// role "bridge-client") in the TLS handshake and send auth method "tls" in CONNECT, so the plain ports refuse
// every client; the admin API then answers on https only, and the CLI tools (client.conf) go over
// pulsar+ssl:// and https:// with that certificate.
// PULSAR_AUTH_REFRESH_S=<s> sets Pulsar's authenticationRefreshCheckSeconds (how often the broker checks
// for expired credentials and sends AUTH_CHALLENGE); Pulsar's own default when unset.
//
// Settings (environment): see SETTINGS below.
import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const env = process.env;

export const SETTINGS = {
  kafkaVersion: env.KAFKA_VERSION || "4.1.1",
  pulsarVersion: env.PULSAR_VERSION || "4.0.8",
  // downloads and unpacked distributions: shared by every clone on the machine
  cacheDir: path.resolve(
    env.BROKERS_CACHE || path.join(os.homedir(), ".cache", "node-red-contrib-kafka-pulsar"),
  ),
  // data, logs, pid files of the running brokers: per clone
  home: path.resolve(env.BROKERS_HOME || path.join(ROOT, ".brokers")),
  host: "127.0.0.1",
  // The address clients are told to connect to (Kafka's advertised listener, Pulsar's advertised address).
  // Another loopback address (127.0.0.2) lets a test put a TCP proxy it controls between clients and broker.
  advertisedHost: env.BROKERS_ADVERTISED_HOST || "127.0.0.1",
  kafkaPort: Number(env.KAFKA_PORT || 9092),
  kafkaControllerPort: Number(env.KAFKA_CONTROLLER_PORT || 9093),
  pulsarPort: Number(env.PULSAR_PORT || 6650),
  pulsarHttpPort: Number(env.PULSAR_HTTP_PORT || 8080),
  pulsarAuth: env.PULSAR_AUTH || "none", // none | token
  pulsarDedup: env.PULSAR_DEDUP === "1" || env.PULSAR_DEDUP === "true",
  // none | sasl-ssl-mtls: Kafka also listens with SASL_SSL (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN) and with
  // SSL + client certificates
  kafkaSecurity: env.KAFKA_SECURITY || "none",
  kafkaSaslSslPort: Number(env.KAFKA_SASL_SSL_PORT || 9094),
  kafkaMtlsPort: Number(env.KAFKA_MTLS_PORT || 9095),
  // Pulsar also listens with TLS (pulsar+ssl://, https://)
  pulsarTls: env.PULSAR_TLS === "1" || env.PULSAR_TLS === "true",
  pulsarTlsPort: Number(env.PULSAR_TLS_PORT || 6651),
  pulsarHttpsPort: Number(env.PULSAR_HTTPS_PORT || 8443),
  // with pulsarTls: clients must authenticate with a certificate (AuthenticationProviderTls)
  pulsarTlsAuth: env.PULSAR_TLS_AUTH === "1" || env.PULSAR_TLS_AUTH === "true",
  // Kafka also listens with SASL_PLAINTEXT + OAUTHBEARER (unsecured JWS validator)
  kafkaOauth: env.KAFKA_OAUTH === "1" || env.KAFKA_OAUTH === "true",
  kafkaOauthPort: Number(env.KAFKA_OAUTH_PORT || 9096),
  // Pulsar's authenticationRefreshCheckSeconds; undefined: Pulsar's default
  pulsarAuthRefreshS: env.PULSAR_AUTH_REFRESH_S || undefined,
  kafkaHeap: env.KAFKA_HEAP_OPTS || "-Xms256m -Xmx768m",
  pulsarMem: env.PULSAR_MEM || "-Xms512m -Xmx1g -XX:MaxDirectMemorySize=1g",
  kafkaTimeoutS: Number(env.KAFKA_START_TIMEOUT || 120),
  pulsarTimeoutS: Number(env.PULSAR_START_TIMEOUT || 300),
  keepData: env.BROKERS_KEEP_DATA === "1",
  // Apicurio Registry (Java 21+: REGISTRY_JAVA_HOME, or a JDK 21 or later under /usr/lib/jvm)
  registryVersion: env.REGISTRY_VERSION || "3.3.3",
  registryPort: Number(env.REGISTRY_PORT || 8081),
  // Quarkus's management interface (health, metrics): bound to loopback too
  registryManagementPort: Number(env.REGISTRY_MANAGEMENT_PORT || 8082),
  registryHeap: env.REGISTRY_HEAP_OPTS || "-Xmx384m",
  registryTimeoutS: Number(env.REGISTRY_START_TIMEOUT || 120),
  // the Java serializers tests write registry records with (Apicurio serdes in Confluent-compatible mode)
  serdesVersion: env.SERDES_VERSION || "2.6.13.Final",
  // Google's protoc, the tests' Protobuf encoder
  protocVersion: env.PROTOC_VERSION || "4.36.2",
};

const S = SETTINGS;
// Where the Kafka classpath is resolved (libs/; ready once it holds a READY file).
export const kafkaDist = () => path.join(S.cacheDir, `kafka-${S.kafkaVersion}`);
// Where the Pulsar distribution is unpacked (ready once it holds a READY file).
export const pulsarDist = () => path.join(S.cacheDir, `apache-pulsar-${S.pulsarVersion}`);
const kafkaHome = () => path.join(S.home, "kafka");
const registryDist = () => path.join(S.cacheDir, `apicurio-registry-${S.registryVersion}`);
const registryHome = () => path.join(S.home, "registry");
export const registryUrl = () => `http://${S.host}:${S.registryPort}/apis/ccompat/v7`;
const pulsarHome = () => path.join(S.home, "pulsar");

function log(...args) {
  console.error("[brokers]", ...args);
}

class BrokerError extends Error {}

// ---------------------------------------------------------------- Java and Maven

// A JDK 17 (bin/pulsar refuses other versions): BROKERS_JAVA_HOME, a JAVA_HOME that is 17, one under
// /usr/lib/jvm, or the java on PATH.
export function javaHome() {
  const is17 = (home) => {
    const r = spawnSync(path.join(home, "bin", "java"), ["-version"], { encoding: "utf8" });
    return r.status === 0 && /version "17[."]/.test(r.stderr);
  };
  if (env.BROKERS_JAVA_HOME) return env.BROKERS_JAVA_HOME;
  if (env.JAVA_HOME && is17(env.JAVA_HOME)) return env.JAVA_HOME;
  const jvm = "/usr/lib/jvm";
  if (fs.existsSync(jvm)) {
    for (const d of fs.readdirSync(jvm).sort()) {
      const home = path.join(jvm, d);
      if (/17/.test(d) && fs.existsSync(path.join(home, "bin", "java")) && is17(home)) return home;
    }
  }
  const which = spawnSync("sh", ["-c", 'readlink -f "$(command -v java)"'], { encoding: "utf8" });
  if (which.status === 0 && which.stdout.trim()) return path.resolve(which.stdout.trim(), "..", "..");
  throw new BrokerError("no Java found: install a JDK 17 or set BROKERS_JAVA_HOME");
}

function dirSize(dir) {
  let total = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? dirSize(p) : (fs.statSync(p, { throwIfNoEntry: false })?.size ?? 0);
  }
  return total;
}

// Runs mvn, streaming its "Downloading/Downloaded" lines; `watch` is a folder whose growth is reported
// every few seconds so that a single large download shows progress too.
async function mvn(args, watch, expectedMb) {
  const child = spawn("mvn", ["-B", "--no-transfer-progress", "-Dstyle.color=never", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const onData = (d) => {
    out += d;
    for (const line of String(d).split("\n")) {
      if (/Downloaded from|BUILD|ERROR/.test(line)) log("mvn:", line.trim());
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const started = Date.now();
  const timer = watch
    ? setInterval(() => {
        const mb = (dirSize(watch) / 1048576).toFixed(0);
        log(
          `downloading… ${mb}${expectedMb ? ` / ~${expectedMb}` : ""} MB (${((Date.now() - started) / 1000).toFixed(0)} s)`,
        );
      }, 5000)
    : undefined;
  const code = await new Promise((resolve) => child.on("close", resolve));
  if (timer) clearInterval(timer);
  if (code !== 0)
    throw new BrokerError(
      `mvn ${args.join(" ")} failed (exit ${code}):\n${out.split("\n").slice(-30).join("\n")}`,
    );
}

function m2Repo() {
  return path.join(os.homedir(), ".m2", "repository");
}

// ---------------------------------------------------------------- fetch

async function fetchKafka() {
  const dist = kafkaDist();
  if (fs.existsSync(path.join(dist, "READY"))) return dist;
  log(`resolving Apache Kafka ${S.kafkaVersion} (broker, tools, logging) with mvn into ${dist}`);
  const tmp = `${dist}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  await mvn(
    [
      "-f",
      path.join(ROOT, "scripts", "brokers", "kafka-pom.xml"),
      `-Dkafka.version=${S.kafkaVersion}`,
      "dependency:copy-dependencies",
      "-DincludeScope=runtime",
      `-DoutputDirectory=${path.join(tmp, "libs")}`,
    ],
    path.join(m2Repo(), "org", "apache", "kafka"),
  );
  fs.writeFileSync(path.join(tmp, "READY"), `${new Date().toISOString()}\n`);
  fs.rmSync(dist, { recursive: true, force: true });
  fs.renameSync(tmp, dist);
  return dist;
}

async function fetchPulsar() {
  const dist = pulsarDist();
  if (fs.existsSync(path.join(dist, "READY"))) return dist;
  log(`resolving the Apache Pulsar ${S.pulsarVersion} distribution (~240 MB on first use) with mvn`);
  const dl = path.join(S.cacheDir, `download-pulsar-${process.pid}`);
  fs.rmSync(dl, { recursive: true, force: true });
  try {
    await mvn(
      [
        "-f",
        path.join(ROOT, "scripts", "brokers", "pulsar-pom.xml"),
        `-Dpulsar.version=${S.pulsarVersion}`,
        "dependency:copy-dependencies",
        `-DoutputDirectory=${dl}`,
      ],
      path.join(m2Repo(), "org", "apache", "pulsar", "pulsar-server-distribution", S.pulsarVersion),
      240,
    );
  } catch (err) {
    fs.rmSync(dl, { recursive: true, force: true });
    throw err;
  }
  const tarball = fs.readdirSync(dl).find((f) => f.endsWith(".tar.gz"));
  if (!tarball) throw new BrokerError(`mvn produced no tarball in ${dl}`);
  const tmp = `${dist}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  log(`unpacking ${tarball}`);
  const r = spawnSync("tar", ["xzf", path.join(dl, tarball), "-C", tmp, "--strip-components=1"], {
    stdio: "inherit",
  });
  if (r.status !== 0) throw new BrokerError(`tar failed on ${tarball}`);
  fs.rmSync(dl, { recursive: true, force: true });
  fs.writeFileSync(path.join(tmp, "READY"), `${new Date().toISOString()}\n`);
  fs.rmSync(dist, { recursive: true, force: true });
  fs.renameSync(tmp, dist);
  return dist;
}

// Resolves `pom` into a folder of the cache (ready once it holds a READY file) and lets `finish` shape it.
async function fetchInto(dist, what, pom, props, watch, expectedMb, finish) {
  if (fs.existsSync(path.join(dist, "READY"))) return dist;
  log(`resolving ${what} with mvn into ${dist}`);
  const tmp = `${dist}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    await mvn(
      [
        "-f",
        path.join(ROOT, "scripts", "brokers", pom),
        ...props,
        "dependency:copy-dependencies",
        `-DoutputDirectory=${path.join(tmp, "download")}`,
      ],
      watch,
      expectedMb,
    );
    finish?.(tmp);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  fs.writeFileSync(path.join(tmp, "READY"), `${new Date().toISOString()}\n`);
  fs.rmSync(dist, { recursive: true, force: true });
  fs.renameSync(tmp, dist);
  return dist;
}

function fetchRegistry() {
  return fetchInto(
    registryDist(),
    `Apicurio Registry ${S.registryVersion} (~160 MB on first use)`,
    "registry-pom.xml",
    [`-Dregistry.version=${S.registryVersion}`],
    path.join(m2Repo(), "io", "apicurio", "apicurio-registry-app"),
    160,
    (tmp) => {
      const dl = path.join(tmp, "download");
      const tarball = fs.readdirSync(dl).find((f) => f.endsWith(".tar.gz"));
      if (!tarball) throw new BrokerError(`mvn produced no tarball in ${dl}`);
      const r = spawnSync("tar", ["xzf", path.join(dl, tarball), "-C", tmp], { stdio: "inherit" });
      if (r.status !== 0) throw new BrokerError(`tar failed on ${tarball}`);
      fs.rmSync(dl, { recursive: true, force: true });
      if (!fs.existsSync(path.join(tmp, "quarkus-run.jar")))
        throw new BrokerError(`${tarball} holds no quarkus-run.jar`);
    },
  );
}

/** The classpath (a folder of jars, as "dir/*") of the Java serializers tests write registry records with. */
export async function serdesClasspath() {
  const dist = await fetchInto(
    path.join(S.cacheDir, `apicurio-serdes-${S.serdesVersion}`),
    `Apicurio's serializers ${S.serdesVersion}`,
    "serdes-pom.xml",
    [`-Dserdes.version=${S.serdesVersion}`],
    path.join(m2Repo(), "io", "apicurio"),
  );
  return path.join(dist, "download", "*");
}

/** The path of Google's protoc (from Maven Central, for this machine's platform), the tests' Protobuf encoder. */
export async function protocPath() {
  const arch = { x64: "x86_64", arm64: "aarch_64" }[process.arch];
  if (process.platform !== "linux" || !arch)
    throw new BrokerError(`no protoc for ${process.platform}/${process.arch} is fetched here`);
  const dist = await fetchInto(
    path.join(S.cacheDir, `protoc-${S.protocVersion}-${arch}`),
    `protoc ${S.protocVersion}`,
    "protoc-pom.xml",
    [`-Dprotoc.version=${S.protocVersion}`, `-Dprotoc.classifier=linux-${arch}`],
    undefined,
    undefined,
    (tmp) => {
      const dl = path.join(tmp, "download");
      const exe = fs.readdirSync(dl).find((f) => f.endsWith(".exe"));
      if (!exe) throw new BrokerError(`mvn produced no protoc in ${dl}`);
      fs.renameSync(path.join(dl, exe), path.join(tmp, "protoc"));
      fs.chmodSync(path.join(tmp, "protoc"), 0o755);
      fs.rmSync(dl, { recursive: true, force: true });
    },
  );
  return path.join(dist, "protoc");
}

// ---------------------------------------------------------------- processes

function readPid(file) {
  try {
    const pid = Number(fs.readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid) {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function tcpOpen(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: S.host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

function tail(file, lines = 60) {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return `(no log at ${file})`;
  }
}

// Starts `command` in its own process group with output to `logFile`, records the pid.
function launch(command, args, { cwd, logFile, pidFile, extraEnv }) {
  const fd = fs.openSync(logFile, "a");
  const child = spawn(command, args, {
    cwd,
    env: { ...env, ...extraEnv },
    detached: true,
    stdio: ["ignore", fd, fd],
  });
  fs.closeSync(fd);
  fs.writeFileSync(pidFile, `${child.pid}\n`);
  child.unref();
  return child.pid;
}

async function stopPid(name, pidFile, graceMs = 30000) {
  const pid = readPid(pidFile);
  if (!alive(pid)) {
    fs.rmSync(pidFile, { force: true });
    log(`${name}: not running (nothing started by this script)`);
    return;
  }
  log(`${name}: stopping pid ${pid}`);
  const signalGroup = (sig) => {
    try {
      process.kill(-pid, sig); // the whole group this script created, nothing else
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  signalGroup("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(250);
  if (alive(pid)) {
    log(`${name}: still running after ${graceMs / 1000} s, killing`);
    signalGroup("SIGKILL");
    while (alive(pid)) await sleep(100);
  }
  fs.rmSync(pidFile, { force: true });
  log(`${name}: stopped`);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------- certificates and SCRAM (secured brokers)

const certsDir = () => path.join(S.home, "certs");
export const SCRAM_USER = "bridge";

function openssl(args, cwd) {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.error)
    throw new BrokerError(`openssl could not run (${r.error.message}); it makes the test certificates`);
  if (r.status !== 0) throw new BrokerError(`openssl ${args.slice(0, 2).join(" ")} failed:\n${r.stderr}`);
}

// A test CA, a server certificate (127.0.0.1, localhost) and a client certificate, as PEM files made once
// per BROKERS_HOME: ca.pem, server.pem, client.pem; unencrypted PKCS#8 keys in *-key.pem; *-keystore.pem
// holds key and certificate together (Kafka's PEM key store).
export function ensureCerts() {
  const dir = certsDir();
  if (fs.existsSync(path.join(dir, "READY"))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
  const days = "3650";
  openssl(
    [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", days],
      ...["-subj", "/CN=node-red-contrib-kafka-pulsar test CA", "-keyout", "ca-key.pem", "-out", "ca.pem"],
      ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ],
    tmp,
  );
  const leaf = (name, cn, ext) => {
    const file = (suffix) => path.join(tmp, `${name}${suffix}`);
    fs.writeFileSync(file(".ext"), ext);
    openssl(
      [
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        `/CN=${cn}`,
        "-keyout",
        `${name}-key.pem`,
        "-out",
        `${name}.csr`,
      ],
      tmp,
    );
    openssl(
      [
        ...[
          "x509",
          "-req",
          "-sha256",
          "-days",
          days,
          "-in",
          `${name}.csr`,
          "-CA",
          "ca.pem",
          "-CAkey",
          "ca-key.pem",
        ],
        ...[
          "-set_serial",
          `0x${randomBytes(8).toString("hex")}`,
          "-extfile",
          `${name}.ext`,
          "-out",
          `${name}.pem`,
        ],
      ],
      tmp,
    );
    fs.writeFileSync(
      file("-keystore.pem"),
      fs.readFileSync(file("-key.pem"), "utf8") + fs.readFileSync(file(".pem"), "utf8"),
      {
        mode: 0o600,
      },
    );
    fs.rmSync(file(".csr"));
    fs.rmSync(file(".ext"));
  };
  const sans = ["IP:127.0.0.1", "DNS:localhost"];
  if (S.advertisedHost !== S.host)
    sans.push(net.isIP(S.advertisedHost) ? `IP:${S.advertisedHost}` : `DNS:${S.advertisedHost}`);
  const usage = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n";
  leaf("server", "localhost", `${usage}extendedKeyUsage=serverAuth\nsubjectAltName=${sans.join(",")}\n`);
  leaf("client", "bridge-client", `${usage}extendedKeyUsage=clientAuth\n`);
  fs.writeFileSync(path.join(tmp, "READY"), `${new Date().toISOString()}\n`);
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    // another start made them meanwhile: keep those
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(path.join(dir, "READY"))) throw err;
  }
  return dir;
}

// The users of the SASL_SSL listener, one per mechanism: a user exists for its own mechanism only, so a
// client that authenticated with another mechanism than the one it was configured for is refused.
export const KAFKA_SASL_USERS = {
  "SCRAM-SHA-512": { user: SCRAM_USER, passwordFile: "kafka-scram-password" },
  "SCRAM-SHA-256": { user: "bridge-sha256", passwordFile: "kafka-scram-sha256-password" },
  PLAIN: { user: "bridge-plain", passwordFile: "kafka-plain-password" },
};

// The password of a SASL user (KAFKA_SASL_USERS), made once per BROKERS_HOME; base64url, so it needs no
// quoting in a JAAS option or in kafka-storage's --add-scram.
export function saslPassword(mechanism) {
  const file = path.join(S.home, KAFKA_SASL_USERS[mechanism].passwordFile);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(S.home, { recursive: true });
    fs.writeFileSync(file, `${randomBytes(18).toString("base64url")}\n`, { mode: 0o600 });
  }
  return fs.readFileSync(file, "utf8").trim();
}

// The SCRAM-SHA-512 password of user "bridge".
export function scramPassword() {
  return saslPassword("SCRAM-SHA-512");
}

// A KRaft cluster id: 16 random bytes in base64url, as Kafka's own Uuid. Like Kafka's, it never starts
// with "-": kafka-storage would read such an id after -t as an option and fail (1 start in 64).
export function kafkaClusterId() {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

// kafka-storage format arguments that write the SCRAM users into the metadata log.
function kafkaScramUserArgs() {
  if (!kafkaSecured()) return [];
  return ["SCRAM-SHA-512", "SCRAM-SHA-256"].flatMap((m) => [
    "--add-scram",
    `${m}=[name=${KAFKA_SASL_USERS[m].user},password=${saslPassword(m)}]`,
  ]);
}

function kafkaSecured() {
  if (S.kafkaSecurity === "none") return false;
  if (S.kafkaSecurity === "sasl-ssl-mtls") return true;
  throw new BrokerError(`KAFKA_SECURITY must be none or sasl-ssl-mtls, not ${S.kafkaSecurity}`);
}

const KAFKA_SASL_SSL_MECHANISMS = "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN";

// The listeners KAFKA_SECURITY adds (nothing by default); inter-broker and controller traffic stays PLAINTEXT.
function kafkaSecureListeners() {
  if (!kafkaSecured()) return { listeners: "", advertised: "", map: "", properties: [] };
  const dir = ensureCerts();
  const [h, a] = [S.host, S.advertisedHost];
  return {
    listeners: `,SASL_SSL://${h}:${S.kafkaSaslSslPort},MTLS://${h}:${S.kafkaMtlsPort}`,
    advertised: `,SASL_SSL://${a}:${S.kafkaSaslSslPort},MTLS://${a}:${S.kafkaMtlsPort}`,
    map: ",SASL_SSL:SASL_SSL,MTLS:SSL",
    properties: [
      `sasl.enabled.mechanisms=${KAFKA_SASL_SSL_MECHANISMS}`,
      `listener.name.sasl_ssl.sasl.enabled.mechanisms=${KAFKA_SASL_SSL_MECHANISMS}`,
      "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
      "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
      // PLAIN checks against the user_<name> entries of its JAAS config (Kafka hides the value in its log)
      `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${KAFKA_SASL_USERS.PLAIN.user}="${saslPassword("PLAIN")}";`,
      "listener.name.sasl_ssl.ssl.client.auth=none",
      "listener.name.mtls.ssl.client.auth=required",
      "ssl.keystore.type=PEM",
      `ssl.keystore.location=${path.join(dir, "server-keystore.pem")}`,
      "ssl.truststore.type=PEM",
      `ssl.truststore.location=${path.join(dir, "ca.pem")}`,
    ],
  };
}

// The listener KAFKA_OAUTH adds (nothing by default): SASL_PLAINTEXT with OAUTHBEARER only, its tokens checked
// by Kafka's unsecured JWS validator (no signature; "sub" and "exp" required). The broker's own login on
// this listener (never used: inter-broker traffic stays PLAINTEXT) gets an unsecured token for "kafka".
const KAFKA_OAUTH_VALIDATOR =
  "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";
const KAFKA_OAUTH_LOGIN =
  "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredLoginCallbackHandler";

function kafkaOauthListener() {
  if (!S.kafkaOauth) return { listeners: "", advertised: "", map: "", properties: [] };
  return {
    listeners: `,OAUTH://${S.host}:${S.kafkaOauthPort}`,
    advertised: `,OAUTH://${S.advertisedHost}:${S.kafkaOauthPort}`,
    map: ",OAUTH:SASL_PLAINTEXT",
    properties: [
      "listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER",
      'listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="kafka";',
      `listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=${KAFKA_OAUTH_VALIDATOR}`,
      `listener.name.oauth.oauthbearer.sasl.login.callback.handler.class=${KAFKA_OAUTH_LOGIN}`,
    ],
  };
}

// ---------------------------------------------------------------- Kafka

const KAFKA_LOG4J = `status = warn
name = kafka
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
`;

const KAFKA_TOOLS_LOG4J = `status = warn
name = kafka-tools
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
`;

function kafkaServerProperties(dataDir) {
  const h = S.host;
  const sec = kafkaSecureListeners();
  const oauth = kafkaOauthListener();
  return [
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.bootstrap.servers=${h}:${S.kafkaControllerPort}`,
    `listeners=PLAINTEXT://${h}:${S.kafkaPort},CONTROLLER://${h}:${S.kafkaControllerPort}${sec.listeners}${oauth.listeners}`,
    `advertised.listeners=PLAINTEXT://${S.advertisedHost}:${S.kafkaPort},CONTROLLER://${h}:${S.kafkaControllerPort}${sec.advertised}${oauth.advertised}`,
    "inter.broker.listener.name=PLAINTEXT",
    "controller.listener.names=CONTROLLER",
    `listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT${sec.map}${oauth.map}`,
    `log.dirs=${dataDir}`,
    // one node: every internal topic with one replica
    "offsets.topic.replication.factor=1",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "share.coordinator.state.topic.replication.factor=1",
    "share.coordinator.state.topic.min.isr=1",
    "min.insync.replicas=1",
    "num.partitions=1",
    "auto.create.topics.enable=true",
    // tests: join groups at once, small internal topics, threads for 2 cores
    "group.initial.rebalance.delay.ms=0",
    "offsets.topic.num.partitions=1",
    "transaction.state.log.num.partitions=1",
    "share.coordinator.state.topic.num.partitions=1",
    "num.network.threads=2",
    "num.io.threads=4",
    "background.threads=4",
    "num.recovery.threads.per.data.dir=1",
    "log.cleaner.threads=1",
    "log.segment.bytes=67108864",
    ...sec.properties,
    ...oauth.properties,
    "",
  ].join("\n");
}

function kafkaJava(dist, mainClass, args, heap, log4jFile) {
  const tmp = path.join(S.home, "tmp");
  fs.mkdirSync(tmp, { recursive: true });
  return [
    path.join(javaHome(), "bin", "java"),
    [
      ...heap.split(/\s+/).filter(Boolean),
      "-XX:+UseG1GC",
      "-Djava.awt.headless=true",
      `-Djava.io.tmpdir=${tmp}`, // zstd-jni and snappy unpack their .so files here
      `-Dlog4j2.configurationFile=${log4jFile}`,
      "-cp",
      path.join(dist, "libs", "*"),
      mainClass,
      ...args,
    ],
  ];
}

async function kafkaReady() {
  if (!(await tcpOpen(S.kafkaPort))) return false;
  if (kafkaSecured() && !((await tcpOpen(S.kafkaSaslSslPort)) && (await tcpOpen(S.kafkaMtlsPort))))
    return false;
  if (S.kafkaOauth && !(await tcpOpen(S.kafkaOauthPort))) return false;
  // Answering a metadata request is the real test: the port opens before the broker is usable.
  const { Kafka, logLevel } = await import("kafkajs");
  const admin = new Kafka({
    clientId: "brokers-probe",
    brokers: [`${S.host}:${S.kafkaPort}`],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 2000,
    requestTimeout: 3000,
  }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

async function startKafka() {
  const home = kafkaHome();
  const pidFile = path.join(home, "kafka.pid");
  if (alive(readPid(pidFile))) {
    if (await kafkaReady()) {
      log(`kafka: already running (pid ${readPid(pidFile)}) on ${S.host}:${S.kafkaPort}`);
      return;
    }
  } else if (await tcpOpen(S.kafkaPort)) {
    if (await kafkaReady()) {
      log(`kafka: a broker not started by this script answers on ${S.host}:${S.kafkaPort}; using it`);
      return;
    }
    throw new BrokerError(`kafka: port ${S.kafkaPort} is taken by something that is not a Kafka broker`);
  }
  const dist = await fetchKafka();
  const dataDir = path.join(home, "data");
  if (!alive(readPid(pidFile))) {
    if (!S.keepData) fs.rmSync(dataDir, { recursive: true, force: true });
    fs.mkdirSync(dataDir, { recursive: true });
    const props = path.join(home, "server.properties");
    const log4j = path.join(home, "log4j2.properties");
    // 0600: with KAFKA_SECURITY it holds the PLAIN user's password
    fs.writeFileSync(props, kafkaServerProperties(dataDir), { mode: 0o600 });
    fs.writeFileSync(log4j, KAFKA_LOG4J);
    fs.writeFileSync(path.join(home, "tools-log4j2.properties"), KAFKA_TOOLS_LOG4J);
    const logFile = path.join(home, "kafka.log");
    if (!fs.existsSync(path.join(dataDir, "meta.properties"))) {
      const clusterId = kafkaClusterId();
      const [java, args] = kafkaJava(
        dist,
        "kafka.tools.StorageTool",
        [
          "format",
          "--standalone",
          "-t",
          clusterId,
          "-c",
          props,
          // the SCRAM users are written into the metadata log at format time
          ...kafkaScramUserArgs(),
        ],
        "-Xmx256m",
        log4j,
      );
      const r = spawnSync(java, args, { encoding: "utf8" });
      if (r.status !== 0)
        throw new BrokerError(`kafka: formatting the storage failed:\n${r.stdout}\n${r.stderr}`);
    }
    fs.writeFileSync(logFile, "");
    const [java, args] = kafkaJava(dist, "kafka.Kafka", [props], S.kafkaHeap, log4j);
    const pid = launch(java, args, { cwd: home, logFile, pidFile });
    log(`kafka: started pid ${pid}, waiting for ${S.host}:${S.kafkaPort} (log: ${logFile})`);
  }
  await waitFor("kafka", kafkaReady, S.kafkaTimeoutS, pidFile, path.join(home, "kafka.log"));
}

// ---------------------------------------------------------------- Pulsar

function b64url(data) {
  return Buffer.from(data).toString("base64url");
}

// HS256 JWT whose subject is the role, as Pulsar's token authentication provider expects.
function mintToken(secret, role) {
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = b64url(JSON.stringify({ sub: role }));
  const sig = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${sig}`;
}

function pulsarSecret() {
  const file = path.join(pulsarHome(), "token-secret.key");
  if (!fs.existsSync(file)) {
    fs.mkdirSync(pulsarHome(), { recursive: true });
    fs.writeFileSync(file, randomBytes(32), { mode: 0o600 });
  }
  return fs.readFileSync(file);
}

export function pulsarToken(role = "admin") {
  return mintToken(pulsarSecret(), role);
}

// Patch keys in place: the embedded bookie reads the same file, and a repeated key becomes a list there.
function setKeys(text, keys) {
  const seen = new Set();
  const lines = text.split("\n").map((line) => {
    const m = /^\s*([A-Za-z0-9_.]+)\s*=/.exec(line);
    if (m && Object.hasOwn(keys, m[1])) {
      if (seen.has(m[1])) return null;
      seen.add(m[1]);
      return `${m[1]}=${keys[m[1]]}`;
    }
    return line;
  });
  const out = lines.filter((l) => l !== null);
  for (const [k, v] of Object.entries(keys)) if (!seen.has(k)) out.push(`${k}=${v}`);
  return out.join("\n") + "\n";
}

function pulsarAuthHeader() {
  return S.pulsarAuth === "token" ? { Authorization: `Bearer ${pulsarToken("admin")}` } : {};
}

function writePulsarClientConf(home) {
  const keys = {
    webServiceUrl: `http://${S.host}:${S.pulsarHttpPort}/`,
    brokerServiceUrl: `pulsar://${S.host}:${S.pulsarPort}/`,
    authPlugin: "",
    authParams: "",
  };
  if (S.pulsarAuth === "token") {
    keys.authPlugin = "org.apache.pulsar.client.impl.auth.AuthenticationToken";
    keys.authParams = `token:${pulsarToken("admin")}`;
  }
  // the CLI stays on pulsar:// by default; with --url pulsar+ssl://... it trusts the test CA
  if (S.pulsarTls) keys.tlsTrustCertsFilePath = path.join(ensureCerts(), "ca.pem");
  if (S.pulsarTlsAuth) {
    // plain pulsar:// and http:// would be refused: no client certificate there
    const certs = ensureCerts();
    Object.assign(keys, {
      webServiceUrl: `https://${S.host}:${S.pulsarHttpsPort}/`,
      brokerServiceUrl: `pulsar+ssl://${S.host}:${S.pulsarTlsPort}/`,
      authPlugin: "org.apache.pulsar.client.impl.auth.AuthenticationTls",
      authParams: pulsarTlsAuthParams(certs),
    });
  }
  const file = path.join(home, "client.conf");
  fs.writeFileSync(
    file,
    setKeys(fs.readFileSync(path.join(pulsarDist(), "conf", "client.conf"), "utf8"), keys),
  );
  return file;
}

async function httpStatus(url) {
  try {
    const res = await fetch(url, { headers: pulsarAuthHeader(), signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

// With PULSAR_TLS_AUTH the admin API answers only a client that shows the test certificate, over https.
function httpsStatusWithClientCert(url) {
  const certs = ensureCerts();
  const pem = (name) => fs.readFileSync(path.join(certs, name));
  return new Promise((resolve) => {
    const req = https.get(
      url,
      { ca: pem("ca.pem"), cert: pem("client.pem"), key: pem("client-key.pem"), timeout: 5000 },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", () => resolve(0));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}

async function pulsarReady() {
  if (!(await tcpOpen(S.pulsarPort))) return false;
  if (S.pulsarTls && !((await tcpOpen(S.pulsarTlsPort)) && (await tcpOpen(S.pulsarHttpsPort)))) return false;
  const [base, status] = S.pulsarTlsAuth
    ? [`https://${S.host}:${S.pulsarHttpsPort}/admin/v2`, httpsStatusWithClientCert]
    : [`http://${S.host}:${S.pulsarHttpPort}/admin/v2`, httpStatus];
  return (
    (await status(`${base}/namespaces/public/default`)) === 200 &&
    (await status(`${base}/brokers/health`)) === 200
  );
}

// AuthenticationTls's parameters: the test client certificate and its key.
function pulsarTlsAuthParams(certs) {
  return JSON.stringify({
    tlsCertFile: path.join(certs, "client.pem"),
    tlsKeyFile: path.join(certs, "client-key.pem"),
  });
}

async function startPulsar() {
  const home = pulsarHome();
  const pidFile = path.join(home, "pulsar.pid");
  if (alive(readPid(pidFile))) {
    if (await pulsarReady()) {
      log(`pulsar: already running (pid ${readPid(pidFile)}) on ${S.host}:${S.pulsarPort}`);
      return;
    }
  } else if ((await tcpOpen(S.pulsarPort)) || (await tcpOpen(S.pulsarHttpPort))) {
    if (await pulsarReady()) {
      log(`pulsar: a broker not started by this script answers on ${S.host}:${S.pulsarPort}; using it`);
      return;
    }
    throw new BrokerError(
      `pulsar: port ${S.pulsarPort} or ${S.pulsarHttpPort} is taken by something that is not a ready Pulsar`,
    );
  }
  const dist = await fetchPulsar();
  const logDir = path.join(home, "logs");
  const dataDir = path.join(home, "data");
  if (!alive(readPid(pidFile))) {
    fs.mkdirSync(logDir, { recursive: true });
    if (!S.keepData) fs.rmSync(dataDir, { recursive: true, force: true });
    fs.mkdirSync(dataDir, { recursive: true });
    const keys = {
      bindAddress: S.host,
      advertisedAddress: S.advertisedHost,
      brokerServicePort: String(S.pulsarPort),
      webServicePort: String(S.pulsarHttpPort),
      brokerDeleteInactiveTopicsEnabled: "false",
      brokerShutdownTimeoutMs: "5000",
      brokerDeduplicationEnabled: String(S.pulsarDedup),
      authenticationEnabled: "false",
      authorizationEnabled: "false",
      // The benchmarks write tens of GB (a 30 s pulsar-perf run at 1 KiB is about 9 GB) and delete their topics:
      // the bookie reclaims the space of deleted ledgers within a minute (not 5) and keeps about 1 GB of
      // journal (not 6 x 2 GB), so that repeated runs do not fill the disk.
      gcWaitTime: "60000",
      journalMaxSizeMB: "512",
      journalMaxBackups: "1",
    };
    if (S.pulsarAuth === "token") {
      Object.assign(keys, {
        authenticationEnabled: "true",
        authorizationEnabled: "true",
        authenticationProviders: "org.apache.pulsar.broker.authentication.AuthenticationProviderToken",
        tokenSecretKey: `data:;base64,${pulsarSecret().toString("base64")}`,
        superUserRoles: "admin",
        brokerClientAuthenticationPlugin: "org.apache.pulsar.client.impl.auth.AuthenticationToken",
        brokerClientAuthenticationParameters: `token:${pulsarToken("admin")}`,
      });
    } else if (S.pulsarAuth !== "none") {
      throw new BrokerError(`PULSAR_AUTH must be none or token, not ${S.pulsarAuth}`);
    }
    if (S.pulsarAuthRefreshS !== undefined) {
      if (!/^[1-9]\d*$/.test(S.pulsarAuthRefreshS))
        throw new BrokerError(
          `PULSAR_AUTH_REFRESH_S must be a whole number of seconds, not ${S.pulsarAuthRefreshS}`,
        );
      keys.authenticationRefreshCheckSeconds = S.pulsarAuthRefreshS;
    }
    if (S.pulsarTls) {
      const certs = ensureCerts();
      Object.assign(keys, {
        brokerServicePortTls: String(S.pulsarTlsPort),
        webServicePortTls: String(S.pulsarHttpsPort),
        tlsCertificateFilePath: path.join(certs, "server.pem"),
        tlsKeyFilePath: path.join(certs, "server-key.pem"),
        tlsTrustCertsFilePath: path.join(certs, "ca.pem"),
      });
    }
    if (S.pulsarTlsAuth) {
      if (!S.pulsarTls) throw new BrokerError("PULSAR_TLS_AUTH=1 needs PULSAR_TLS=1");
      if (S.pulsarAuth !== "none")
        throw new BrokerError(`PULSAR_TLS_AUTH=1 does not combine with PULSAR_AUTH=${S.pulsarAuth}`);
      const certs = ensureCerts();
      Object.assign(keys, {
        authenticationEnabled: "true",
        authenticationProviders: "org.apache.pulsar.broker.authentication.AuthenticationProviderTls",
        // the TLS handshake itself already wants a certificate signed by the test CA
        tlsRequireTrustedClientCertOnConnect: "true",
        // the broker's own client (lookups, admin calls, system topics) must pass the same check
        brokerClientTlsEnabled: "true",
        brokerClientTrustCertsFilePath: path.join(certs, "ca.pem"),
        brokerClientCertificateFilePath: path.join(certs, "client.pem"),
        brokerClientKeyFilePath: path.join(certs, "client-key.pem"),
        brokerClientAuthenticationPlugin: "org.apache.pulsar.client.impl.auth.AuthenticationTls",
        brokerClientAuthenticationParameters: pulsarTlsAuthParams(certs),
      });
    }
    const conf = path.join(home, "standalone.conf");
    fs.writeFileSync(
      conf,
      setKeys(fs.readFileSync(path.join(dist, "conf", "standalone.conf"), "utf8"), keys),
    );
    writePulsarClientConf(home);
    const tmp = path.join(S.home, "tmp");
    fs.mkdirSync(tmp, { recursive: true });
    const logFile = path.join(logDir, "pulsar-standalone.out");
    fs.writeFileSync(logFile, "");
    const pid = launch(
      path.join(dist, "bin", "pulsar"),
      [
        "standalone",
        "--no-functions-worker",
        "--no-stream-storage",
        ...(S.keepData ? [] : ["--wipe-data"]),
        "--metadata-dir",
        path.join(dataDir, "metadata"),
        "--bookkeeper-dir",
        path.join(dataDir, "bookkeeper"),
        "--advertised-address",
        S.advertisedHost,
      ],
      {
        cwd: dist,
        logFile,
        pidFile,
        extraEnv: {
          JAVA_HOME: javaHome(),
          PULSAR_STANDALONE_CONF: conf,
          PULSAR_LOG_DIR: logDir,
          PULSAR_MEM: S.pulsarMem,
          PULSAR_GC: "-XX:+UseG1GC -XX:+PerfDisableSharedMem",
          PULSAR_GC_LOG: " ",
          PULSAR_EXTRA_OPTS: `-Djava.io.tmpdir=${tmp} -Dpulsar.allocator.exit_on_oom=true`,
        },
      },
    );
    log(
      `pulsar: started pid ${pid}, waiting for ${S.host}:${S.pulsarPort} and public/default (log: ${logFile})`,
    );
  }
  await waitFor("pulsar", pulsarReady, S.pulsarTimeoutS, pidFile, path.join(logDir, "pulsar-standalone.out"));
}

// ---------------------------------------------------------------- readiness

async function waitFor(name, ready, timeoutS, pidFile, logFile) {
  const started = Date.now();
  const deadline = started + timeoutS * 1000;
  let lastNote = started;
  while (Date.now() < deadline) {
    const pid = readPid(pidFile);
    if (!alive(pid)) {
      throw new BrokerError(
        `${name}: the process exited before it was ready. Last lines of ${logFile}:\n${tail(logFile)}`,
      );
    }
    if (await ready()) {
      log(`${name}: ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return;
    }
    if (Date.now() - lastNote > 15000) {
      lastNote = Date.now();
      log(`${name}: not ready yet (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
    await sleep(500);
  }
  throw new BrokerError(
    `${name}: not ready after ${timeoutS} s. Last lines of ${logFile}:\n${tail(logFile)}`,
  );
}

// ---------------------------------------------------------------- schema registry

// A JDK 21 or later (Apicurio Registry 3 needs it): REGISTRY_JAVA_HOME, or the newest under /usr/lib/jvm.
export function registryJavaHome() {
  if (env.REGISTRY_JAVA_HOME) return env.REGISTRY_JAVA_HOME;
  const major = (home) => {
    const r = spawnSync(path.join(home, "bin", "java"), ["-version"], { encoding: "utf8" });
    const m = r.status === 0 ? /version "(\d+)/.exec(r.stderr) : null;
    return m ? Number(m[1]) : 0;
  };
  const jvm = "/usr/lib/jvm";
  const found = fs.existsSync(jvm)
    ? fs
        .readdirSync(jvm)
        .map((d) => path.join(jvm, d))
        .filter((h) => fs.existsSync(path.join(h, "bin", "java")))
        .map((h) => ({ h, v: major(h) }))
        .filter((x) => x.v >= 21)
        .sort((a, b) => b.v - a.v)
    : [];
  if (found[0]) return found[0].h;
  throw new BrokerError(
    "the schema registry (Apicurio Registry 3) needs Java 21 or later: install one under /usr/lib/jvm or set REGISTRY_JAVA_HOME",
  );
}

async function registryReady() {
  return (await httpStatus(`${registryUrl()}/subjects`)) === 200;
}

async function startRegistry() {
  const home = registryHome();
  const pidFile = path.join(home, "registry.pid");
  if (alive(readPid(pidFile))) {
    if (await registryReady()) {
      log(`registry: already running (pid ${readPid(pidFile)}) at ${registryUrl()}`);
      return;
    }
  } else if (await tcpOpen(S.registryPort)) {
    if (await registryReady()) {
      log(`registry: a registry not started by this script answers at ${registryUrl()}; using it`);
      return;
    }
    throw new BrokerError(
      `registry: port ${S.registryPort} is taken by something that is not a schema registry`,
    );
  }
  const dist = await fetchRegistry();
  const logFile = path.join(home, "registry.log");
  if (!alive(readPid(pidFile))) {
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(logFile, "");
    const java = path.join(registryJavaHome(), "bin", "java");
    const args = [
      ...S.registryHeap.split(/\s+/).filter(Boolean),
      // every listener on loopback (the management interface listens on 0.0.0.0:9000 by default);
      // storage is the default in-memory database: each start is empty
      `-Dquarkus.http.host=${S.host}`,
      `-Dquarkus.http.port=${S.registryPort}`,
      `-Dquarkus.management.host=${S.host}`,
      `-Dquarkus.management.port=${S.registryManagementPort}`,
      "-jar",
      path.join(dist, "quarkus-run.jar"),
    ];
    const pid = launch(java, args, { cwd: home, logFile, pidFile });
    log(`registry: started pid ${pid}, waiting for ${registryUrl()} (log: ${logFile})`);
  }
  await waitFor("registry", registryReady, S.registryTimeoutS, pidFile, logFile);
}

// ---------------------------------------------------------------- tools

const KAFKA_TOOLS = {
  "console-producer": "org.apache.kafka.tools.ConsoleProducer",
  "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
  "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
  topics: "org.apache.kafka.tools.TopicCommand",
  "producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
  "consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
  "broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
  "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
};

async function runTool(cmd, args) {
  let java,
    argv,
    extraEnv = {};
  if (cmd === "kafka-tool") {
    const [name, ...rest] = args;
    if (!name)
      throw new BrokerError(
        `kafka-tool needs a tool: ${Object.keys(KAFKA_TOOLS).join(", ")} or a class name`,
      );
    const dist = await fetchKafka();
    const log4j = path.join(kafkaHome(), "tools-log4j2.properties");
    fs.mkdirSync(kafkaHome(), { recursive: true });
    if (!fs.existsSync(log4j)) fs.writeFileSync(log4j, KAFKA_TOOLS_LOG4J);
    [java, argv] = kafkaJava(dist, KAFKA_TOOLS[name] ?? name, rest, "-Xmx512m", log4j);
  } else {
    const dist = await fetchPulsar();
    fs.mkdirSync(pulsarHome(), { recursive: true });
    const conf = writePulsarClientConf(pulsarHome());
    java = path.join(dist, "bin", cmd);
    argv = args;
    extraEnv = {
      JAVA_HOME: javaHome(),
      PULSAR_CLIENT_CONF: conf,
      PULSAR_PERFTEST_CONF: conf,
      PULSAR_LOG_DIR: path.join(pulsarHome(), "logs"),
      PULSAR_MEM: env.PULSAR_TOOL_MEM || "-Xmx512m",
    };
  }
  const child = spawn(java, argv, { stdio: "inherit", env: { ...env, ...extraEnv } });
  const forward = (sig) => child.kill(sig);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const code = await new Promise((resolve) => child.on("close", (c, sig) => resolve(c ?? (sig ? 1 : 0))));
  process.exitCode = code;
}

// ---------------------------------------------------------------- status

async function status() {
  const k = await kafkaReady();
  const p = await pulsarReady();
  const r = await registryReady();
  const who = (pidFile) => {
    const pid = readPid(pidFile);
    return alive(pid) ? `pid ${pid}, started by this script` : "not started by this script";
  };
  console.log(
    `kafka  ${k ? "ready" : "down"}  ${S.host}:${S.kafkaPort}  (${who(path.join(kafkaHome(), "kafka.pid"))})`,
  );
  console.log(
    `pulsar ${p ? "ready" : "down"}  pulsar://${S.host}:${S.pulsarPort} http://${S.host}:${S.pulsarHttpPort}  (${who(path.join(pulsarHome(), "pulsar.pid"))})`,
  );
  console.log(
    `registry ${r ? "ready" : "down"}  ${registryUrl()}  (${who(path.join(registryHome(), "registry.pid"))})`,
  );
  if (kafkaSecured())
    console.log(
      `kafka  secured  SASL_SSL ${S.host}:${S.kafkaSaslSslPort}  mTLS ${S.host}:${S.kafkaMtlsPort}`,
    );
  if (S.kafkaOauth) console.log(`kafka  oauth    SASL_PLAINTEXT+OAUTHBEARER ${S.host}:${S.kafkaOauthPort}`);
  if (S.pulsarTls)
    console.log(
      `pulsar secured  pulsar+ssl://${S.host}:${S.pulsarTlsPort} https://${S.host}:${S.pulsarHttpsPort}`,
    );
  return k && p && r;
}

// ---------------------------------------------------------------- main

async function main(argv) {
  const [cmd = "status", ...args] = argv;
  const which = args[0];
  const both = !which || which === "all";
  switch (cmd) {
    case "fetch":
      await Promise.all([fetchKafka(), fetchPulsar(), fetchRegistry()]);
      return;
    case "start": {
      if (!both && !["kafka", "pulsar", "registry"].includes(which))
        throw new BrokerError(`unknown broker ${which}`);
      // Pulsar dominates the start time; they start in parallel.
      const jobs = [];
      if (both || which === "kafka") jobs.push(startKafka());
      if (both || which === "pulsar") jobs.push(startPulsar());
      if (both || which === "registry") jobs.push(startRegistry());
      const results = await Promise.allSettled(jobs);
      const failed = results.filter((r) => r.status === "rejected");
      if (failed.length)
        throw new BrokerError(failed.map((r) => r.reason?.message ?? String(r.reason)).join("\n\n"));
      return;
    }
    case "stop":
      if (both || which === "kafka") await stopPid("kafka", path.join(kafkaHome(), "kafka.pid"));
      if (both || which === "pulsar") await stopPid("pulsar", path.join(pulsarHome(), "pulsar.pid"));
      if (both || which === "registry") await stopPid("registry", path.join(registryHome(), "registry.pid"));
      return;
    case "status":
      process.exitCode = (await status()) ? 0 : 1;
      return;
    case "env":
      console.log(`KAFKA_BROKERS=${S.host}:${S.kafkaPort}`);
      console.log(`PULSAR_URL=pulsar://${S.host}:${S.pulsarPort}`);
      console.log(`PULSAR_HTTP_URL=http://${S.host}:${S.pulsarHttpPort}`);
      console.log(`PULSAR_AUTH=${S.pulsarAuth}`);
      console.log(`PULSAR_DEDUP=${S.pulsarDedup ? 1 : 0}`);
      console.log(`REGISTRY_URL=${registryUrl()}`);
      console.log(`BROKERS_HOME=${S.home}`);
      console.log(`BROKERS_CACHE=${S.cacheDir}`);
      // the secured listeners only when they are on, so that the default output stays as it was
      if (kafkaSecured()) {
        console.log(`KAFKA_SECURITY=${S.kafkaSecurity}`);
        console.log(`KAFKA_SASL_SSL_PORT=${S.kafkaSaslSslPort}`);
        console.log(`KAFKA_MTLS_PORT=${S.kafkaMtlsPort}`);
        console.log(`KAFKA_SASL_SSL_BROKERS=${S.host}:${S.kafkaSaslSslPort}`);
        console.log(`KAFKA_MTLS_BROKERS=${S.host}:${S.kafkaMtlsPort}`);
        console.log(`KAFKA_SCRAM_USER=${SCRAM_USER}`);
        console.log(`KAFKA_SCRAM_PASSWORD_FILE=${path.join(S.home, "kafka-scram-password")}`);
        const sha256 = KAFKA_SASL_USERS["SCRAM-SHA-256"];
        console.log(`KAFKA_SCRAM_SHA256_USER=${sha256.user}`);
        console.log(`KAFKA_SCRAM_SHA256_PASSWORD_FILE=${path.join(S.home, sha256.passwordFile)}`);
        console.log(`KAFKA_PLAIN_USER=${KAFKA_SASL_USERS.PLAIN.user}`);
        console.log(`KAFKA_PLAIN_PASSWORD_FILE=${path.join(S.home, KAFKA_SASL_USERS.PLAIN.passwordFile)}`);
      }
      if (S.pulsarTls) {
        console.log(`PULSAR_TLS=1`);
        console.log(`PULSAR_TLS_PORT=${S.pulsarTlsPort}`);
        console.log(`PULSAR_HTTPS_PORT=${S.pulsarHttpsPort}`);
        console.log(`PULSAR_TLS_URL=pulsar+ssl://${S.host}:${S.pulsarTlsPort}`);
        console.log(`PULSAR_HTTPS_URL=https://${S.host}:${S.pulsarHttpsPort}`);
      }
      if (S.pulsarTlsAuth) console.log(`PULSAR_TLS_AUTH=1`);
      if (kafkaSecured() || S.pulsarTls) console.log(`BROKERS_CERTS=${certsDir()}`);
      // the opt-in settings below likewise only when they are on
      if (S.kafkaOauth) {
        console.log(`KAFKA_OAUTH=1`);
        console.log(`KAFKA_OAUTH_PORT=${S.kafkaOauthPort}`);
        console.log(`KAFKA_OAUTH_BROKERS=${S.host}:${S.kafkaOauthPort}`);
      }
      if (S.pulsarAuth === "token")
        console.log(`PULSAR_TOKEN_SECRET_FILE=${path.join(pulsarHome(), "token-secret.key")}`);
      if (S.pulsarAuthRefreshS !== undefined) console.log(`PULSAR_AUTH_REFRESH_S=${S.pulsarAuthRefreshS}`);
      return;
    case "certs":
      console.log(ensureCerts());
      return;
    case "token":
      console.log(pulsarToken(which || "admin"));
      return;
    case "kafka-tool":
    case "pulsar-client":
    case "pulsar-admin":
    case "pulsar-perf":
      await runTool(cmd, args);
      return;
    default:
      throw new BrokerError(
        `unknown command ${cmd}; use start, stop, status, fetch, env, token, certs, kafka-tool, pulsar-client, pulsar-admin or pulsar-perf`,
      );
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err instanceof BrokerError ? `[brokers] ${err.message}` : err);
    process.exitCode = 1;
  });
}
