// A client of the Confluent-compatible schema registry REST API (Confluent, Redpanda, Karapace, Apicurio's
// ccompat API): the few reads a consumer needs, over http or https, with basic or bearer auth.
import http from "node:http";
import https from "node:https";
import type { SecureContextOptions } from "node:tls";

export type SchemaType = "AVRO" | "JSON" | "PROTOBUF";

export interface SchemaReference {
  /** The name the schema uses for it (an Avro full name, a Protobuf import path, a JSON Schema $ref). */
  name: string;
  subject: string;
  version: number;
}

export interface RegisteredSchema {
  schema: string;
  /** The registry leaves it out for Avro. */
  schemaType: SchemaType;
  references: SchemaReference[];
  /** A subject's version (and its schema id) as the registry names them; only in a subject's answers. */
  version?: number;
  id?: number;
}

export interface RegistryOptions {
  /** The API's base URL, e.g. http://127.0.0.1:8081 or, for Apicurio, http://host:8080/apis/ccompat/v7. */
  url: string;
  auth?: { kind: "basic"; username: string; password: string } | { kind: "bearer"; token: string };
  /** For an https URL: the trusted CAs, a client certificate and key, whether to verify the server. */
  tls?: SecureContextOptions & { rejectUnauthorized?: boolean };
  /** Per request (default 10 s). */
  timeoutMs?: number;
}

/** The registry answered with an error, or could not be reached. */
export class RegistryError extends Error {
  constructor(
    message: string,
    /** HTTP status; undefined when the registry was not reached. */
    readonly status: number | undefined,
    /** The registry's error_code (40403: schema not found). */
    readonly errorCode: number | undefined,
  ) {
    super(message);
    this.name = "RegistryError";
  }

  /** Whether the registry says the thing asked for does not exist (Confluent's error codes 404xx). */
  get notFound(): boolean {
    return this.status === 404 && this.errorCode !== undefined && Math.floor(this.errorCode / 100) === 404;
  }

  /**
   * Whether the URL does not serve the Confluent-compatible API (a 404 without the API's error body, an
   * answer that is not a schema): the registry's setup is wrong, not the record.
   */
  get notTheApi(): boolean {
    return (this.status === 404 && !this.notFound) || this.status === 200;
  }

  /**
   * Whether the answer says something about the deployment, not about what was asked for: a redirect (an
   * http:// URL moved to https://, a login gateway), a proxy asking for credentials, or a request the
   * server does not take (400, 405, 406, ...). Only "not found" (404 with the API's 404xx code) and 422
   * speak of the schema itself.
   */
  get setupProblem(): boolean {
    const s = this.status;
    return s !== undefined && s >= 300 && s < 500 && s !== 422 && !this.notFound;
  }

  /** Whether asking again later can help (not reached, overloaded, a server error). */
  get retriable(): boolean {
    return this.status === undefined || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export interface RegistryClient {
  schemaById(id: number): Promise<RegisteredSchema>;
  /** The subjects and versions under which the schema with this id is registered. */
  versionsOf(id: number): Promise<{ subject: string; version: number }[]>;
  schemaOf(subject: string, version: number | "latest"): Promise<RegisteredSchema>;
  close(): void;
}

const SCHEMA_TYPES = new Set(["AVRO", "JSON", "PROTOBUF"]);

function asSchema(body: unknown, what: string): RegisteredSchema {
  const b = body as {
    schema?: unknown;
    schemaType?: unknown;
    references?: unknown;
    version?: unknown;
    id?: unknown;
  } | null;
  if (!b || typeof b.schema !== "string")
    throw new RegistryError(
      `the registry's answer for ${what} has no schema: is the URL that of a Confluent-compatible API (Apicurio: .../apis/ccompat/v7)?`,
      200,
      undefined,
    );
  const schemaType = typeof b.schemaType === "string" ? b.schemaType.toUpperCase() : "AVRO";
  if (!SCHEMA_TYPES.has(schemaType))
    throw new RegistryError(
      `${what} is of schema type ${schemaType}, which is not supported`,
      422,
      undefined,
    );
  const references = Array.isArray(b.references)
    ? b.references.map((r: { name?: unknown; subject?: unknown; version?: unknown }) => ({
        name: String(r.name),
        subject: String(r.subject),
        version: Number(r.version),
      }))
    : [];
  const out: RegisteredSchema = { schema: b.schema, schemaType: schemaType as SchemaType, references };
  if (typeof b.version === "number") out.version = b.version;
  if (typeof b.id === "number") out.id = b.id;
  return out;
}

export function registryClient(o: RegistryOptions): RegistryClient {
  const base = new URL(o.url.endsWith("/") ? o.url : `${o.url}/`);
  if (base.protocol !== "http:" && base.protocol !== "https:")
    throw new RegistryError(`the registry URL ${o.url} is not http:// or https://`, undefined, undefined);
  const secure = base.protocol === "https:";
  const agent = secure
    ? new https.Agent({ keepAlive: true, maxSockets: 4, ...o.tls })
    : new http.Agent({ keepAlive: true, maxSockets: 4 });
  const headers: Record<string, string> = {
    accept: "application/vnd.schemaregistry.v1+json, application/json",
  };
  if (o.auth?.kind === "basic")
    headers.authorization = `Basic ${Buffer.from(`${o.auth.username}:${o.auth.password}`).toString("base64")}`;
  else if (o.auth?.kind === "bearer") headers.authorization = `Bearer ${o.auth.token}`;
  // a kafkajs session (30 s) must outlive a request: at most 20 s, whatever the setting
  const timeoutMs = Math.min(Math.max(o.timeoutMs ?? 10_000, 100), 20_000);

  const get = (relative: string): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const url = new URL(relative, base);
      const req = (secure ? https : http).request(url, { method: "GET", agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) =>
          reject(new RegistryError(`reading the registry's answer: ${err.message}`, undefined, undefined)),
        );
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            body = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(body);
          const e = body as { message?: unknown; error_code?: unknown } | undefined;
          const said = typeof e?.message === "string" ? e.message : text.slice(0, 200);
          reject(
            new RegistryError(
              `the schema registry answered ${status} to GET ${url.pathname}${said ? `: ${said}` : ""}`,
              status,
              typeof e?.error_code === "number" ? e.error_code : undefined,
            ),
          );
        });
      });
      // the whole request, not only its silences (a registry trickling bytes)
      const deadline = setTimeout(
        () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      deadline.unref?.();
      req.on("close", () => clearTimeout(deadline));
      req.on("error", (err) =>
        reject(
          new RegistryError(
            `cannot reach the schema registry at ${base.origin}: ${err.message}`,
            undefined,
            undefined,
          ),
        ),
      );
      req.end();
    });

  return {
    schemaById: async (id) => asSchema(await get(`schemas/ids/${id}`), `schema id ${id}`),
    versionsOf: async (id) => {
      const body = await get(`schemas/ids/${id}/versions`);
      return Array.isArray(body)
        ? body.map((v: { subject?: unknown; version?: unknown }) => ({
            subject: String(v.subject),
            version: Number(v.version),
          }))
        : [];
    },
    schemaOf: async (subject, version) =>
      asSchema(
        await get(`subjects/${encodeURIComponent(subject)}/versions/${version}`),
        `subject ${subject} version ${version}`,
      ),
    close: () => agent.destroy(),
  };
}
