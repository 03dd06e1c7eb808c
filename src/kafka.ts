// Entry of the Kafka node set: registers the node types and nothing more.
import type { RED } from "./nodes/red";
import { registerKafkaCluster } from "./nodes/kafka-cluster";
import { registerKafkaIn } from "./nodes/kafka-in";
import { registerKafkaOut } from "./nodes/kafka-out";
import { registerKafkaWindow } from "./nodes/kafka-window";
import { registerSchemaRegistry } from "./nodes/schema-registry";

export = function registerKafkaNodes(RED: RED): void {
  registerKafkaCluster(RED);
  registerSchemaRegistry(RED);
  registerKafkaIn(RED);
  registerKafkaOut(RED);
  registerKafkaWindow(RED);
};
