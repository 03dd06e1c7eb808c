// Registered schemas -> decoders of the bodies that follow the wire format's header, into plain values:
// Avro with avsc, Protobuf with protobufjs, JSON Schema as JSON text. The mapping (docs in kafka-in's help):
// - integers: numbers, and BigInt beyond 2^53 (Avro long, Protobuf 64-bit types, JSON integers);
// - Avro bytes and fixed, Protobuf bytes: Buffer; Avro decimal: a string of its exact digits ("-12.30");
//   other Avro logical types keep their underlying value (timestamp-millis: a number of milliseconds);
// - Avro unions: the value itself when its branches tell apart in JavaScript (null and one type), else
//   { "<branch name>": value }; enums: their symbol (Protobuf: its name); Protobuf fields left unset: their
//   default value.
import avro from "avsc";
import protobuf from "protobufjs";
import { parseJson, setOwn } from "../common/json";
import { KNOWN_PROTOS } from "./known-protos";

/** google/protobuf/descriptor.proto (custom options extend it), as protobufjs ships it but does not preload. */
const DESCRIPTOR_PROTO = "google/protobuf/descriptor.proto";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const descriptor = () => require("protobufjs/google/protobuf/descriptor.json") as protobuf.INamespace;
import type { RegisteredSchema, SchemaReference, SchemaType } from "./client";

export interface BodyDecoder {
  readonly type: SchemaType;
  /** Decodes the body starting at `offset` (after magic byte and schema id); throws on bytes that do not fit. */
  decode(bytes: Buffer, offset: number): unknown;
}

/** Fetches a referenced schema (subject and version). */
export type ReferenceLoader = (ref: SchemaReference) => Promise<RegisteredSchema>;

/** The schema cannot be turned into a decoder (invalid, or it names what no reference defines). */
export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SchemaError";
  }
}

export async function bodyDecoder(schema: RegisteredSchema, load: ReferenceLoader): Promise<BodyDecoder> {
  try {
    switch (schema.schemaType) {
      case "AVRO":
        return await avroDecoder(schema, load);
      case "PROTOBUF":
        return await protobufDecoder(schema, load);
      default:
        return jsonDecoder();
    }
  } catch (err) {
    if (err instanceof SchemaError) throw err;
    // an error of the registry (loading a reference) goes up as it is
    if ((err as Error).name === "RegistryError") throw err;
    throw new SchemaError(`the ${schema.schemaType} schema cannot be used: ${(err as Error).message}`);
  }
}

