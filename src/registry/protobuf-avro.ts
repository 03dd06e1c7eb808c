// A Protobuf message type as an Avro record schema: how pulsar-out publishes records kafka-in decoded from
// Protobuf with a Pulsar AVRO or JSON schema (Pulsar's own schemas describe records in Avro's terms). The
// schema describes exactly the values the decoder gives (codecs.ts), so a decoded record passes unchanged:
// - int32, sint32, sfixed32: int; uint32, fixed32 and the 64-bit integers: long (a uint64 beyond 2^63 - 1
//   does not fit and is the record's failure); float, double, bool, string, bytes: themselves;
// - an enum: an Avro enum of its value names (a number the schema does not name is the record's failure);
// - a message: a record of the same full name; as a field, a union of null and the record (null when unset);
// - repeated: an array; map<K, V>: a map (Avro map keys are strings, as the decoder gives them);
// - a oneof member or a proto3 `optional` field: a union of null and its type (left out when unset);
// - every other field has its Protobuf default as its Avro default, so a payload built in the flow may
//   leave fields out as Protobuf does.
import protobuf from "protobufjs";
import { protobufSchema, SchemaError, type ReferenceLoader } from "./codecs";
import type { RegisteredSchema } from "./client";

const SCALARS: Record<string, [avroType: string, defaultValue: unknown]> = {
  double: ["double", 0],
  float: ["float", 0],
  int32: ["int", 0],
  sint32: ["int", 0],
  sfixed32: ["int", 0],
  uint32: ["long", 0],
  fixed32: ["long", 0],
  int64: ["long", 0],
  sint64: ["long", 0],
  sfixed64: ["long", 0],
  uint64: ["long", 0],
  fixed64: ["long", 0],
  bool: ["boolean", false],
  string: ["string", ""],
  bytes: ["bytes", ""],
};

type AvroSchema = string | Record<string, unknown> | AvroSchema[];

/** Avro's namespace and name of a Protobuf full name (".pkg.Outer.Inner" -> "pkg.Outer", "Inner"; ".Top" -> "", "Top"). */
function avroName(fullName: string): { name: string; namespace: string } {
  const parts = fullName.replace(/^\./, "").split(".");
  const name = parts.pop() as string;
  // always written: an Avro name without a namespace would take the enclosing record's
  return { name, namespace: parts.join(".") };
}

/**
 * The Avro record schema (JSON text) of a message of a registered Protobuf schema: `message` by its name
 * (in the schema's package) or full name, by default the first message of the file (the one Confluent's
 * serializers register a subject for unless told otherwise).
 */
export async function protobufAsAvro(
  schema: RegisteredSchema,
  load: ReferenceLoader,
  message?: string,
): Promise<string> {
  const messages = await protobufSchema(schema, load);
  let top: protobuf.Type;
  if (message?.trim()) {
    const named = messages.messageNamed(message);
    if (!named) throw new SchemaError(`the Protobuf schema has no message ${message.trim()}`);
    top = named;
  } else {
    try {
      top = messages.messageAt([0]);
    } catch {
      throw new SchemaError("the Protobuf schema declares no message");
    }
  }
  const defined = new Set<string>();
  const named = (t: protobuf.Type | protobuf.Enum): AvroSchema | undefined => {
    const full = t.fullName.replace(/^\./, "");
    if (defined.has(full)) return full;
    defined.add(full);
    return undefined;
  };
  const enumOf = (e: protobuf.Enum): AvroSchema =>
    named(e) ?? { type: "enum", ...avroName(e.fullName), symbols: Object.keys(e.values) };
  const recordOf = (t: protobuf.Type): AvroSchema =>
    named(t) ?? {
      type: "record",
      ...avroName(t.fullName),
      fields: t.fieldsArray.map((f) => fieldOf(f.resolve())),
    };
  /** The type of one value of the field, and that value's Protobuf default. */
  const valueOf = (f: protobuf.Field): [AvroSchema, unknown] => {
    const r = f.resolvedType;
    if (r instanceof protobuf.Type) return [recordOf(r), null];
    if (r instanceof protobuf.Enum) {
      const explicit = (f.options as { default?: unknown } | undefined)?.default;
      // Protobuf's default: the first value declared (proto3 makes it the zero)
      return [enumOf(r), typeof explicit === "string" ? explicit : Object.keys(r.values)[0]];
    }
    const scalar = SCALARS[f.type];
    if (!scalar) throw new SchemaError(`field ${f.name} has a type Avro cannot describe: ${f.type}`);
    const explicit = (f.options as { default?: unknown } | undefined)?.default;
    if (explicit === undefined) return [scalar[0], scalar[1]];
    // Avro writes a bytes default as text, one character per byte (ISO-8859-1)
    if (f.type === "bytes")
      return [
        scalar[0],
        Buffer.from(typeof explicit === "string" ? explicit : "", "utf8").toString("latin1"),
      ];
    return [scalar[0], explicit];
  };
  const fieldOf = (f: protobuf.Field): Record<string, unknown> => {
    if (f instanceof protobuf.MapField)
      return { name: f.name, type: { type: "map", values: valueOf(f)[0] }, default: {} };
    const [type, def] = valueOf(f);
    if (f.repeated) return { name: f.name, type: { type: "array", items: type }, default: [] };
    if (f.resolvedType instanceof protobuf.Type || f.partOf)
      return { name: f.name, type: ["null", type], default: null };
    return { name: f.name, type, default: def };
  };
  return JSON.stringify(recordOf(top));
}
