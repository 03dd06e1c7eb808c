#!/usr/bin/env node
// The one test command (README, .ci/run): build, lint, unit tests, then the integration tests against
// real Kafka and Pulsar started by scripts/brokers.mjs when none are running, then some of them again on
// Node 22 with Node-RED 5 (scripts/compat.mjs); stops what it started. The fault suite (brokers of its own)
// and then the Node 22 run go side by side with the other integration tests.
//
//   --unit-only             build, lint and unit tests only
//   SKIP_INTEGRATION=1      a developer's explicit opt-out of the integration tests (refused when CI is set)
//   TEST_FILTER=<substr>    only test files whose path contains <substr>
//   TEST_LANES=1            the fault suite after the other integration tests, not beside them
//
// A test file that hangs (a test that never ends, a handle that keeps its process alive) fails after
// TEST_TIMEOUT_MS (40 min; Node 20 applies --test-timeout to each file as a whole, and the fault suite takes
// 30), and a whole run still going after RUN_LIMIT_MS (75 min) is killed and counted as failed, so a hang
// is a named failure within CI's time instead of a CI run that never ends.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { COMPAT_TESTS, compatEnv, prepareCompat } from "./compat.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const EMPTY = () => ({ passed: 0, failed: 0, skipped: 0, todo: 0, failures: [] });
const merge = (a, b) => ({
  passed: a.passed + b.passed,
  failed: a.failed + b.failed,
  skipped: a.skipped + b.skipped,
  todo: a.todo + b.todo,
  failures: [...a.failures, ...b.failures],
});
// Integration files of the second lane: they bring brokers of their own (and wait on them most of the time).
const FAULT_LANE = ["test/integration/fault.test.ts"];
const TEST_TIMEOUT_MS = Number(process.env.TEST_TIMEOUT_MS) || 40 * 60_000;
const RUN_LIMIT_MS = Number(process.env.RUN_LIMIT_MS) || 75 * 60_000;
const STARTED = Date.now();
const args = new Set(process.argv.slice(2));
const inCI = Boolean(process.env.CI);

function step(name, cmd, argv, opts = {}) {
  console.log(`\n=== ${name}: ${cmd} ${argv.join(" ")}`);
  const r = spawnSync(cmd, argv, { cwd: ROOT, stdio: "inherit", ...opts });
  return r.status === 0;
}

function findTests(dir) {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  const out = [];
  for (const e of fs.readdirSync(abs, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(".test.ts"))
      out.push(path.relative(ROOT, path.join(e.parentPath ?? e.path, e.name)));
  }
  const filter = process.env.TEST_FILTER;
  return out.filter((f) => !filter || f.includes(filter)).sort();
}

// `prefix`: the run's output lines are prefixed with it (a run beside another one, see LANES).
async function runTests(label, files, extraEnv = {}, nodeBin = process.execPath, prefix = "") {
  const totals = { passed: 0, failed: 0, skipped: 0, todo: 0, failures: [] };
  if (files.length === 0) {
    console.log(`\n=== ${label}: no test files`);
    return totals;
  }
  const summaryFile = path.join(os.tmpdir(), `test-summary-${process.pid}-${label}.json`);
  console.log(`\n=== ${label}: ${files.length} file(s)`);
  const child = spawn(
    nodeBin,
    [
      "--import",
      "tsx",
      "--test",
      "--test-concurrency=1",
      `--test-timeout=${TEST_TIMEOUT_MS}`,
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      `--test-reporter=${path.join(ROOT, "scripts", "test-summary-reporter.mjs")}`,
      "--test-reporter-destination=stderr",
      ...files,
    ],
    {
      cwd: ROOT,
      stdio: prefix ? ["ignore", "pipe", "pipe"] : "inherit",
      env: { ...process.env, ...extraEnv, TEST_SUMMARY_FILE: summaryFile },
      detached: true, // its own process group: the watchdog below kills what it started too
    },
  );
  let killed = false;
  const watchdog = setTimeout(
    () => {
      killed = true;
      console.log(`\n=== ${label}: still running after ${RUN_LIMIT_MS / 60_000} min in all; killed`);
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    },
    Math.max(0, RUN_LIMIT_MS - (Date.now() - STARTED)),
  );
  if (prefix) {
    prefixLines(child.stdout, process.stdout, prefix);
    prefixLines(child.stderr, process.stderr, prefix);
  }
  const code = await new Promise((resolve) => {
    child.on("error", () => resolve(1));
    child.on("close", (c) => resolve(c ?? 1));
  });
  clearTimeout(watchdog);
  if (killed) {
    totals.failed++;
    totals.failures.push(
      `${label}: killed after ${RUN_LIMIT_MS / 60_000} min (a test hung; see its last lines)`,
    );
  }
  try {
    Object.assign(totals, JSON.parse(fs.readFileSync(summaryFile, "utf8")));
    fs.rmSync(summaryFile, { force: true });
  } catch {
    totals.failed++;
    totals.failures.push(`${label}: the test runner exited with ${code} and wrote no summary`);
  }
  if (code !== 0 && totals.failed === 0) {
    totals.failed++;
    totals.failures.push(`${label}: the test runner exited with ${code}`);
  }
  return totals;
}