/** Each reference once, those it references first (the order definitions must be read in). */
async function referencesInOrder(
  schema: RegisteredSchema,
  load: ReferenceLoader,
): Promise<{ ref: SchemaReference; schema: RegisteredSchema }[]> {
  const out: { ref: SchemaReference; schema: RegisteredSchema }[] = [];
  const seen = new Set<string>();
  const visit = async (s: RegisteredSchema, depth: number): Promise<void> => {
    if (depth > 32) throw new SchemaError("schema references nest deeper than 32");
    for (const ref of s.references) {
      const key = `${ref.subject}\u0000${ref.version}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const loaded = await load(ref);
      await visit(loaded, depth + 1);
      out.push({ ref, schema: loaded });
    }
  };
  await visit(schema, 0);
  return out;
}

// ---- JSON Schema

function jsonDecoder(): BodyDecoder {
  return {
    type: "JSON",
    decode: (bytes, offset) => parseJson(bytes.toString("utf8", offset)),
  };
}

// ---- Avro

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const exactInteger = (n: bigint): number | bigint => (n >= MIN_SAFE && n <= MAX_SAFE ? Number(n) : n);

/** Avro long as a number, or a BigInt beyond 2^53 (avsc's own long refuses those). */
const exactLong = avro.types.LongType.__with({
  fromBuffer: (b: Buffer) => exactInteger(b.readBigInt64LE()),
  toBuffer: (n: number | bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(n));
    return b;
  },
  fromJSON: (n: number | bigint | string) => (typeof n === "string" ? exactInteger(BigInt(n)) : n),
  toJSON: (n: number | bigint) => (typeof n === "bigint" ? Number(n) : n),
  isValid: (n: unknown) =>
    typeof n === "bigint" ? n >= -(1n << 63n) && n < 1n << 63n : Number.isSafeInteger(n),
  compare: (a: number | bigint, b: number | bigint) => (a < b ? -1 : a > b ? 1 : 0),
});

/** Avro decimal (bytes or fixed: a big-endian two's complement unscaled integer) as a string of its digits. */
class DecimalAsString extends avro.types.LogicalType {
  private readonly scale: number;
  private readonly precision: number | undefined;
  constructor(schema: avro.Schema, opts?: unknown) {
    super(schema, opts);
    this.scale = Number((schema as { scale?: unknown }).scale ?? 0);
    const precision = (schema as { precision?: unknown }).precision;
    this.precision = typeof precision === "number" ? precision : undefined;
  }
  protected override _fromValue(b: Buffer): string {
    let n = 0n;
    for (const byte of b) n = (n << 8n) | BigInt(byte);
    if (b.length > 0 && b[0] & 0x80) n -= 1n << BigInt(8 * b.length);
    const negative = n < 0n;
    let digits = (negative ? -n : n).toString();
    if (this.scale > 0) {
      digits = digits.padStart(this.scale + 1, "0");
      digits = `${digits.slice(0, -this.scale)}.${digits.slice(-this.scale)}`;
    }
    return negative ? `-${digits}` : digits;
  }
  protected override _toValue(text: string): Buffer {
    const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(text));
    if (!m) throw new Error(`${String(text)} is not a decimal`);
    const fraction = (m[3] ?? "").padEnd(this.scale, "0");
    if (fraction.length > this.scale) throw new Error(`${text} has more than ${this.scale} decimals`);
    const digits = `${m[2] || "0"}${fraction}`;
    if (this.precision !== undefined && digits.replace(/^0+/, "").length > this.precision)
      throw new Error(`${text} has more than ${this.precision} digits`);
    let n = BigInt(digits);
    if (m[1]) n = -n;
    const out: number[] = [];
    for (;;) {
      out.unshift(Number(n & 0xffn));
      const rest = n >> 8n;
      const sign = out[0] & 0x80;
      if ((rest === 0n && !sign) || (rest === -1n && sign)) break;
      n = rest;
    }
    // a fixed holds exactly its size: sign-extended
    const size = (this.underlyingType as { size?: number }).size;
    if (size !== undefined) {
      if (out.length > size) throw new Error(`${text} does not fit ${size} bytes`);
      while (out.length < size) out.unshift(n < 0n ? 0xff : 0);
    }
    return Buffer.from(out);
  }
  protected override _resolve(type: avro.Type): ((x: unknown) => unknown) | undefined {
    return avro.Type.isType(type, "bytes", "fixed") ? (x) => x : undefined;
  }
}

/** avsc's options for every Avro type here: exact longs, decimals as strings, unions unwrapped where they can be. */
function avroOptions(): Partial<avro.ForSchemaOptions> {
  return {
    registry: { long: exactLong },
    wrapUnions: "auto",
    logicalTypes: { decimal: DecimalAsString },
    // a long written as an object ({"type": "long", "logicalType": "timestamp-micros"}) is exact too
    typeHook: (schema) =>
      typeof schema === "object" && (schema as { type?: unknown }).type === "long" ? exactLong : undefined,
  };
}

/**
 * The schema without the fields' defaults: reading with the writer's own schema never uses them, and the
 * Java parser the serializers use does not check them (avsc would refuse a schema whose default does not
 * fit, such as null for ["string", "null"]).
 */
function withoutDefaults(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutDefaults);
  if (schema === null || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "fields" && Array.isArray(v))
      out.fields = v.map((f: unknown) => {
        if (f === null || typeof f !== "object") return f;
        const { default: _dropped, ...rest } = f as Record<string, unknown>;
        void _dropped;
        return withoutDefaults(rest);
      });
    else out[k] = withoutDefaults(v);
  }
  return out;
}

/**
 * An Avro type from its schema (JSON text), with the value mapping of this module: what decodes into a
 * value also encodes from it (pulsar-out writes msg.payload with a schema given in the node).
 */
export function avroType(
  schemaJson: string,
  references: string[] = [],
  o: { keepDefaults?: boolean } = {},
): avro.Type {
  const opts = avroOptions();
  const parse = (text: string) =>
    (o.keepDefaults ? JSON.parse(text) : withoutDefaults(JSON.parse(text))) as avro.Schema;
  for (const ref of references) avro.Type.forSchema(parse(ref), opts);
  return avro.Type.forSchema(parse(schemaJson), opts);
}

const NAMED_KINDS = new Set(["record", "error", "enum", "fixed"]);
const AVRO_PRIMITIVES = new Set(["null", "boolean", "int", "long", "float", "double", "bytes", "string"]);
type AvroJson = string | AvroJson[] | { [k: string]: AvroJson } | number | boolean | null;

/** The full name of a named type's definition, in the namespace around it. */
function fullNameOf(def: Record<string, AvroJson>, around: string): { full: string; ns: string } {
  const name = typeof def.name === "string" ? def.name : "";
  if (name.includes(".")) return { full: name, ns: name.slice(0, name.lastIndexOf(".")) };
  const ns = typeof def.namespace === "string" ? def.namespace : around;
  return { full: ns ? `${ns}.${name}` : name, ns };
}

/**
 * An Avro schema with references as one self-contained definition (Pulsar takes no references): each
 * named type a reference defines is written out where the schema first names it, with its namespace
 * spelled out (an inlined type must not take the namespace of the record it lands in).
 */
export async function avroSelfContained(schema: RegisteredSchema, load: ReferenceLoader): Promise<string> {
  const refs = await referencesInOrder(schema, load);
  if (refs.length === 0) return schema.schema;
  const defined = new Map<string, Record<string, AvroJson>>();
  const isNamed = (node: Record<string, AvroJson>) =>
    typeof node.name === "string" && typeof node.type === "string" && NAMED_KINDS.has(node.type);
  /** The schemas a schema node holds: its fields' types, items, values. */
  const children = (node: Record<string, AvroJson>): AvroJson[] => [
    ...(Array.isArray(node.fields) ? node.fields.map((f) => (f as { type?: AvroJson }).type ?? null) : []),
    node.items ?? null,
    node.values ?? null,
  ];
  const collect = (node: AvroJson, around: string): void => {
    if (Array.isArray(node)) return node.forEach((n) => collect(n, around));
    if (!node || typeof node !== "object") return;
    let ns = around;
    if (isNamed(node)) {
      const named = fullNameOf(node, around);
      ns = named.ns;
      defined.set(named.full, {
        ...node,
        name: named.full.slice(named.full.lastIndexOf(".") + 1),
        namespace: ns,
      });
    }
    for (const c of children(node)) collect(c, ns);
  };
  for (const r of refs) collect(JSON.parse(r.schema.schema) as AvroJson, "");
  const written = new Set<string>();
  const inline = (node: AvroJson, around: string): AvroJson => {
    if (typeof node === "string") {
      if (AVRO_PRIMITIVES.has(node)) return node;
      const full = node.includes(".") || !around ? node : `${around}.${node}`;
      const key = defined.has(full) ? full : defined.has(node) ? node : undefined;
      if (key === undefined || written.has(key)) return node;
      written.add(key);
      return inline(defined.get(key) as AvroJson, around);
    }
    if (Array.isArray(node)) return node.map((n) => inline(n, around));
    if (!node || typeof node !== "object") return node;
    let ns = around;
    if (isNamed(node)) {
      const named = fullNameOf(node, around);
      ns = named.ns;
      written.add(named.full);
    }
    const out: Record<string, AvroJson> = { ...node };
    if (Array.isArray(node.fields))
      out.fields = node.fields.map((f) =>
        f && typeof f === "object" && !Array.isArray(f) ? { ...f, type: inline(f.type ?? null, ns) } : f,
      );
    if (node.items !== undefined) out.items = inline(node.items, ns);
    if (node.values !== undefined) out.values = inline(node.values, ns);
    return out;
  };
  return JSON.stringify(inline(JSON.parse(schema.schema) as AvroJson, ""));
}

async function avroDecoder(schema: RegisteredSchema, load: ReferenceLoader): Promise<BodyDecoder> {
  const refs = (await referencesInOrder(schema, load)).map((r) => r.schema.schema);
  const type = avroType(schema.schema, refs);
  return { type: "AVRO", decode: (bytes, offset): unknown => plain(type.fromBuffer(bytes.subarray(offset))) };
}

/** avsc makes records instances of a class per record type: plain objects, as a msg's payload should be. */
function plain(value: unknown): unknown {
  if (value === null || typeof value !== "object" || Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = plain(value[i]);
    return value;
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value)) setOwn(out, k, plain((value as Record<string, unknown>)[k]));
  return out;
}

// ---- Protobuf

const LONG_TYPES = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"]);

/** Confluent's message indexes after the schema id: which message of the schema the body is. */
function readIndexes(bytes: Buffer, offset: number): { path: number[]; offset: number } {
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (offset >= bytes.length) throw new Error("the message indexes run past the end of the value");
      const b = bytes[offset++];
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) break;
      shift += 7;
      if (shift > 28) throw new Error("a message index is too long");
    }
    // zigzag
    return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
  };
  const count = varint();
  if (count < 0 || count > 64) throw new Error(`${count} message indexes`);
  if (count === 0) return { path: [0], offset };
  const path: number[] = [];
  for (let i = 0; i < count; i++) path.push(varint());
  return { path, offset };
}

/** The message types a namespace declares, in declaration order (what the indexes count). */
/**
 * The message types a namespace declares, in declaration order (what the indexes count): not a proto2
 * group's type, nor a map entry written out (Confluent's serializers count neither).
 */
const messagesOf = (ns: protobuf.NamespaceBase): protobuf.Type[] =>
  ns.nestedArray.filter(
    (n): n is protobuf.Type =>
      n instanceof protobuf.Type &&
      (n as { group?: boolean }).group !== true &&
      (n.options as { map_entry?: unknown } | undefined)?.map_entry !== true,
  );

/** A Protobuf schema read with its references: its message types by Confluent's index path, or by name. */
export interface ProtobufSchema {
  /** The message at `path` (Confluent's message indexes: [0] is the first message of the file). */
  messageAt(path: number[]): protobuf.Type;
  /** A message by its name in the schema's package, or its full name. */
  messageNamed(name: string): protobuf.Type | undefined;
}

export async function protobufSchema(
  schema: RegisteredSchema,
  load: ReferenceLoader,
): Promise<ProtobufSchema> {
  const root = new protobuf.Root();
  const files = new Set<string>();
  const addFile = (name: string, text: string) => {
    if (files.has(name)) return;
    files.add(name);
    const parsed = protobuf.parse(text, root, { keepCase: true });
    for (const imported of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) {
      if (files.has(imported)) continue;
      // what no reference supplied: protobufjs's google/protobuf/*, or a file Confluent takes as known
      const common =
        protobuf.common.get(imported) ?? (imported === DESCRIPTOR_PROTO ? descriptor() : undefined);
      if (common) {
        files.add(imported);
        root.addJSON((common as { nested: Record<string, protobuf.AnyNestedObject> }).nested);
      } else if (KNOWN_PROTOS[imported] !== undefined) addFile(imported, KNOWN_PROTOS[imported]);
    }
  };
  for (const { ref, schema: s } of await referencesInOrder(schema, load)) addFile(ref.name, s.schema);
  // the schema's own declaration order, read from it alone (references of the same package share the
  // namespace in the full root)
  const own = protobuf.parse(schema.schema, new protobuf.Root(), { keepCase: true });
  const ownNs = own.package ? own.root.lookup(own.package) : own.root;
  if (!(ownNs instanceof protobuf.Namespace) && !(ownNs instanceof protobuf.Root))
    throw new SchemaError(`package ${own.package ?? ""} declares nothing`);
  addFile("\u0000main", schema.schema);
  root.resolveAll();
  const byPath = new Map<string, protobuf.Type>();
  return {
    messageAt: (path) => {
      const key = path.join(".");
      const known = byPath.get(key);
      if (known) return known;
      let ns: protobuf.NamespaceBase = ownNs;
      let found: protobuf.Type | undefined;
      for (const i of path) {
        found = messagesOf(ns)[i];
        if (!found) throw new Error(`the schema has no message at index ${key}`);
        ns = found;
      }
      const resolved = root.lookupType((found as protobuf.Type).fullName);
      byPath.set(key, resolved);
      return resolved;
    },
    messageNamed: (name) => {
      const n = name.trim().replace(/^\./, "");
      for (const candidate of own.package ? [`${own.package}.${n}`, n] : [n]) {
        const t = root.lookup(candidate);
        if (t instanceof protobuf.Type) return t;
      }
      return undefined;
    },
  };
}

async function protobufDecoder(schema: RegisteredSchema, load: ReferenceLoader): Promise<BodyDecoder> {
  const messages = await protobufSchema(schema, load);
  return {
    type: "PROTOBUF",
    decode: (bytes, offset) => {
      const { path, offset: bodyAt } = readIndexes(bytes, offset);
      const type = messages.messageAt(path);
      const message = type.decode(bytes.subarray(bodyAt));
      const object = type.toObject(message, {
        longs: String,
        enums: String,
        defaults: true,
        arrays: true,
        objects: true,
      });
      return exactLongs(type, object);
    },
  };
}

/** protobufjs gives 64-bit integers as strings (longs: String): numbers, or BigInt beyond 2^53. */
function exactLongs(type: protobuf.Type, object: Record<string, unknown>): Record<string, unknown> {
  for (const field of type.fieldsArray) {
    const value = object[field.name];
    if (value === undefined || value === null) continue;
    const one = (v: unknown): unknown => {
      if (LONG_TYPES.has(field.type) && typeof v === "string") return exactInteger(BigInt(v));
      if (field.resolvedType instanceof protobuf.Type && v !== null && typeof v === "object")
        return exactLongs(field.resolvedType, v as Record<string, unknown>);
      return v;
    };
    if (field.map) {
      const map = value as Record<string, unknown>;
      for (const k of Object.keys(map)) map[k] = one(map[k]);
    } else if (field.repeated && Array.isArray(value)) object[field.name] = value.map(one);
    else object[field.name] = one(value);
  }
  return object;
}
