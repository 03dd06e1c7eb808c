// A real `node-red` process for end-to-end tests: its own user directory, this package installed in it
// (linked to the working tree, or from a packed tarball), the Admin API on a free loopback port.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { requestJson, ROOT } from "./brokers";

/** The Node-RED under test: NODE_RED_HOME (a `node-red` package directory), else this project's own. */
export const nodeRedHome = process.env.NODE_RED_HOME
  ? path.resolve(process.env.NODE_RED_HOME)
  : path.dirname(require.resolve("node-red/package.json"));

/** Resolves a module (`@node-red/util`, the test helper, ...) as the Node-RED under test sees it. */
export function resolveFromNodeRed(id: string): string {
  return require.resolve(id, { paths: [nodeRedHome] });
}

export interface NodeRedProcess {
  url: string;
  userDir: string;
  /** Everything the process printed so far. */
  output(): string;
  /** GET/POST on the Admin API. */
  api(
    method: string,
    pathname: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; json: unknown }>;
  /** The latest status of each node, as the editor gets it over the /comms websocket (retained messages). */
  statuses(waitMs?: number): Promise<Map<string, { text?: string; fill?: string; shape?: string }>>;
  /** Deploys flows (type: full | flows | nodes). */
  deploy(flows: unknown[], type?: "full" | "flows" | "nodes"): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  readonly process: ChildProcess;
}

/** Whether `port` can be bound on 127.0.0.1 now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A port free now, for a server a test starts later (a broker binds its ports seconds after this). It is
 * taken below the kernel's ephemeral range (32768-60999 here): a port from that range can be taken in the
 * meantime by any outgoing connection as its local port (a Pulsar once could not bind its HTTP port so).
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await bindable(port)) return port;
  }
  throw new Error("no free port between 20000 and 32000");
}

/**
 * A fresh user directory with this package linked into node_modules (as `npm start` does), and any of the
 * project's other installed packages named in `alsoLink` (e.g. a peer node package for the benchmark).
 */
export function makeUserDir(alsoLink: string[] = []): string {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "nr-e2e-"));
  fs.mkdirSync(path.join(userDir, "node_modules"));
  fs.writeFileSync(path.join(userDir, "package.json"), JSON.stringify({ name: "e2e", private: true }));
  fs.symlinkSync(ROOT, path.join(userDir, "node_modules", "node-red-contrib-kafka-pulsar"), "dir");
  for (const name of alsoLink)
    fs.symlinkSync(path.join(ROOT, "node_modules", name), path.join(userDir, "node_modules", name), "dir");
  return userDir;
}

export async function startNodeRed(options: {
  userDir: string;
  env?: Record<string, string>;
  /** Flags for node itself, before red.js (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Node-RED's console log level in a settings.js this call writes (default info). */
  logLevel?: string;
}): Promise<NodeRedProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const settings = path.join(options.userDir, "settings.js");
  if (!fs.existsSync(settings)) {
    fs.writeFileSync(
      settings,
      `module.exports = { uiHost: "127.0.0.1", flowFile: "flows.json", credentialSecret: "e2e-secret", editorTheme: { tours: false }, telemetry: { enabled: false }, logging: { console: { level: "${options.logLevel ?? "info"}" } } };\n`,
    );
  }
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      path.join(nodeRedHome, "red.js"),
      "--userDir",
      options.userDir,
      "--port",
      String(port),
      "--settings",
      settings,
    ],
    { cwd: options.userDir, env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const api = (method: string, pathname: string, body?: unknown, headers: Record<string, string> = {}) =>
    requestJson(`${url}${pathname}`, method, body, { accept: "application/json", ...headers });

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node-red exited with ${child.exitCode}:\n${out}`);
    try {
      const r = await api("GET", "/settings");
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`node-red did not answer within 60 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }

  return {
    url,
    userDir: options.userDir,
    process: child,
    output: () => out,
    api,
    statuses(waitMs = 1000) {
      // ws as the Node-RED under test ships it (Node 20 has no WebSocket client of its own)
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const WebSocket = require(resolveFromNodeRed("ws")) as new (url: string) => {
        on(event: "open" | "message" | "error", cb: (data: Buffer) => void): void;
        send(text: string): void;
        close(): void;
      };
      return new Promise((resolve, reject) => {
        const found = new Map<string, { text?: string; fill?: string; shape?: string }>();
        const ws = new WebSocket(`${url.replace("http://", "ws://")}/comms`);
        ws.on("error", (err) => reject(new Error(`/comms: ${String(err)}`)));
        ws.on("open", () => {
          ws.send(JSON.stringify({ subscribe: "status/#" }));
          setTimeout(() => {
            ws.close();
            resolve(found);
          }, waitMs);
        });
        ws.on("message", (data) => {
          const batch = JSON.parse(String(data)) as { topic: string; data: Record<string, string> }[];
          for (const m of Array.isArray(batch) ? batch : [batch])
            if (m.topic.startsWith("status/")) found.set(m.topic.slice("status/".length), m.data);
        });
      });
    },
    async deploy(flows, type = "full") {
      const r = await api("POST", "/flows", flows, { "Node-RED-Deployment-Type": type });
      if (r.status !== 204 && r.status !== 200)
        throw new Error(`deploy failed: ${r.status} ${JSON.stringify(r.json)}`);
    },
    async stop(signal = "SIGINT") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