function prefixLines(from, to, prefix) {
  let rest = "";
  from.setEncoding("utf8");
  from.on("data", (d) => {
    const lines = (rest + d).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) to.write(`${prefix}${line}\n`);
  });
  from.on("end", () => rest && to.write(`${prefix}${rest}\n`));
}

function brokers(...argv) {
  return spawnSync(process.execPath, [path.join(ROOT, "scripts", "brokers.mjs"), ...argv], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
  });
}

// The editor tests drive Debian's Chromium (never a browser downloaded by a test tool). A fresh machine
// gets it from the Debian packages when we may install them; otherwise the editor tests fail, loudly.
function ensureChromium() {
  const chromium = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
  if (fs.existsSync(chromium)) return;
  if (process.getuid?.() !== 0 || spawnSync("sh", ["-c", "command -v apt-get"]).status !== 0) {
    console.log(
      `\n=== chromium: ${chromium} is missing and cannot be installed here; the editor tests will fail`,
    );
    return;
  }
  step("chromium", "sh", [
    "-c",
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null",
  ]);
}

// The compatibility run: some integration tests again on Node 22 with Node-RED 5 (scripts/compat.mjs).
async function runCompat(brokerEnv, prefix = "") {
  const files = COMPAT_TESTS.filter((f) => !process.env.TEST_FILTER || f.includes(process.env.TEST_FILTER));
  if (files.length === 0) {
    console.log("\n=== compat: no compat test file matches TEST_FILTER");
    return EMPTY();
  }
  try {
    console.log("\n=== compat: Node 22 and Node-RED 5 (prepared once per machine)");
    const { env, versions } = compatEnv(prepareCompat(), { ...process.env, ...brokerEnv });
    console.log(`=== compat: the tests run on ${versions}`);
    return await runTests("compat", files, env, env.COMPAT_NODE_BIN, prefix);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { ...EMPTY(), failed: 1, failures: [`compat: ${message.split("\n")[0]}`] };
  }
}

