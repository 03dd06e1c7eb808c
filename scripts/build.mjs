#!/usr/bin/env node
// Compiles src/ to nodes/lib/ (CommonJS) and copies icons/ to nodes/icons/, where Node-RED looks for them.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
fs.rmSync(path.join(ROOT, "nodes", "lib"), { recursive: true, force: true });
const tsc = spawnSync(
  process.execPath,
  [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"],
  {
    cwd: ROOT,
    stdio: "inherit",
  },
);
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
const icons = path.join(ROOT, "icons");
const target = path.join(ROOT, "nodes", "icons");
fs.rmSync(target, { recursive: true, force: true });
if (fs.existsSync(icons)) fs.cpSync(icons, target, { recursive: true });
