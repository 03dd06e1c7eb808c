// The editor in a real headless Chromium (Debian's, driven by playwright-core; never a downloaded
// browser) against a real node-red process: palette, edit dialogs, validation, help, and a deployed
// bridge showing its status under the nodes. Screenshots go to docs/.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { kafkaBrokers, pulsarUrl, ROOT, uniqueName } from "../support/brokers";
import { createTopic } from "../support/kafka";
import { makeUserDir, startNodeRed, type NodeRedProcess } from "../support/node-red-process";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const DOCS = path.join(ROOT, "docs");
let browser: Browser;
let red: NodeRedProcess;
let page: Page;
let userDir: string;
const kafkaTopic = uniqueName("editor");

before(async () => {
  await createTopic(kafkaTopic, 2);
  userDir = makeUserDir();
  red = await startNodeRed({ userDir });
  await red.deploy([
    { id: "tab1", type: "tab", label: "Bridge" },
    { id: "kc", type: "kafka-cluster", name: "local Kafka", brokers: kafkaBrokers.join(",") },
    { id: "pc", type: "pulsar-cluster", name: "local Pulsar", serviceUrl: pulsarUrl },
    {
      id: "in1",
      type: "kafka-in",
      z: "tab1",
      cluster: "kc",
      topics: kafkaTopic,
      groupId: "editor-test",
      x: 150,
      y: 100,
      wires: [["chg"]],
    },
    {
      id: "chg",
      type: "change",
      z: "tab1",
      name: "reshape",
      rules: [{ t: "set", p: "properties.via", pt: "msg", to: "node-red", tot: "str" }],
      x: 350,
      y: 100,
      wires: [["out1"]],
    },
    {
      id: "win1",
      type: "kafka-window",
      z: "tab1",
      cluster: "kc",
      changelogTopic: "",
      x: 350,
      y: 200,
      wires: [[], []],
    },
    {
      id: "out1",
      type: "pulsar-out",
      z: "tab1",
      cluster: "pc",
      topic: "persistent://public/default/{{kafka.topic}}",
      x: 570,
      y: 100,
      wires: [],
    },
    { id: "kout1", type: "kafka-out", z: "tab1", cluster: "kc", topic: "copy", x: 570, y: 300, wires: [] },
  ]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(red.url);
  await page.waitForSelector("#red-ui-palette-container", { timeout: 60_000 });
  await page.waitForSelector(".red-ui-flow-node-group", { timeout: 30_000 });
  fs.mkdirSync(DOCS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await red?.stop();
  fs.rmSync(userDir, { recursive: true, force: true });
});

test("the palette shows kafka in, window, pulsar out, kafka out and pulsar in in the kafka → pulsar category", async () => {
  const category = page.locator(".red-ui-palette-category", { hasText: "kafka → pulsar" });
  await category.waitFor();
  const labels = await category.locator(".red-ui-palette-label").allInnerTexts();
  assert.deepEqual(labels.map((l) => l.trim()).sort(), [
    "kafka in",
    "kafka out",
    "pulsar in",
    "pulsar out",
    "window",
  ]);
});

test("the deployed bridge shows a connected status under its nodes (real brokers)", async () => {
  await page.waitForFunction(
    () =>
      Array.from(
        document.querySelectorAll(".red-ui-flow-node-status-label"),
        (e) => e.textContent ?? "",
      ).some((t) => /consuming/.test(t)),
    undefined,
    { timeout: 60_000 },
  );
  const statuses = await page.locator(".red-ui-flow-node-status-label").allTextContents();
  assert.ok(
    statuses.some((s) => /consuming 2 partition/.test(s)),
    statuses.join(" | "),
  );
  await page.screenshot({ path: path.join(DOCS, "flow.png") });
});

async function openNode(id: string, config = false): Promise<void> {
  await page.evaluate(
    ([nodeId, isConfig]) => {
      interface EditorApi {
        editor: { edit(n: unknown): void; editConfig(name: string, type: string, id: string): void };
        nodes: { node(id: string): { type: string } };
      }
      const RED = (window as unknown as { RED: EditorApi }).RED;
      const node = RED.nodes.node(nodeId);
      if (isConfig) RED.editor.editConfig("", node.type, nodeId);
      else RED.editor.edit(node);
    },
    [id, config] as const,
  );
  await page.waitForSelector(".red-ui-tray-body", { state: "visible" });
  await page.waitForTimeout(500);
}

async function closeDialog(): Promise<void> {
  // the tray's own cancel path (a shade covers the button in headless runs)
  await page.evaluate(() => (window as unknown as { RED: { tray: { close(): void } } }).RED.tray.close());
  await page.waitForTimeout(600);
}

test("kafka in: the dialog shows its fields and help, and marks bad input invalid", async () => {
  await openNode("in1");
  for (const field of [
    "topics",
    "groupId",
    "startFrom",
    "valueFormat",
    "commitMode",
    "maxInFlight",
    "failurePolicy",
  ]) {
    assert.ok(await page.isVisible(`#node-input-${field}`), field);
  }
  assert.match(await page.innerText("#kafka-in-commit-tip"), /committed only after/);
  await page.fill("#node-input-topics", "not a topic!");
  await page.press("#node-input-topics", "Tab");
  await page.fill("#node-input-maxInFlight", "0");
  await page.press("#node-input-maxInFlight", "Tab");
  await page.waitForTimeout(300);
  assert.ok(await page.locator("#node-input-topics.input-error").count(), "bad topics marked invalid");
  assert.ok(await page.locator("#node-input-maxInFlight.input-error").count(), "bad number marked invalid");
  await page.screenshot({ path: path.join(DOCS, "kafka-in.png") });
  await closeDialog();
});

test("window: the dialog proposes a stable changelog topic, reads key, time and value with typed inputs, shows the fields the window type needs, and marks a bad aggregation invalid", async () => {
  await openNode("win1");
  assert.match(await page.inputValue("#node-input-changelogTopic"), /^node-red-window-win1$/);
  assert.ok((await page.locator(".red-ui-typedInput-container").count()) >= 3, "typed inputs");
  assert.equal(await page.isVisible("#node-input-advance"), false, "no advance for tumbling windows");
  await page.selectOption("#node-input-windowType", "hopping");
  await page.waitForTimeout(200);
  assert.ok(await page.isVisible("#node-input-advance"), "advance for hopping windows");
  await page.selectOption("#node-input-by", "count");
  await page.waitForTimeout(200);
  assert.equal(await page.isVisible("#node-input-graceMs"), false, "no grace for count windows");
  assert.equal(await page.inputValue("#node-input-size"), "100", "a record count, not 60000 ms as records");
  await page.fill("#node-input-aggregations", "avg:median");
  await page.press("#node-input-aggregations", "Tab");
  await page.waitForTimeout(300);
  assert.ok(await page.locator("#node-input-aggregations.input-error").count(), "bad aggregation marked");
  await page.fill("#node-input-aggregations", "avg:mean, n:count");
  await page.press("#node-input-aggregations", "Tab");
  await page.waitForTimeout(300);
  assert.equal(await page.locator("#node-input-aggregations.input-error").count(), 0, "good one accepted");
  await page.screenshot({ path: path.join(DOCS, "kafka-window.png") });
  await closeDialog();
});

test("pulsar out: the dialog shows its fields, effectively-once and the output option", async () => {
  await openNode("out1");
  for (const field of [
    "cluster",
    "topic",
    "topicType",
    "effectivelyOnce",
    "compression",
    "routingMode",
    "maxPending",
    "outputAfterAck",
  ]) {
    assert.ok(await page.isVisible(`#node-input-${field}`), field);
  }
  await page.fill("#node-input-topic", "a/b/c/d");
  await page.press("#node-input-topic", "Tab");
  await page.waitForTimeout(300);
  assert.ok(await page.locator("#node-input-topic.input-error").count(), "invalid topic marked");
  await page.screenshot({ path: path.join(DOCS, "pulsar-out.png") });
  await closeDialog();
});

test("kafka out: the dialog shows its fields, hides the topic for msg.topic, and marks a name Kafka refuses invalid", async () => {
  await openNode("kout1");
  for (const field of [
    "cluster",
    "topicType",
    "topic",
    "compression",
    "mapHeaders",
    "maxBatchRecords",
    "maxBatchBytes",
  ])
    assert.ok(await page.isVisible(`#node-input-${field}`), field);
  await page.fill("#node-input-topic", "bad topic/name");
  await page.press("#node-input-topic", "Tab");
  await page.waitForTimeout(300);
  assert.ok(await page.locator("#node-input-topic.input-error").count(), "invalid topic marked");
  await page.fill("#node-input-topic", "{{pulsar.topic}}-copy");
  await page.press("#node-input-topic", "Tab");
  await page.waitForTimeout(300);
  assert.equal(await page.locator("#node-input-topic.input-error").count(), 0, "a template is taken");
  await page.selectOption("#node-input-topicType", "msg");
  await page.waitForTimeout(200);
  assert.ok(!(await page.isVisible("#node-input-topic")), "msg.topic: no topic field");
  await page.selectOption("#node-input-topicType", "str");
  await page.screenshot({ path: path.join(DOCS, "kafka-out.png") });
  await closeDialog();
});

test("config nodes: kafka-cluster and pulsar-cluster dialogs accept their settings and hide secrets", async () => {
  for (const [id, shot, secret, select, value] of [
    [
      "kc",
      "kafka-cluster.png",
      "#node-config-input-password",
      "#node-config-input-saslMechanism",
      "scram-sha-512",
    ],
    ["pc", "pulsar-cluster.png", "#node-config-input-token", "#node-config-input-authMethod", "token"],
  ] as const) {
    await openNode(id, true);
    await page.selectOption(select, value);
    await page.waitForTimeout(200);
    assert.equal(await page.getAttribute(secret, "type"), "password");
    assert.ok(await page.isVisible(secret));
    await page.screenshot({ path: path.join(DOCS, shot) });
    await closeDialog();
  }
});

test("the help of each node is shown in the sidebar", async () => {
  const texts: string[] = await page.evaluate(() => {
    const RED = (window as unknown as { RED: { nodes: { getNodeHelp(type: string): string } } }).RED;
    return ["kafka-cluster", "kafka-in", "pulsar-cluster", "pulsar-out", "kafka-window", "kafka-out"].map(
      (t) => RED.nodes.getNodeHelp(t) ?? "",
    );
  });
  assert.equal(texts.length, 6);
  assert.match(texts[5] ?? "", /idempotent/);
  assert.match(texts[4] ?? "", /changelog/);
  for (const t of texts) assert.ok(t.length > 200, "help present");
  assert.match(texts[1] ?? "", /settled/);
});
