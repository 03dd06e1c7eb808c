// The one admin REST call the bridge needs: whether deduplication is in effect for a topic (the topic's own
// policy, else its namespace's, else the broker's default), which effectively-once depends on.
import http from "node:http";
import https from "node:https";
import { AuthenticationError, ConfigError, ConnectionError, PulsarError } from "./errors";
import { parseTopicName } from "./service-url";
import { toTlsConnectOptions } from "./tls";
import type { AuthProvider, TlsOptions } from "./types";

export interface AdminOptions {
  /** http(s)://host:port of the broker's web service. */
  adminUrl: string;
  /** Token-style providers (token, OAuth2) send their token as a Bearer header; others send nothing. */
  auth?: AuthProvider;
  tls?: TlsOptions;
  timeoutMs?: number;
}

/** Whether the broker applies deduplication to `topic`. */
export async function deduplicationEnabled(topic: string, o: AdminOptions): Promise<boolean> {
  const t = parseTopicName(topic);
  let base: URL;
  try {
    base = new URL(o.adminUrl);
  } catch {
    throw new ConfigError(`"${o.adminUrl}" is not an admin URL (http://host:8080 or https://host:8443)`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:")
    throw new ConfigError(`"${o.adminUrl}" is not an admin URL (http://host:8080 or https://host:8443)`);
  const localName = t.partitionIndex >= 0 ? t.localName.replace(/-partition-\d+$/, "") : t.localName;
  const url = new URL(
    `${base.pathname.replace(/\/+$/, "")}/admin/v2/${t.persistent ? "persistent" : "non-persistent"}/` +
      `${encodeURIComponent(t.tenant)}/${encodeURIComponent(t.namespace)}/${encodeURIComponent(localName)}` +
      "/deduplicationEnabled?applied=true",
    base,
  );
  const headers: Record<string, string> = { accept: "application/json" };
  if (o.auth?.methodName === "token")
    headers.authorization = `Bearer ${(await o.auth.getAuthData()).toString("utf8")}`;
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const options = {
      method: "GET",
      headers,
      timeout: o.timeoutMs ?? 10_000,
      ...(url.protocol === "https:" ? toTlsConnectOptions(o.tls, url.hostname) : {}),
    };
    const req = (url.protocol === "https:" ? https : http).request(url, options, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${o.timeoutMs ?? 10_000} ms`)));
    req.on("error", (err) =>
      reject(new ConnectionError(`Pulsar admin API ${base.origin} unreachable: ${err.message}`)),
    );
    req.end();
  });
  if (status === 401 || status === 403)
    throw new AuthenticationError(`the Pulsar admin API refused the deduplication check (HTTP ${status})`);
  if (status !== 200)
    throw new PulsarError(
      `the Pulsar admin API answered HTTP ${status} to the deduplication check of ${t.fullName}`,
      "AdminError",
      false,
    );
  return body.trim() === "true";
}
