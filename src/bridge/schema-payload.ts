// pulsar-out's schema option: msg.payload written as Avro binary (AVRO) or JSON text (JSON) of the Avro
// schema given in the node, and the schema the producer declares to Pulsar with it.
import type avro from "avsc";
import { BridgeError, ConfigurationError } from "../common/errors";
import { jsonText } from "../common/json";
import { avroType } from "../registry/codecs";
import type { ProducerSchema } from "../pulsar/types";

export interface PayloadSchema {
  producerSchema: ProducerSchema;
  /** msg.payload -> the message body; a payload the schema does not describe throws (the record's failure). */
  encode: (payload: unknown) => Buffer;
}

/** Where `value` first differs from what `type` describes: a field path, for the error. */
function firstMismatch(type: avro.Type, value: unknown): string {
  let found: string | undefined;
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
  return found ?? "the payload";
}

export function payloadSchema(kind: "avro" | "json", definition: string): PayloadSchema {
  let type: avro.Type;
  try {
    type = avroType(definition);
  } catch (err) {
    throw new ConfigurationError(
      "pulsar-out.errors.schema",
      `the schema is not a valid Avro schema: ${(err as Error).message}`,
    );
  }
  const producerSchema: ProducerSchema = {
    type: kind === "avro" ? "AVRO" : "JSON",
    // as given (its defaults and logical types decide Pulsar's compatibility checks), on one line
    definition: JSON.stringify(JSON.parse(definition)),
    name: (type as { name?: string }).name ?? "",
  };
  const refuse = (payload: unknown) =>
    new BridgeError(
      "pulsar-out.errors.schema-payload",
      `msg.payload does not fit the ${producerSchema.type} schema at ${firstMismatch(type, payload)}`,
      false,
    );
  return {
    producerSchema,
    encode:
      kind === "avro"
        ? (payload) => {
            if (!type.isValid(payload)) throw refuse(payload);
            return type.toBuffer(payload);
          }
        : (payload) => {
            if (!type.isValid(payload)) throw refuse(payload);
            return Buffer.from(jsonText(payload) ?? "null", "utf8");
          },
  };
}
