// pulsar-cluster: the config node owning one shared, reference-counted Pulsar client.
import { PULSAR_CLUSTER_CREDENTIALS, PULSAR_CLUSTER_DEFAULTS } from "./properties";
import { coerceConfig, type Coerced } from "../common/coerce";
import { SharedResource } from "../common/shared";
import { describeError } from "../common/errors";
import { onClose, registerType, tlsConfigNode, type Node, type NodeConfig, type RED } from "./red";
import { createEngine, type EngineName } from "../pulsar/engine";
import { deduplicationEnabled } from "../pulsar/admin";
import { noAuth, oauth2ClientCredentials, tlsAuth, tokenAuth } from "../pulsar/auth";
import type {
  AuthProvider,
  ClientOptions,
  ProducerOptions,
  ProducerState,
  PulsarClient,
  TlsOptions,
} from "../pulsar/types";

export interface PulsarClusterCredentials {
  token?: string;
  oauthClientId?: string;
  oauthClientSecret?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** What a user node is told about the connections its producers use. */
export type LinkState =
  | { state: "connecting" }
  | { state: "connected" }
  | { state: "reconnecting"; reason: string }
  | { state: "error"; reason: string };

export type LinkListener = (state: LinkState) => void;

const RANK: Record<LinkState["state"], number> = { connecting: 0, connected: 1, reconnecting: 2, error: 3 };

const sameLink = (a: LinkState | undefined, b: LinkState | undefined): boolean =>
  a?.state === b?.state &&
  (a && "reason" in a ? a.reason : undefined) === (b && "reason" in b ? b.reason : undefined);

/**
 * The state of each user's producers and what the user is told: the worst of them (error, then reconnecting
 * with its reason, then connected, then connecting while none is created yet), pushed when it changes, as
 * core MQTT's broker node pushes its connection state to its mqtt-in and mqtt-out nodes. A user with no
 * producer is told nothing more.
 */
export class UserLinks {
  private readonly listeners = new Map<string, LinkListener>();
  private readonly producers = new Map<string, Map<number, LinkState>>();
  private readonly told = new Map<string, LinkState>();
  private nextHandle = 1;

  /** `listener` is told the user's state now (when there is one) and at each change. */
  register(userId: string, listener: LinkListener): void {
    this.listeners.set(userId, listener);
    const now = this.told.get(userId);
    if (now) this.push(userId, now);
  }

  deregister(userId: string): void {
    this.listeners.delete(userId);
    // a user key is an instance's (red.ts instanceKey): never registered again, so nothing to keep for it
    if (!this.producers.has(userId)) this.told.delete(userId);
  }

  /** A producer of `userId` is being created: its handle for set and remove. */
  add(userId: string): number {
    const handle = this.nextHandle++;
    this.set(userId, handle, { state: "connecting" });
    return handle;
  }

  get(userId: string, handle: number): LinkState | undefined {
    return this.producers.get(userId)?.get(handle);
  }

  set(userId: string, handle: number, state: LinkState): void {
    let mine = this.producers.get(userId);
    if (!mine) this.producers.set(userId, (mine = new Map<number, LinkState>()));
    mine.set(handle, state);
    this.update(userId);
  }

  remove(userId: string, handle: number): void {
    const mine = this.producers.get(userId);
    mine?.delete(handle);
    if (mine?.size === 0) this.producers.delete(userId);
    this.update(userId);
  }

  /** Something that concerns all of the user's connections (the client could not be made): told at once. */
  tell(userId: string, state: LinkState): void {
    // a user gone (deregistered, no producer) hears nothing more: kept, it would stay for ever
    if (!this.listeners.has(userId) && !this.producers.has(userId)) return;
    this.told.set(userId, state);
    this.push(userId, state);
  }

  private update(userId: string): void {
    let worst: LinkState | undefined;
    for (const s of this.producers.get(userId)?.values() ?? [])
      if (!worst || RANK[s.state] > RANK[worst.state]) worst = s;
    if (!worst) {
      this.told.delete(userId);
      return;
    }
    if (sameLink(worst, this.told.get(userId))) return;
    this.told.set(userId, worst);
    this.push(userId, worst);
  }

  private push(userId: string, state: LinkState): void {
    try {
      this.listeners.get(userId)?.(state);
    } catch {
      // a user's status update must not break the others' or the producer's
    }
  }
}

/** A producer's state as its user is told it. */
export function linkOf(state: ProducerState): LinkState | undefined {
  switch (state.state) {
    case "connected":
      return { state: "connected" };
    case "reconnecting":
      return { state: "reconnecting", reason: describeError(state.reason).message };
    case "failed":
      return { state: "error", reason: describeError(state.reason).message };
    default:
      return undefined;
  }
}

/**
 * The shared client as user `userId` sees it: the producers it creates are tracked in `links`, so that the
 * user is told their state; close() releases the user's share.
 */
export function clientFor(
  userId: string,
  shared: PulsarClient,
  links: UserLinks,
  release: () => Promise<void>,
): PulsarClient {
  return {
    async createProducer(o: ProducerOptions) {
      const handle = links.add(userId);
      try {
        const producer = await shared.createProducer({
          ...o,
          onStateChange: (s) => {
            const link = linkOf(s);
            if (link) links.set(userId, handle, link);
            else links.remove(userId, handle);
            o.onStateChange?.(s);
          },
        });
        // unless the producer already said otherwise while it was being created
        if (links.get(userId, handle)?.state === "connecting")
          links.set(userId, handle, { state: "connected" });
        return producer;
      } catch (err) {
        links.remove(userId, handle);
        throw err;
      }
    },
    subscribe: (o) => shared.subscribe(o),
    getPartitionCount: (topic) => shared.getPartitionCount(topic),
    getTopicsOfNamespace: (ns, persistent) => shared.getTopicsOfNamespace(ns, persistent),
    close: release,
  };
}

export interface PulsarClusterNode extends Node<PulsarClusterCredentials> {
  settings: Coerced<typeof PULSAR_CLUSTER_DEFAULTS>;
  /** The shared client for node `userId`; released with releaseClient. */
  acquireClient(userId: string): Promise<PulsarClient>;
  releaseClient(userId: string): Promise<void>;
  /**
   * Node `userId` is told the state of the connections its producers (made with the client acquireClient
   * gave it) use: connecting, connected, reconnecting with the reason, error.
   */
  register(userId: string, listener: LinkListener): void;
  deregister(userId: string): void;
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
        memoryLimitBytes: Math.max(0, Number(cfg.memoryLimitMb ?? 64)) * 1024 * 1024,
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
    const links = new UserLinks();
    node.register = (userId, listener) => links.register(userId, listener);
    node.deregister = (userId) => links.deregister(userId);
    node.acquireClient = async (userId) => {
      let shared: PulsarClient;
      try {
        shared = await client.acquire(userId);
      } catch (err) {
        links.tell(userId, { state: "error", reason: describeError(err).message });
        throw err;
      }
      return clientFor(userId, shared, links, () => client.release(userId));
    };
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
