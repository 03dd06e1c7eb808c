// Where the test brokers are and how to run the official CLI tools against them (scripts/brokers.mjs).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";

export const ROOT = path.resolve(__dirname, "..", "..");
export const kafkaBrokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
export const pulsarUrl = process.env.PULSAR_URL ?? "pulsar://127.0.0.1:6650";
export const pulsarHttpUrl = process.env.PULSAR_HTTP_URL ?? "http://127.0.0.1:8080";
/** The test schema registry's Confluent-compatible API (scripts/brokers.mjs starts Apicurio Registry). */
export const registryUrl = process.env.REGISTRY_URL ?? "http://127.0.0.1:8081/apis/ccompat/v7";

/** A name no other test (or earlier run) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

export interface ToolOptions {
  input?: string;
  timeoutMs?: number;
  /** The brokers' settings (e.g. an own broker's ports); the test process's environment by default. */
  env?: NodeJS.ProcessEnv;
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs an official tool through scripts/brokers.mjs: `kafka-tool <name>`, `pulsar-client`, `pulsar-admin`
 * or `pulsar-perf`. Resolves with the exit code and output; rejects only when the tool cannot start.
 */
export function runTool(tool: string, args: string[], opts: ToolOptions = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "scripts", "brokers.mjs"), tool, ...args], {
      cwd: ROOT,
      env: opts.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** Like runTool, but rejects with the tool's output when it exits non-zero. */
export async function runToolOk(tool: string, args: string[], opts: ToolOptions = {}): Promise<ToolResult> {
  const r = await runTool(tool, args, opts);
  if (r.code !== 0) throw new Error(`${tool} ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** An HTTP request with an optional JSON body; the answer's body parsed as JSON when it is JSON. */
export async function requestJson(
  url: string,
  method: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, json };
}

/** GET or PUT on Pulsar's admin REST API. */
export function pulsarAdmin(
  method: string,
  pathname: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  return requestJson(`${pulsarHttpUrl}${pathname}`, method, body);
}
