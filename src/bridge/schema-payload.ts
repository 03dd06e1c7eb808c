// pulsar-out's schema option: msg.payload written as Avro binary (AVRO) or JSON text (JSON) of the Avro
// schema given in the node, and the schema the producer declares to Pulsar with it. JSON is written as
// Pulsar's JSON schema readers (Jackson) read it: the declared fields only, bytes as base64, a union's
// value as itself, longs as their digits.
import type avro from "avsc";
import { BridgeError, ConfigurationError, describeError } from "../common/errors";
import { jsonText, setOwn } from "../common/json";
import { RegistryError, type RegistryClient } from "../registry/client";
import { avroSelfContained, avroType } from "../registry/codecs";
import { protobufAsAvro } from "../registry/protobuf-avro";
import type { ProducerSchema } from "../pulsar/types";

export interface PayloadSchema {
  producerSchema: ProducerSchema;
  /** From a registry subject: its version. */
  version?: number;
  /** msg.payload -> the message body; a payload the schema does not describe throws (the record's failure). */
  encode: (payload: unknown) => Buffer;
}

/** Where `value` first differs from what `type` describes: a field path, for the error. */
function firstMismatch(type: avro.Type, value: unknown): string {
  let found: string | undefined;
  try {
    type.isValid(value, {
      errorHook: (path: string[], v: unknown) => {
        if (found !== undefined) return;
        let shown: string;
        try {
          shown = jsonText(v) ?? String(v);
        } catch {
          shown = String(v);
        }
        found = `${path.length ? path.join(".") : "the payload"} (${shown.length > 60 ? `${shown.slice(0, 57)}...` : shown})`;
      },
    });
  } catch {
    // a value avsc cannot even look at
  }
  return found ?? "the payload";
}

type AnyType = avro.Type & {
  typeName: string;
  fields?: { name: string; type: AnyType; defaultValue(): unknown }[];
  itemsType?: AnyType;
  valuesType?: AnyType;
  types?: AnyType[];
  branchName?: string;
};

/** The value as Pulsar's JSON schema reads it (the value is valid for `type`). */
function jsonValue(type: AnyType, v: unknown): unknown {
  switch (type.typeName) {
    case "record":
    case "error": {
      const out: Record<string, unknown> = {};
      const record = v as Record<string, unknown>;
      for (const f of type.fields ?? [])
        setOwn(
          out,
          f.name,
          jsonValue(f.type, record[f.name] === undefined ? f.defaultValue() : record[f.name]),
        );
      return out;
    }
    case "array":
      return (v as unknown[]).map((x) => jsonValue(type.itemsType as AnyType, x));
    case "map": {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>))
        setOwn(out, k, jsonValue(type.valuesType as AnyType, x));
      return out;
    }
    case "union:unwrapped":
      return v === null ? null : jsonValue((type.types ?? []).find((t) => t.isValid(v)) as AnyType, v);
    case "union:wrapped": {
      if (v === null) return null;
      const [branch, inner] = Object.entries(v as Record<string, unknown>)[0] ?? [];
      const t = (type.types ?? []).find((x) => x.branchName === branch);
      return t ? jsonValue(t, inner) : inner;
    }
    case "bytes":
    case "fixed":
      return Buffer.isBuffer(v) ? v.toString("base64") : v;
    default:
      return v;
  }
}

export function payloadSchema(kind: "avro" | "json", definition: string): PayloadSchema {
  let type: AnyType;
  try {
    // with the fields' defaults (a field left out takes its default); avsc refuses some defaults Java takes
    try {
      type = avroType(definition, [], { keepDefaults: true });
    } catch {
      type = avroType(definition);
    }
  } catch (err) {
    throw new ConfigurationError(
      "pulsar-out.errors.schema",
      `the schema is not a valid Avro schema: ${(err as Error).message}`,
    );
  }
  // Pulsar's AVRO and JSON schemas describe a record (a struct)
  if (type.typeName !== "record")
    throw new ConfigurationError(
      "pulsar-out.errors.schema",
      `the schema must be an Avro record, not ${type.typeName}: Pulsar's ${kind === "avro" ? "AVRO" : "JSON"} schemas are records`,
    );
  const producerSchema: ProducerSchema = {
    type: kind === "avro" ? "AVRO" : "JSON",
    // as given (its defaults and logical types decide Pulsar's compatibility checks), on one line
    definition: JSON.stringify(JSON.parse(definition)),
    name: (type as { name?: string }).name ?? "",
  };
  const refuse = (payload: unknown, why?: string) =>
    new BridgeError(
      "pulsar-out.errors.schema-payload",
      `msg.payload does not fit the ${producerSchema.type} schema at ${why ?? firstMismatch(type, payload)}`,
      false,
    );
  const write =
    kind === "avro"
      ? (payload: unknown) => type.toBuffer(payload)
      : (payload: unknown) => Buffer.from(jsonText(jsonValue(type, payload)) ?? "null", "utf8");
  return {
    producerSchema,
    encode: (payload) => {
      let valid: boolean;
      try {
        valid = type.isValid(payload);
      } catch {
        valid = false;
      }
      if (!valid) throw refuse(payload);
      try {
        return write(payload);
      } catch (err) {
        throw refuse(payload, `the payload (${(err as Error).message})`);
      }
    },
  };
}

