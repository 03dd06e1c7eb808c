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

/** A core delay passing one msg every `seconds`, wired to `next`. */
export function rateDelay(id: string, next: string, seconds = 2): Record<string, unknown> {
  return {
    id,
    type: "delay",
    pauseType: "rate",
    timeout: "5",
    timeoutUnits: "seconds",
    rate: "1",
    nbRateUnits: String(seconds),
    rateUnits: "second",
    drop: false,
    outputs: 1,
    wires: [[next]],
  };
}

/** A core switch passing every msg but the payload `dropped`, recreating message sequences or not. */
export function dropSwitch(
  id: string,
  dropped: string,
  repair: boolean,
  next: string,
): Record<string, unknown> {
  return {
    id,
    type: "switch",
    property: "payload",
    propertyType: "msg",
    rules: [{ t: "neq", v: dropped, vt: "str" }],
    checkall: "true",
    repair,
    outputs: 1,
    wires: [[next]],
  };
}

/** A core join in automatic mode (the sequences msg.parts describe), building arrays of payloads. */
export function autoJoin(id: string, next: string): Record<string, unknown> {
  return {
    id,
    type: "join",
    mode: "auto",
    build: "array",
    property: "payload",
    propertyType: "msg",
    wires: [[next]],
  };
}
