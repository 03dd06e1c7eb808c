// Protobuf bodies written by Google's protoc (fetched from Maven Central by scripts/brokers.mjs): an
// encoder the tests did not write, for checking kafka-in's Protobuf decoding.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { protocPath } from "../../scripts/brokers.mjs";

const run = promisify(execFile);

/** The binary encoding of each message given in Protobuf's text format, as type `messageType` of `proto`. */
export async function protocEncode(proto: string, messageType: string, texts: string[]): Promise<Buffer[]> {
  const protoc = await protocPath();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "protoc-"));
  try {
    fs.writeFileSync(path.join(dir, "schema.proto"), proto);
    const out: Buffer[] = [];
    for (const text of texts) {
      const child = run(protoc, [`--proto_path=${dir}`, `--encode=${messageType}`, "schema.proto"], {
        encoding: "buffer",
        cwd: dir,
      });
      child.child.stdin?.end(text);
      out.push((await child).stdout);
    }
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
