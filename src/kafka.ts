// Entry of the Kafka node set: registers the node types and nothing more.
// The kafka-cluster and kafka-in types arrive with issue 4; until then the set loads empty.
import type { NodeAPI } from "node-red";

export = function registerKafkaNodes(_RED: NodeAPI): void {};
