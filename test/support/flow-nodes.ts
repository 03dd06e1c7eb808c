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

/**
 * A core trigger (id "t", to "out"): send nothing, then the original msg after 300 ms, unless `over` says
 * otherwise.
 */
export function trigger(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: "t",
    type: "trigger",
    op1: "",
    op1type: "nul",
    op2: "",
    op2type: "pay",
    duration: "300",
    units: "ms",
    extend: false,
    bytopic: "all",
    topic: "topic",
    outputs: 1,
    wires: [["out"]],
    ...over,
  };
}

/** A core csv (RFC mode, no header) putting the rows of a sequence's parts into "a single message [array]". */
export function csvRows(id: string, next: string): Record<string, unknown> {
  return {
    id,
    type: "csv",
    spec: "rfc",
    sep: ",",
    hdrin: false,
    hdrout: "none",
    multi: "mult",
    ret: "\\n",
    temp: "",
    skip: "0",
    strings: true,
    wires: [[next]],
  };
}
