// Values in the schema registry's wire format (magic byte 0, a 4-byte big-endian schema id, for Protobuf
// the message indexes, then the encoded body) -> plain values. Decoding is synchronous, per record, from a
// cache of the schemas; a schema not in the cache yet is loaded in the background (and ahead of time by
// prefetch, which kafka-in awaits per fetched batch), and the record fails as retriable meanwhile.
import { bodyDecoder, SchemaError, type BodyDecoder } from "./codecs";
import { RegistryError, type RegistryClient, type SchemaType } from "./client";

export interface SchemaInfo {
  id: number;
  type: SchemaType;
  /** Under which subject and version the registry has it (the topic's own subject when it is among them). */
  subject?: string;
  version?: number;
}

export type DecodeFailure =
  /** The bytes are not in the wire format: not a value written with a schema registry serializer. */
  | "wire"
  /** The registry has no schema with this id. */
  | "unknown"
  /** The registry's schema cannot be used (invalid, a type not supported). */
  | "schema"
  /** The body does not decode with its schema. */
  | "body"
  /** The schema is being loaded, or the registry could not be asked: trying later helps. */
  | "unavailable"
  /** The registry refused the credentials (401, 403): every record fails until they are fixed. */
  | "refused";

export class SchemaDecodeError extends Error {
  constructor(
    readonly failure: DecodeFailure,
    message: string,
    readonly schemaId?: number,
  ) {
    super(message);
    this.name = "SchemaDecodeError";
  }
}

type Entry =
  /** `previous`: the failure that is being retried (what a record is told meanwhile). */
  | { state: "loading"; done: Promise<void>; previous?: SchemaDecodeError }
  | { state: "ready"; decoder: BodyDecoder; versions: { subject: string; version: number }[] }
  | { state: "failed"; error: SchemaDecodeError; at: number };

export interface SchemaDecoderOptions {
  /** After a failure to reach the registry, how long before the schema is asked for again (default 1 s). */
  retryAfterMs?: number;
  /** After the registry said it has no such schema (or it is unusable), how long that answer holds (default 30 s). */
  negativeForMs?: number;
  /** Schemas kept (default 1000): the oldest loaded go first. */
  maxSchemas?: number;
  /**
   * How long an id the registry says it has not is waited for before the record is refused (default 10 s):
   * a registry replica behind the one the producer registered with says so for a moment.
   */
  unknownGraceMs?: number;
  now?: () => number;
}

const MAGIC = 0;

/** The schema id of a value in the wire format, or undefined (a signed 32-bit int in the serializers: ids are positive). */
function idIn(bytes: Buffer): number | undefined {
  if (bytes.length < 5 || bytes[0] !== MAGIC) return undefined;
  const id = bytes.readInt32BE(1);
  return id > 0 ? id : undefined;
}

/** The schema id of a value in the wire format; throws a SchemaDecodeError ("wire") otherwise. */
export function schemaIdOf(bytes: Buffer): number {
  const id = idIn(bytes);
  if (id !== undefined) return id;
  throw new SchemaDecodeError(
    "wire",
    bytes.length < 5
      ? `the value (${bytes.length} bytes) is too short for the schema registry's wire format`
      : bytes[0] !== MAGIC
        ? `the value does not start with the schema registry's magic byte 0 (it starts with ${bytes[0]})`
        : `the value names schema id ${bytes.readInt32BE(1)}, which no registry gives`,
  );
}

export class SchemaDecoder {
  private readonly entries = new Map<number, Entry>();
  private readonly retryAfterMs: number;
  private readonly negativeForMs: number;
  private readonly maxSchemas: number;
  private readonly unknownGraceMs: number;
  /** When the registry first said it has no schema with an id (see unknownGraceMs). */
  private readonly unknownSince = new Map<number, number>();
  private readonly now: () => number;
  private closed = false;

  constructor(
    private readonly client: RegistryClient,
    o: SchemaDecoderOptions = {},
  ) {
    this.retryAfterMs = o.retryAfterMs ?? 1000;
    this.negativeForMs = o.negativeForMs ?? 30_000;
    this.maxSchemas = o.maxSchemas ?? 1000;
    this.unknownGraceMs = o.unknownGraceMs ?? 10_000;
    this.now = o.now ?? Date.now;
  }

  /**
   * The value and its schema. `subject` is the subject the value's topic would have (topic-value or
   * topic-key): the schema's subject when the registry has it under several.
   */
  decode(bytes: Buffer, subject?: string): { value: unknown; schema: SchemaInfo } {
    const id = schemaIdOf(bytes);
    const entry = this.entry(id);
    if (entry.state === "loading")
      throw (
        entry.previous ??
        new SchemaDecodeError("unavailable", `schema ${id} is being loaded from the registry`, id)
      );
    if (entry.state === "failed") throw this.waitingForUnknown(id, entry.error) ?? entry.error;
    let value: unknown;
    try {
      value = entry.decoder.decode(bytes, 5);
    } catch (err) {
      throw new SchemaDecodeError(
        "body",
        `the value does not decode with its ${entry.decoder.type} schema ${id}: ${(err as Error).message}`,
        id,
      );
    }
    const schema: SchemaInfo = { id, type: entry.decoder.type };
    const v = entry.versions.find((x) => x.subject === subject) ?? entry.versions[0];
    if (v) {
      schema.subject = v.subject;
      schema.version = v.version;
    }
    return { value, schema };
  }

