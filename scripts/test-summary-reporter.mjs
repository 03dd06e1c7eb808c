// node:test reporter that tallies results into a JSON file read by scripts/test.mjs for its closing line.
import fs from "node:fs";

export default async function* summary(source) {
  const counts = { passed: 0, failed: 0, skipped: 0, todo: 0, failures: [] };
  for await (const event of source) {
    const data = event.data ?? {};
    // suites report too; count only leaf tests (a suite's result repeats its children)
    if (event.type === "test:pass" || event.type === "test:fail") {
      if (data.details?.type === "suite") continue;
      if (data.skip) counts.skipped++;
      else if (data.todo) counts.todo++;
      else if (event.type === "test:pass") counts.passed++;
      else {
        counts.failed++;
        counts.failures.push(`${data.file ?? ""} › ${data.name}`);
      }
    }
  }
  const out = process.env.TEST_SUMMARY_FILE;
  if (out) fs.writeFileSync(out, JSON.stringify(counts));
  yield "";
}
