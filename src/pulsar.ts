// Entry of the Pulsar node set: registers the node types and nothing more.
import type { RED } from "./nodes/red";
import { registerPulsarCluster } from "./nodes/pulsar-cluster";
import { registerPulsarIn } from "./nodes/pulsar-in";
import { registerPulsarOut } from "./nodes/pulsar-out";

export = function registerPulsarNodes(RED: RED): void {
  registerPulsarCluster(RED);
  registerPulsarIn(RED);
  registerPulsarOut(RED);
};
