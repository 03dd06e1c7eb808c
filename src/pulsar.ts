// Entry of the Pulsar node set: registers the node types and nothing more.
// The pulsar-cluster and pulsar-out types arrive with issue 4; until then the set loads empty.
import type { NodeAPI } from "node-red";

export = function registerPulsarNodes(_RED: NodeAPI): void {};