/**
 * pulsar-out's schema source "registry": a loader of the latest schema of `subject`, asked once (again
 * after a failure). An Avro subject is used as it is; a Protobuf subject as the Avro record of its message
 * `message` (default: the first; see protobuf-avro.ts). The registry away is a failure the records wait
 * out; a subject of another type, or a schema that cannot be used, a configuration error.
 */
export function registryPayloadSchema(
  client: RegistryClient,
  subject: string,
  kind: "avro" | "json",
  message = "",
): (atLeast?: number) => Promise<PayloadSchema> {
  const name = subject.trim();
  if (!name)
    throw new BridgeError(
      "pulsar-out.errors.no-subject",
      "the schema source 'registry' needs a subject",
      false,
    );
  const unreachable = (err: unknown) =>
    new BridgeError(
      "pulsar-out.errors.schema-registry",
      `cannot read the schema of subject ${name}: ${describeError(err).message}`,
      true,
    );
  const read = async (): Promise<PayloadSchema> => {
    let s;
    try {
      s = await client.schemaOf(name, "latest");
    } catch (err) {
      throw unreachable(err);
    }
    const references = (ref: { subject: string; version: number }) =>
      client.schemaOf(ref.subject, ref.version);
    const versioned = (p: PayloadSchema): PayloadSchema =>
      s.version === undefined ? p : { ...p, version: s.version };
    if (s.schemaType === "AVRO") {
      let definition: string;
      try {
        // Pulsar takes one self-contained definition: the references' types written out
        definition = await avroSelfContained(s, references);
      } catch (err) {
        if (err instanceof RegistryError) throw unreachable(err);
        throw new ConfigurationError(
          "pulsar-out.errors.schema",
          `the Avro schema of subject ${name} cannot be used: ${(err as Error).message}`,
        );
      }
      return versioned(payloadSchema(kind, definition));
    }
    if (s.schemaType !== "PROTOBUF")
      throw new ConfigurationError(
        "pulsar-out.errors.schema",
        `the latest schema of subject ${name} is ${s.schemaType}: only Avro and Protobuf subjects give a Pulsar schema`,
      );
    let definition: string;
    try {
      definition = await protobufAsAvro(s, references, message);
    } catch (err) {
      // a reference the registry could not serve: asked again
      if (err instanceof RegistryError) throw unreachable(err);
      throw new ConfigurationError(
        "pulsar-out.errors.schema",
        `the Protobuf schema of subject ${name} cannot be used: ${(err as Error).message}`,
      );
    }
    return versioned(payloadSchema(kind, definition));
  };
  let current: Promise<PayloadSchema> | undefined;
  let loaded: PayloadSchema | undefined;
  let refresh: Promise<PayloadSchema> | undefined;
  return (atLeast) => {
    current ??= read().then(
      (p) => (loaded = p),
      (err: unknown) => {
        // a configuration error stays (every msg fails the same way); anything else is asked again
        if (!(err instanceof ConfigurationError)) current = undefined;
        throw err;
      },
    );
    if (!loaded || atLeast === undefined || (loaded.version ?? Infinity) >= atLeast) return current;
    // a msg decoded with a newer version of the subject than the one published: the latest is read again
    refresh ??= read().then(
      (p) => {
        refresh = undefined;
        if ((p.version ?? Infinity) < atLeast)
          throw new BridgeError(
            "pulsar-out.errors.schema-registry",
            `the registry's latest version of subject ${name} is ${String(p.version)}, older than version ${atLeast} the record was written with`,
            true,
          );
        loaded = p;
        current = Promise.resolve(p);
        return p;
      },
      (err: unknown) => {
        refresh = undefined;
        throw err;
      },
    );
    return refresh;
  };
}