  /** Loads the schemas these values name that are not loaded yet; never rejects. */
  async prefetch(values: Iterable<Buffer | null | undefined>): Promise<void> {
    const waits: Promise<void>[] = [];
    const seen = new Set<number>();
    for (const v of values) {
      const id = v ? idIn(v) : undefined;
      if (id === undefined || seen.has(id)) continue;
      seen.add(id);
      const e = this.entry(id);
      if (e.state === "loading") waits.push(e.done);
    }
    await Promise.all(waits);
  }

  close(): void {
    this.closed = true;
    this.entries.clear();
    this.client.close();
  }

  /** How long a failure is kept before the schema is asked for again. */
  private holdFor(id: number, error: SchemaDecodeError): number {
    if (error.failure === "unavailable" || error.failure === "refused") return this.retryAfterMs;
    if (error.failure === "unknown" && this.waitingForUnknown(id, error)) return this.retryAfterMs;
    return this.negativeForMs;
  }

  /** Within the grace of an unknown id: the error that makes the record wait (and be tried again). */
  private waitingForUnknown(id: number, error: SchemaDecodeError): SchemaDecodeError | undefined {
    if (error.failure !== "unknown") return undefined;
    const since = this.unknownSince.get(id);
    if (since === undefined || this.now() - since >= this.unknownGraceMs) return undefined;
    return new SchemaDecodeError(
      "unavailable",
      `${error.message} (yet: asked again for ${Math.ceil(this.unknownGraceMs / 1000)} s, a registry replica may lag)`,
      id,
    );
  }

  /** The cache entry of `id`, starting a load when there is none or a failure has aged. */
  private entry(id: number): Entry {
    if (this.closed)
      return {
        state: "failed",
        error: new SchemaDecodeError("unavailable", "the schema-registry node was closed", id),
        at: this.now(),
      };
    const e = this.entries.get(id);
    if (e && e.state !== "failed") return e;
    if (e && this.now() - e.at < this.holdFor(id, e.error)) return e;
    const loading: Entry = { state: "loading", done: this.load(id), previous: e?.error };
    this.entries.set(id, loading);
    return loading;
  }

  private async load(id: number): Promise<void> {
    let next: Entry;
    try {
      const schema = await this.client.schemaById(id);
      const decoder = await bodyDecoder(schema, (ref) => this.client.schemaOf(ref.subject, ref.version));
      const versions = await this.client.versionsOf(id).catch(() => []);
      next = { state: "ready", decoder, versions };
      // found: should it be unknown again one day (a registry rebuilt), it has its grace again
      this.unknownSince.delete(id);
    } catch (err) {
      next = { state: "failed", error: this.failureOf(id, err), at: this.now() };
      if (next.error.failure === "unknown" && !this.unknownSince.has(id)) {
        this.unknownSince.set(id, this.now());
        // bounded like the cache
        if (this.unknownSince.size > this.maxSchemas) {
          const oldest = this.unknownSince.keys().next().value;
          if (oldest !== undefined) this.unknownSince.delete(oldest);
        }
      }
    }
    if (this.closed) return;
    this.entries.set(id, next);
    this.trim();
  }

  private failureOf(id: number, err: unknown): SchemaDecodeError {
    if (err instanceof RegistryError) {
      if (err.notFound && err.message.includes(`schemas/ids/${id}`))
        return new SchemaDecodeError("unknown", `the schema registry has no schema with id ${id}`, id);
      if (err.status === 401 || err.status === 403 || err.status === 407)
        return new SchemaDecodeError("refused", err.message, id);
      // the URL's setup, not the record: the partition waits for it to be fixed
      if (err.notTheApi || err.setupProblem)
        return new SchemaDecodeError(
          "unavailable",
          `${err.message} (${err.status !== undefined && err.status >= 300 && err.status < 400 ? "the registry redirects: give the URL it redirects to" : "the URL may not be a Confluent-compatible schema registry API"})`,
          id,
        );
      return new SchemaDecodeError(err.retriable ? "unavailable" : "schema", err.message, id);
    }
    if (err instanceof SchemaError) return new SchemaDecodeError("schema", err.message, id);
    return new SchemaDecodeError("unavailable", (err as Error).message, id);
  }

  /** The oldest failures first, then the oldest schemas, down to maxSchemas. */
  private trim(): void {
    if (this.entries.size <= this.maxSchemas) return;
    for (const pass of ["failed", "ready"] as const)
      for (const [id, e] of this.entries) {
        if (this.entries.size <= this.maxSchemas) return;
        if (e.state === pass) this.entries.delete(id);
      }
  }
}
