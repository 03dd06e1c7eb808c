// Core nodes as the tests' flows wire them.

/** A core switch on msg.kafka.partition: partition i goes to `targets[i]` (joining per partition). */
export function byPartition(id: string, targets: readonly string[]): Record<string, unknown> {
  return {
    id,
    type: "switch",
    property: "kafka.partition",
    propertyType: "msg",
    rules: targets.map((_, p) => ({ t: "eq", v: String(p), vt: "num" })),
    checkall: "false",
    outputs: targets.length,
    wires: targets.map((t) => [t]),
  };
}
