// The fault suite (test/fault) in the test command: every scenario in both delivery modes, with fewer
// records than `npm run fault` (FAULT_RECORDS, 20k by default), on a Kafka and a Pulsar of its own; and
// the other direction (pulsar-in -> kafka-out), whose delivery is settled only.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { runScenario, SCENARIOS, startLab, type Lab, type Mode } from "../fault/harness";
import { REVERSE_SCENARIOS, runReverseScenario } from "../fault/reverse";

const RECORDS = Number(process.env.FAULT_RECORDS ?? 20_000);
const MODES: Mode[] = ["settled", "effectively-once"];

let lab: Lab;
before(async () => {
  lab = await startLab();
});
after(async () => {
  await lab?.close();
});

for (const scenario of SCENARIOS) {
  for (const mode of MODES) {
    const goal =
      mode === "settled"
        ? "nothing lost"
        : `nothing lost, nothing duplicated${scenario.ordered ? ", each key in order" : ""}`;
    test(`${scenario.name}, ${mode}: ${goal}`, async (t) => {
      const r = await runScenario(lab, scenario, mode, RECORDS, (line) => t.diagnostic(line));
      assert.equal(r.problem, undefined, "every offset committed");
      assert.equal(r.lost, 0, "records lost");
      if (mode === "effectively-once") assert.equal(r.duplicated, 0, "records duplicated");
      if (mode === "effectively-once" && scenario.ordered)
        assert.equal(r.reordered, 0, "records out of key order");
      if (r.poison !== undefined) {
        assert.equal(r.deadLettered, `${r.poison}/${r.poison}`, "poison records in the dead-letter topic");
        assert.equal(r.goodDeadLettered, 0, "good records in the dead-letter topic");
      }
      if (scenario.joined) assert.equal(r.notJoined, 0, "Pulsar messages that are not a join");
      assert.ok(r.ok);
    });
  }
}

for (const scenario of REVERSE_SCENARIOS) {
  test(`${scenario.name}: nothing lost, every message acknowledged`, async (t) => {
    const r = await runReverseScenario(lab, scenario, RECORDS, (line) => t.diagnostic(line));
    assert.equal(r.problem, undefined, "every message acknowledged");
    assert.equal(r.lost, 0, "records lost");
    assert.ok(r.ok);
  });
}
