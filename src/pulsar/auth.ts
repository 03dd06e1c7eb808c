// Authentication providers for CONNECT and AUTH_CHALLENGE: none, token (value, file or env), TLS client
// certificate, and OAuth2 client credentials with refresh before expiry.
import fs from "node:fs";
import { AuthenticationError, ConfigError } from "./errors";
import type { AuthProvider } from "./types";

export function noAuth(): AuthProvider {
  return { methodName: "", getAuthData: () => Promise.resolve(Buffer.alloc(0)) };
}

/** A JWT from a value, a file (re-read each time, so rotated tokens work) or an environment variable. */
export function tokenAuth(source: { token?: string; file?: string; env?: string }): AuthProvider {
  const read = (): string => {
    let token: string | undefined;
    if (source.token) token = source.token;
    else if (source.file) {
      try {
        token = fs.readFileSync(source.file, "utf8");
      } catch (err) {
        throw new ConfigError(`cannot read the token file ${source.file}: ${(err as Error).message}`);
      }
    } else if (source.env) token = process.env[source.env];
    token = token?.trim();
    if (!token) throw new ConfigError("token authentication is selected but no token is set");
    return token;
  };
  read();
  return { methodName: "token", getAuthData: () => Promise.resolve(Buffer.from(read(), "utf8")) };
}

export function tlsAuth(): AuthProvider {
  return { methodName: "tls", getAuthData: () => Promise.resolve(Buffer.alloc(0)) };
}

export interface OAuth2Options {
  /** The issuer; its /.well-known/openid-configuration names the token endpoint. */
  issuerUrl: string;
  clientId: string;
  clientSecret: string;
  audience?: string;
  scope?: string;
}

/** OAuth2 client-credentials grant; the access token is cached and refreshed before it expires. */
export function oauth2ClientCredentials(o: OAuth2Options): AuthProvider {
  if (!o.issuerUrl || !o.clientId || !o.clientSecret) {
    throw new ConfigError("OAuth2 needs an issuer URL, a client id and a client secret");
  }
  let cached: { token: string; expiresAt: number } | undefined;
  let inFlight: Promise<string> | undefined;

  // Discovered once per provider (the discovery document's token_endpoint, or the issuer URL itself when
  // there is no such document); asked again after an unreachable or failing issuer.
  let discovered: string | undefined;
  const tokenEndpoint = async (): Promise<string> => {
    if (discovered) return discovered;
    const base = o.issuerUrl.replace(/\/+$/, "");
    try {
      const res = await fetch(`${base}/.well-known/openid-configuration`, {
        signal: AbortSignal.timeout(10_000),
      });
      const doc = res.ok ? ((await res.json().catch(() => ({}))) as { token_endpoint?: string }) : {};
      const endpoint = doc.token_endpoint || base;
      if (res.ok || res.status === 404) discovered = endpoint;
      return endpoint;
    } catch {
      return base;
    }
  };

  const fetchToken = async (): Promise<string> => {
    const endpoint = await tokenEndpoint();
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: o.clientId,
      client_secret: o.clientSecret,
    });
    if (o.audience) form.set("audience", o.audience);
    if (o.scope) form.set("scope", o.scope);
    let res: Response;
    try {
      res = await fetch(endpoint, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: form.toString(),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      throw new AuthenticationError(
        `OAuth2 token endpoint ${endpoint} unreachable: ${(err as Error).message}`,
      );
    }
    const text = await res.text();
    let body: { access_token?: string; expires_in?: number; error?: string; error_description?: string } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      /* reported below */
    }
    if (!res.ok || !body.access_token) {
      const why = body.error
        ? `${body.error}${body.error_description ? `: ${body.error_description}` : ""}`
        : `HTTP ${res.status}`;
      throw new AuthenticationError(`OAuth2 token request refused (${why})`);
    }
    const lifetimeMs = (body.expires_in ?? 3600) * 1000;
    // refresh when 80% of the lifetime has passed
    cached = { token: body.access_token, expiresAt: Date.now() + lifetimeMs * 0.8 };
    return body.access_token;
  };

  return {
    methodName: "token",
    async getAuthData() {
      if (cached && Date.now() < cached.expiresAt) return Buffer.from(cached.token, "utf8");
      inFlight ??= fetchToken().finally(() => (inFlight = undefined));
      return Buffer.from(await inFlight, "utf8");
    },
  };
}
