// schema-registry: the config node of a Confluent-compatible schema registry. It owns one registry client
// and the cache of decoded schemas, shared by every kafka-in that uses it, closed with the node.
import { SCHEMA_REGISTRY_CREDENTIALS, SCHEMA_REGISTRY_DEFAULTS } from "./properties";
import { coerceConfig, type Coerced } from "../common/coerce";
import { ConfigurationError } from "../common/errors";
import { onClose, registerType, tlsConfigNode, type Node, type NodeConfig, type RED } from "./red";
import { registryClient, type RegistryClient, type RegistryOptions } from "../registry/client";
import { SchemaDecoder } from "../registry/decoder";

export interface SchemaRegistryCredentials {
  username?: string;
  password?: string;
  token?: string;
}

export interface SchemaRegistryNode extends Node<SchemaRegistryCredentials> {
  settings: Coerced<typeof SCHEMA_REGISTRY_DEFAULTS>;
  /** The shared decoder; throws a ConfigurationError when the settings are invalid. */
  decoder(): SchemaDecoder;
  /** The shared client (pulsar-out reads a subject's schema with it); throws as decoder() does. */
  client(): RegistryClient;
}

export function registerSchemaRegistry(RED: RED): void {
  function SchemaRegistryNode(this: SchemaRegistryNode, def: NodeConfig) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = coerceConfig(def, SCHEMA_REGISTRY_DEFAULTS);
    node.settings = cfg;
    const creds = node.credentials ?? {};
    let decoder: SchemaDecoder | undefined;
    let client: RegistryClient | undefined;
    node.decoder = () =>
      (decoder ??= new SchemaDecoder(node.client(), { maxSchemas: Math.max(1, Math.floor(cfg.cacheSize)) }));
    node.client = () => {
      if (client) return client;
      const url = cfg.url.trim();
      // a user or password in the URL sits in the flow file in clear (and would be shown here): refused
      if (/^[a-z]+:\/\/[^/]*@/i.test(url))
        throw new ConfigurationError(
          "schema-registry.errors.url-credentials",
          "the registry URL carries a user or password: give them as the node's Basic auth credentials instead",
        );
      if (!/^https?:\/\/\S+$/.test(url))
        throw new ConfigurationError(
          "schema-registry.errors.bad-url",
          `the registry URL ${url} is not http:// or https://`,
        );
      let auth: RegistryOptions["auth"];
      if (cfg.auth === "basic") {
        if (!creds.username)
          throw new ConfigurationError("schema-registry.errors.credentials", "basic auth needs a username");
        auth = { kind: "basic", username: creds.username, password: creds.password ?? "" };
      } else if (cfg.auth === "bearer") {
        if (!creds.token)
          throw new ConfigurationError("schema-registry.errors.credentials", "bearer auth needs a token");
        auth = { kind: "bearer", token: creds.token };
      }
      const tlsNode = tlsConfigNode(RED, cfg.tlsConfig, "schema-registry");
      const tls = tlsNode ? (tlsNode.addTLSOptions({}) as RegistryOptions["tls"]) : undefined;
      client = registryClient({ url, auth, tls, timeoutMs: cfg.timeoutMs });
      return client;
    };
    onClose(node, () => {
      // the decoder closes its client
      if (decoder) decoder.close();
      else client?.close();
      decoder = undefined;
      client = undefined;
      return Promise.resolve();
    });
  }

  registerType(RED, "schema-registry", SchemaRegistryNode, SCHEMA_REGISTRY_CREDENTIALS);
}
