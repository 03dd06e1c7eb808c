// kafka-in's delivery between real core nodes in a real Node-RED runtime, without brokers
// (test/support/delivery-lab.ts): what a deploy changes in the flow is what the settlement follows.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { lab, loadLab, redeploy } from "../support/delivery-lab";
import { stopHelper, unloadFlow } from "../support/flow";
import { waitFor } from "../support/wait";
import { autoJoin, dropSwitch, rateDelay } from "../support/flow-nodes";

after(() => stopHelper());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** batch of 3 -> a slow delay -> switch (dropping v4; recreating sequences or not) -> join -> sink. */
const flow = (repair: boolean) => [
  { id: "in", type: "lab-source", wires: [["b"]] },
  { id: "b", type: "batch", mode: "count", count: "3", overlap: "0", wires: [["d"]] },
  rateDelay("d", "sw"),
  { ...dropSwitch("sw", "v4", repair, "j"), name: repair ? "repair" : "plain" },
  autoJoin("j", "out"),
  { id: "out", type: "lab-sink", wires: [] },
];

test("issue 12 review F3: a 'nodes' deploy that turns on a switch's 'recreate message sequences' (kafka-in not restarted) is followed: with Pulsar down nothing is committed that Pulsar never had", async () => {
  await loadLab(flow(false));
  try {
    lab.produce(3); // the plain switch passes each part on; the join completes the group
    await waitFor("the first group committed", () => lab.committed() === 3n, 15_000, 100);
    await redeploy(flow(true), "nodes");
    lab.up = false;
    lab.produce(3); // v3, v4 (dropped by the rule), v5: the switch now holds the parts until the sequence is whole
    await sleep(6500);
    assert.deepEqual(
      lab.lost((v) => v === "v4"),
      [],
      `committed ${lab.committed()} while Pulsar had nothing of the group`,
    );
    lab.up = true;
    lab.ack();
    await waitFor("the group committed once Pulsar has it", () => lab.committed() === 6n, 15_000, 100);
  } finally {
    await unloadFlow();
  }
});
