// The published shape works: `npm pack`, install the tarball into a fresh Node-RED user directory, and the
// runtime loads both node sets with the six types and no error.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ROOT } from "../support/brokers";
import { startNodeRed } from "../support/node-red-process";

interface NodeSetInfo {
  id: string;
  module: string;
  types: string[];
  enabled: boolean;
  err?: string;
}

test("the packed tarball installs into a fresh Node-RED and registers the eight node types", async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "pack-smoke-"));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const packed = execFileSync(npm, ["pack", "--silent", "--pack-destination", work], {
    cwd: ROOT,
    encoding: "utf8",
  });
  const tarball = path.join(work, packed.trim().split("\n").pop() ?? "");
  assert.ok(fs.existsSync(tarball), `npm pack produced ${tarball}`);

  const userDir = path.join(work, "user");
  fs.mkdirSync(userDir);
  fs.writeFileSync(path.join(userDir, "package.json"), JSON.stringify({ name: "pack-smoke", private: true }));
  execFileSync(npm, ["install", "--no-audit", "--no-fund", "--omit=dev", "--prefer-offline", tarball], {
    cwd: userDir,
    stdio: "pipe",
  });

  const red = await startNodeRed({ userDir });
  t.after(() => red.stop());
  const res = await red.api("GET", "/nodes");
  assert.equal(res.status, 200);
  const sets = (res.json as NodeSetInfo[]).filter((s) => s.module === "node-red-contrib-kafka-pulsar");
  assert.deepEqual(sets.map((s) => s.id).sort(), [
    "node-red-contrib-kafka-pulsar/kafka",
    "node-red-contrib-kafka-pulsar/pulsar",
  ]);
  for (const set of sets) {
    assert.equal(set.err, undefined, `${set.id} loaded without error`);
    assert.equal(set.enabled, true);
  }
  assert.deepEqual(sets.flatMap((s) => s.types).sort(), [
    "kafka-cluster",
    "kafka-in",
    "kafka-out",
    "kafka-window",
    "pulsar-cluster",
    "pulsar-in",
    "pulsar-out",
    "schema-registry",
  ]);
  assert.doesNotMatch(red.output(), /\[error\]/);
});
