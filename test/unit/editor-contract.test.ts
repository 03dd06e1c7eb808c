// The editor and the runtime agree: each registerType in nodes/*.html declares exactly the defaults and
// credentials of src/nodes/properties.ts, every i18n key the editor uses exists, and each type has help.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import vm from "node:vm";
import { test } from "node:test";
import * as props from "../../src/nodes/properties";

const ROOT = path.resolve(__dirname, "..", "..");

interface TypeDef {
  defaults: Record<string, { value: unknown }>;
  credentials?: Record<string, { type: string }>;
  category: string;
}

function editorDefinitions(file: string): Map<string, TypeDef> {
  const html = fs.readFileSync(path.join(ROOT, "nodes", file), "utf8");
  const scripts = [...html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)].map(
    (m) => m[1] ?? "",
  );
  const defs = new Map<string, TypeDef>();
  const $ = () => ({ length: 0, val: () => undefined });
  const RED = { nodes: { registerType: (type: string, def: TypeDef) => defs.set(type, def) } };
  for (const s of scripts) vm.runInNewContext(s, { RED, $ });
  return defs;
}

function catalogKeys(file: string): Set<string> {
  const keys = new Set<string>();
  const walk = (o: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      if (v && typeof v === "object") walk(v as Record<string, unknown>, `${prefix}${k}.`);
      else keys.add(`${prefix}${k}`);
    }
  };
  walk(
    JSON.parse(fs.readFileSync(path.join(ROOT, "nodes", "locales", "en-US", file), "utf8")) as Record<
      string,
      unknown
    >,
    "",
  );
  return keys;
}

const CASES = [
  {
    file: "kafka.html",
    type: "kafka-cluster",
    defaults: props.KAFKA_CLUSTER_DEFAULTS,
    credentials: props.KAFKA_CLUSTER_CREDENTIALS,
  },
  {
    file: "kafka.html",
    type: "schema-registry",
    defaults: props.SCHEMA_REGISTRY_DEFAULTS,
    credentials: props.SCHEMA_REGISTRY_CREDENTIALS,
  },
  { file: "kafka.html", type: "kafka-in", defaults: props.KAFKA_IN_DEFAULTS, credentials: undefined },
  { file: "kafka.html", type: "kafka-out", defaults: props.KAFKA_OUT_DEFAULTS, credentials: undefined },
  { file: "kafka.html", type: "kafka-window", defaults: props.KAFKA_WINDOW_DEFAULTS, credentials: undefined },
  {
    file: "pulsar.html",
    type: "pulsar-cluster",
    defaults: props.PULSAR_CLUSTER_DEFAULTS,
    credentials: props.PULSAR_CLUSTER_CREDENTIALS,
  },
  { file: "pulsar.html", type: "pulsar-in", defaults: props.PULSAR_IN_DEFAULTS, credentials: undefined },
  { file: "pulsar.html", type: "pulsar-out", defaults: props.PULSAR_OUT_DEFAULTS, credentials: undefined },
];

for (const c of CASES) {
  test(`${c.type}: editor defaults and credentials match the runtime contract`, () => {
    const def = editorDefinitions(c.file).get(c.type);
    assert.ok(def, `${c.type} is registered in ${c.file}`);
    const editorDefaults = Object.fromEntries(Object.entries(def.defaults).map(([k, v]) => [k, v.value]));
    assert.deepEqual(editorDefaults, { ...c.defaults });
    const editorCreds = def.credentials
      ? Object.fromEntries(Object.entries(def.credentials).map(([k, v]) => [k, v.type]))
      : undefined;
    assert.deepEqual(editorCreds, c.credentials ? { ...c.credentials } : undefined);
    if (def.category !== "config") assert.equal(def.category, "kafka → pulsar");
  });
}

for (const set of ["kafka", "pulsar"]) {
  test(`${set}: every data-i18n key of the editor exists in the catalog, and every type has help`, () => {
    const html = fs.readFileSync(path.join(ROOT, "nodes", `${set}.html`), "utf8");
    const keys = catalogKeys(`${set}.json`);
    const used = [...html.matchAll(/data-i18n="(?:\[[a-z]+\])?([^"]+)"/g)].map((m) => m[1] ?? "");
    assert.ok(used.length > 10);
    for (const key of used) assert.ok(keys.has(key), `${key} is in ${set}.json`);
    const help = fs.readFileSync(path.join(ROOT, "nodes", "locales", "en-US", `${set}.html`), "utf8");
    for (const type of editorDefinitions(`${set}.html`).keys())
      assert.match(help, new RegExp(`data-help-name="${type}"`));
  });
}
