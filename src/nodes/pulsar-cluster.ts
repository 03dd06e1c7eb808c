// pulsar-cluster: the config node owning one shared, reference-counted Pulsar client.
import { PULSAR_CLUSTER_CREDENTIALS, PULSAR_CLUSTER_DEFAULTS } from "./properties";
import { coerceConfig, type Coerced } from "../common/coerce";
import { SharedResource } from "../common/shared";
import { onClose, registerType, tlsConfigNode, type Node, type NodeConfig, type RED } from "./red";
import { createEngine, type EngineName } from "../pulsar/engine";
import { deduplicationEnabled } from "../pulsar/admin";
import { noAuth, oauth2ClientCredentials, tlsAuth, tokenAuth } from "../pulsar/auth";
import type { AuthProvider, ClientOptions, PulsarClient, TlsOptions } from "../pulsar/types";

export interface PulsarClusterCredentials {
  token?: string;
  oauthClientId?: string;
  oauthClientSecret?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

export interface PulsarClusterNode extends Node<PulsarClusterCredentials> {
  settings: Coerced<typeof PULSAR_CLUSTER_DEFAULTS>;
  /** The shared client for node `userId`; released with releaseClient. */
  acquireClient(userId: string): Promise<PulsarClient>;
  releaseClient(userId: string): Promise<void>;
  /** Whether Pulsar applies deduplication to the topic; undefined when no admin URL is configured. */
  deduplicationEnabled(topic: string): Promise<boolean | undefined>;
}

function authFor(
  cfg: Coerced<typeof PULSAR_CLUSTER_DEFAULTS>,
  creds: PulsarClusterCredentials,
): AuthProvider {
  switch (cfg.authMethod) {
    case "token":
      return tokenAuth({ token: creds.token });
    case "oauth2":
      return oauth2ClientCredentials({
        issuerUrl: cfg.oauthIssuerUrl,
        clientId: creds.oauthClientId ?? "",
        clientSecret: creds.oauthClientSecret ?? "",
        audience: cfg.oauthAudience || undefined,
        scope: cfg.oauthScope || undefined,
      });
    case "tls":
      return tlsAuth();
    default:
      return noAuth();
  }
}

export function registerPulsarCluster(RED: RED): void {
  function PulsarClusterNode(this: PulsarClusterNode, def: NodeConfig) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = coerceConfig(def, PULSAR_CLUSTER_DEFAULTS);
    node.settings = cfg;
    const creds = node.credentials ?? {};

    // one auth provider per node: an OAuth2 token is shared by the client and the admin calls
    let auth: AuthProvider | undefined;
    const authProvider = () => (auth ??= authFor(cfg, creds));

    // TLS settings for a connection to `url`. The tls-config node is looked up only when that connection
    // uses TLS: the editor hides the field otherwise, so a reference left from an earlier pulsar+ssl:// URL
    // must not break a plain one.
    const tlsOptions = (url: string): TlsOptions => {
      const tls: TlsOptions = {
        allowInsecureConnection: cfg.tlsAllowInsecure,
        verifyHostname: cfg.tlsVerifyHostname,
        trustCertsPem: creds.tlsCa || undefined,
        certPem: creds.tlsCert || undefined,
        keyPem: creds.tlsKey || undefined,
      };
      const usesTls = /^(pulsar\+ssl|https):/i.test(url.trim()) || cfg.authMethod === "tls";
      const tlsNode = usesTls ? tlsConfigNode(RED, cfg.tlsConfig, "pulsar-cluster") : undefined;
      if (tlsNode) {
        const o = tlsNode.addTLSOptions({}) as {
          ca?: string;
          cert?: string;
          key?: string;
          passphrase?: string;
          rejectUnauthorized?: boolean;
        };
        tls.trustCertsPem = o.ca ?? tls.trustCertsPem;
        tls.certPem = o.cert ?? tls.certPem;
        tls.keyPem = o.key ?? tls.keyPem;
        tls.keyPassphrase = o.passphrase;
        if (o.rejectUnauthorized === false) tls.allowInsecureConnection = true;
      }
      return tls;
    };

    const options = (): ClientOptions => {
      return {
        serviceUrl: cfg.serviceUrl.trim(),
        auth: authProvider(),
        tls: tlsOptions(cfg.serviceUrl),
        operationTimeoutMs: cfg.operationTimeoutMs,
        connectionTimeoutMs: cfg.connectionTimeoutMs,
        log: (level, message) => {
          if (level === "warn" || level === "error") node.warn(message);
          else node.debug(message);
        },
      };
    };

    const client = new SharedResource<PulsarClient>(
      () => createEngine(cfg.engine as EngineName, options()),
      (c) => c.close(),
    );
    node.acquireClient = (userId) => client.acquire(userId);
    node.deduplicationEnabled = async (topic) => {
      const adminUrl = cfg.adminUrl.trim();
      if (!adminUrl) return undefined;
      return deduplicationEnabled(topic, {
        adminUrl,
        auth: authProvider(),
        tls: tlsOptions(adminUrl),
        timeoutMs: cfg.operationTimeoutMs,
      });
    };
    node.releaseClient = (userId) => client.release(userId);
    onClose(node, () => client.shutdown());
  }

  registerType(RED, "pulsar-cluster", PulsarClusterNode, PULSAR_CLUSTER_CREDENTIALS);
}
