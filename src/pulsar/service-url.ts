// Service URLs (pulsar://, pulsar+ssl://) and topic names, checked before anything touches the network.
import { ConfigError, InvalidTopicNameError } from "./errors";

export interface ServiceUrl {
  tls: boolean;
  hosts: { host: string; port: number }[];
}

export function parseServiceUrl(url: string): ServiceUrl {
  const m = /^(pulsar|pulsar\+ssl):\/\/([^/?#]+)\/?$/.exec(url.trim());
  if (!m) {
    throw new ConfigError(
      `"${url}" is not a Pulsar service URL: expected pulsar://host:6650 or pulsar+ssl://host:6651`,
    );
  }
  const tls = m[1] === "pulsar+ssl";
  const hosts = (m[2] ?? "").split(",").map((part) => {
    const hp = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?$/.exec(part.trim());
    const port = hp?.[2] ? Number(hp[2]) : tls ? 6651 : 6650;
    if (!hp || port < 1 || port > 65535)
      throw new ConfigError(`"${part}" in the service URL is not a valid host:port`);
    return { host: (hp[1] ?? "").replace(/^\[|\]$/g, ""), port };
  });
  return { tls, hosts };
}

export interface TopicName {
  persistent: boolean;
  tenant: string;
  namespace: string;
  localName: string;
  /** Index when the name is one partition of a partitioned topic, else -1. */
  partitionIndex: number;
  fullName: string;
}

// Tenant and namespace names: letters, digits and - = : . _ (Pulsar's NamedEntity rule).
export const ENTITY = /^[-=:.\w]+$/;

/** A topic name or pattern's domain (persistent when none is given) and what follows it. */
export function splitDomain(
  text: string,
  bad: (why: string) => Error,
): { persistent: boolean; rest: string; hasDomain: boolean } {
  const scheme = /^([a-z-]+):\/\/(.*)$/.exec(text);
  if (!scheme) return { persistent: true, rest: text, hasDomain: false };
  if (scheme[1] !== "non-persistent" && scheme[1] !== "persistent")
    throw bad(`unknown domain "${scheme[1]}" (use persistent:// or non-persistent://)`);
  return { persistent: scheme[1] === "persistent", rest: scheme[2] ?? "", hasDomain: true };
}

/** Parses "t", "tenant/ns/t" or "persistent://tenant/ns/t" (non-persistent:// too). */
export function parseTopicName(topic: string): TopicName {
  const bad = (why: string) => new InvalidTopicNameError(`invalid topic name "${topic}": ${why}`);
  if (typeof topic !== "string" || topic.trim() === "") throw bad("it is empty");
  const split = splitDomain(topic.trim(), bad);
  const persistent = split.persistent;
  let rest = split.rest;
  if (!split.hasDomain && !rest.includes("/")) rest = `public/default/${rest}`;
  const parts = rest.split("/");
  if (parts.length !== 3) throw bad("expected tenant/namespace/topic");
  const [tenant = "", namespace = "", localName = ""] = parts;
  if (!ENTITY.test(tenant)) throw bad(`tenant "${tenant}" may only contain letters, digits and - = : . _`);
  if (!ENTITY.test(namespace))
    throw bad(`namespace "${namespace}" may only contain letters, digits and - = : . _`);
  if (localName === "") throw bad("the topic part is empty");
  if (/\s/.test(localName) || [...localName].some((ch) => ch.charCodeAt(0) < 0x20))
    throw bad("the topic part contains whitespace or control characters");
  const p = /-partition-(\d+)$/.exec(localName);
  return {
    persistent,
    tenant,
    namespace,
    localName,
    partitionIndex: p ? Number(p[1]) : -1,
    fullName: `${persistent ? "persistent" : "non-persistent"}://${tenant}/${namespace}/${localName}`,
  };
}
