// Editor values arrive as the flow file stored them: numbers may be strings, booleans may be "true".
// Coerce once, in the constructor, against the property contract (src/nodes/properties.ts).

type Widen<T> = T extends string ? string : T extends number ? number : T extends boolean ? boolean : T;
export type Coerced<D> = { -readonly [K in keyof D]: Widen<D[K]> };

/** A copy of `config` with every property of `defaults`, typed like its default. Invalid numbers fall back to the default. */
export function coerceConfig<D extends Record<string, string | number | boolean>>(
  config: Record<string, unknown>,
  defaults: D,
): Coerced<D> {
  const out: Record<string, string | number | boolean> = {};
  for (const [key, fallback] of Object.entries(defaults)) {
    const raw = config[key];
    if (typeof fallback === "number") {
      const n =
        typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
      out[key] = Number.isFinite(n) ? n : fallback;
    } else if (typeof fallback === "boolean") {
      out[key] = raw === undefined || raw === null || raw === "" ? fallback : raw === true || raw === "true";
    } else {
      out[key] =
        typeof raw === "string"
          ? raw
          : typeof raw === "number" || typeof raw === "boolean"
            ? String(raw)
            : fallback;
    }
  }
  return out as Coerced<D>;
}