async function main() {
  const problems = [];
  if (!step("build", process.execPath, [path.join(ROOT, "scripts", "build.mjs")]))
    problems.push("build failed");
  if (
    !step("typecheck tests", process.execPath, [
      path.join(ROOT, "node_modules", "typescript", "bin", "tsc"),
      "-p",
      "tsconfig.check.json",
    ])
  )
    problems.push("type check failed");
  if (!step("lint", process.execPath, [path.join(ROOT, "node_modules", "eslint", "bin", "eslint.js"), "."]))
    problems.push("lint failed");
  if (
    !step("format", process.execPath, [
      path.join(ROOT, "node_modules", "prettier", "bin", "prettier.cjs"),
      "--check",
      ".",
    ])
  )
    problems.push("format check failed");

  const unit = await runTests("unit", findTests("test/unit"));
  let integration = EMPTY();
  let compat = EMPTY();
  const integrationFiles = findTests("test/integration");

  if (args.has("--unit-only")) {
    console.log("\n=== integration: not run (--unit-only)");
  } else if (process.env.SKIP_INTEGRATION === "1" && !inCI) {
    console.log("\n=== integration: skipped by SKIP_INTEGRATION=1 (developer opt-out; not allowed in CI)");
  } else if (integrationFiles.length > 0) {
    ensureChromium();
    const before = brokers("status");
    const alreadyRunning = before.status === 0;
    // a broker that was already ready is left alone at the end; only the others are stopped
    const readyBefore = ["kafka", "pulsar", "registry"].filter((b) =>
      new RegExp(`^${b}\\s+ready`, "m").test(before.stdout),
    );
    let started = false;
    if (alreadyRunning) {
      console.log("\n=== brokers: already running, using them (they will be left running)");
    } else {
      console.log("\n=== brokers: starting Kafka, Pulsar and the schema registry");
      const r = spawnSync(process.execPath, [path.join(ROOT, "scripts", "brokers.mjs"), "start"], {
        cwd: ROOT,
        stdio: "inherit",
      });
      started = true;
      if (r.status !== 0) {
        problems.push("the brokers did not start: integration tests could not run");
        integration.failed += integrationFiles.length;
        integration.failures.push(...integrationFiles.map((f) => `${f}: not run, brokers down`));
      }
    }
    try {
      if (integration.failed === 0) {
        const envLines = brokers("env").stdout.trim().split("\n");
        const brokerEnv = Object.fromEntries(
          envLines.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
        );
        // Two lanes side by side (the fault suite waits on restarts and cuts of brokers of its own most
        // of the time): the fault suite and then the compatibility run, beside the other integration tests.
        // TEST_LANES=1 runs them one after the other.
        const sideBySide = process.env.TEST_LANES !== "1";
        const faultFiles = integrationFiles.filter((f) => FAULT_LANE.includes(f));
        const otherFiles = integrationFiles.filter((f) => !FAULT_LANE.includes(f));
        const faultLane = async () => {
          const fault = await runTests(
            "fault",
            faultFiles,
            brokerEnv,
            undefined,
            sideBySide ? "[fault] " : "",
          );
          return { fault, compat: await runCompat(brokerEnv, sideBySide ? "[compat] " : "") };
        };
        const otherLane = () => runTests("integration", otherFiles, brokerEnv);
        let lanes;
        if (sideBySide) {
          const [other, side] = await Promise.all([otherLane(), faultLane()]);
          lanes = { other, ...side };
        } else {
          const other = await otherLane();
          lanes = { other, ...(await faultLane()) };
        }
        integration = merge(lanes.other, lanes.fault);
        compat = lanes.compat;
      }
    } finally {
      if (started) {
        console.log("\n=== brokers: stopping what this run started");
        for (const broker of ["kafka", "pulsar", "registry"].filter((b) => !readyBefore.includes(b))) {
          spawnSync(process.execPath, [path.join(ROOT, "scripts", "brokers.mjs"), "stop", broker], {
            cwd: ROOT,
            stdio: "inherit",
          });
        }
      }
    }
  }

  const all = [unit, integration, compat];
  const sum = (k) => all.reduce((n, t) => n + t[k], 0);
  const passed = sum("passed");
  const failed = sum("failed");
  const skipped = sum("skipped") + sum("todo");
  for (const f of all.flatMap((t) => t.failures)) console.log(`  failed: ${f}`);
  for (const p of problems) console.log(`  problem: ${p}`);
  const ok = failed === 0 && problems.length === 0;
  console.log(
    `\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped (unit ${unit.passed}/${unit.passed + unit.failed}, integration ${integration.passed}/${integration.passed + integration.failed}, Node 22 + Node-RED 5 ${compat.passed}/${compat.passed + compat.failed})${problems.length ? `; ${problems.length} problem(s)` : ""} — ${ok ? "OK" : "FAILED"}`,
  );
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
