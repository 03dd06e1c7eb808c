// One TCP/TLS connection to a Pulsar broker (or proxy): CONNECT handshake, request/response correlation
// with timeouts, keepalive, auth challenges, and dispatch of producer/consumer traffic by id.
import net from "node:net";
import tls from "node:tls";
import {
  CommandType,
  decodeCommand,
  encodeAuthResponse,
  encodeConnect,
  encodePing,
  encodePong,
  type Inbound,
} from "./protocol/commands";
import { FrameDecoder, simpleFrame, type InboundFrame } from "./protocol/frame";
import { ConnectionError, TimeoutError, fromServerError, type PulsarError } from "./errors";
import { toTlsConnectOptions } from "./tls";
import type { AuthProvider, TlsOptions } from "./types";

/** Used when the broker does not say (5 MB minus room for headers, as the official clients do). */
export const DEFAULT_MAX_MESSAGE_SIZE = 5 * 1024 * 1024 - 10 * 1024;

export interface ProducerListener {
  onReceipt(cmd: Extract<Inbound, { type: typeof CommandType.SEND_RECEIPT }>): void;
  onSendError(cmd: Extract<Inbound, { type: typeof CommandType.SEND_ERROR }>): void;
  /** The broker closed the producer, or the connection dropped: reconnect and resend. */
  onDisconnect(reason: Error): void;
}

export interface ConsumerListener {
  onMessage(cmd: Extract<Inbound, { type: typeof CommandType.MESSAGE }>, frame: InboundFrame): void;
  onDisconnect(reason: Error): void;
}

export interface ConnectionOptions {
  host: string;
  port: number;
  tls?: TlsOptions;
  auth?: AuthProvider;
  /** Through a proxy: the broker (host:port) the proxy should forward to. */
  proxyToBrokerUrl?: string;
  connectionTimeoutMs: number;
  operationTimeoutMs: number;
  keepAliveIntervalMs: number;
}

type Pending = { resolve: (cmd: Inbound) => void; reject: (err: Error) => void; timer: NodeJS.Timeout };

export class Connection {
  maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE;
  closed = false;
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private readonly producers = new Map<number, ProducerListener>();
  private readonly consumers = new Map<number, ConsumerListener>();
  private readonly closeListeners: ((err: Error) => void)[] = [];
  private nextRequestId = 1;
  private keepAlive: NodeJS.Timeout | undefined;
  private waitingForPong = false;
  /** An error the broker sent outside any request (refused refreshed credentials): why it closes next. */
  private brokerError: PulsarError | undefined;

  private constructor(
    private readonly socket: net.Socket,
    private readonly o: ConnectionOptions,
  ) {}

  /** Opens the socket and completes CONNECT/CONNECTED (auth included) within connectionTimeoutMs. */
  static async open(o: ConnectionOptions): Promise<Connection> {
    const socket = o.tls
      ? tls.connect({ host: o.host, port: o.port, ...toTlsConnectOptions(o.tls, o.host) })
      : net.connect({ host: o.host, port: o.port });
    socket.setNoDelay(true);
    const conn = new Connection(socket, o);
    return conn.handshake();
  }

  private handshake(): Promise<Connection> {
    const { socket, o } = this;
    return new Promise<Connection>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.shutdown(err);
        reject(err);
      };
      const timer = setTimeout(
        () =>
          fail(
            new TimeoutError(
              `connecting to ${o.host}:${o.port} took longer than ${o.connectionTimeoutMs} ms`,
            ),
          ),
        o.connectionTimeoutMs,
      );
      socket.once("error", (err) =>
        fail(
          new ConnectionError(
            `cannot connect to ${o.host}:${o.port}: ${err.message}`,
            !isCertificateFailure(err),
          ),
        ),
      );
      socket.once("close", () =>
        fail(new ConnectionError(`connection to ${o.host}:${o.port} closed during the handshake`)),
      );
      socket.on("data", (chunk: Buffer) => {
        try {
          this.decoder.push(chunk, (frame) => {
            const cmd = decodeCommand(frame.command);
            if (!settled) {
              if (cmd.type === CommandType.CONNECTED) {
                settled = true;
                clearTimeout(timer);
                if (cmd.maxMessageSize) this.maxMessageSize = cmd.maxMessageSize;
                this.established();
                resolve(this);
              } else if (cmd.type === CommandType.ERROR) {
                fail(fromServerError(cmd.error, cmd.message));
              } else if (cmd.type === CommandType.AUTH_CHALLENGE) {
                void this.answerChallenge();
              }
              return;
            }
            this.dispatch(cmd, frame);
          });
        } catch (err) {
          const e = new ConnectionError(`protocol error from ${o.host}:${o.port}: ${(err as Error).message}`);
          if (!settled) fail(e);
          else this.shutdown(e);
        }
      });
      const start = async () => {
        const authData = o.auth ? await o.auth.getAuthData() : undefined;
        this.write(
          simpleFrame(
            encodeConnect({
              authMethodName: o.auth?.methodName || undefined,
              authData: authData && authData.length > 0 ? authData : undefined,
              proxyToBrokerUrl: o.proxyToBrokerUrl,
            }),
          ),
        );
      };
      socket.once(o.tls ? "secureConnect" : "connect", () => {
        start().catch((err: unknown) => fail(err instanceof Error ? err : new Error(String(err))));
      });
    });
  }

  private established(): void {
    const { socket } = this;
    socket.removeAllListeners("error");
    socket.removeAllListeners("close");
    socket.on("error", (err) =>
      this.shutdown(
        new ConnectionError(`connection to ${this.o.host}:${this.o.port} failed: ${err.message}`),
      ),
    );
    socket.on("close", () => {
      const why = this.brokerError;
      this.shutdown(
        new ConnectionError(
          why
            ? `${this.o.host}:${this.o.port} closed the connection after an error: ${withCode(why)}`
            : `connection to ${this.o.host}:${this.o.port} closed`,
        ),
      );
    });
    this.keepAlive = setInterval(() => {
      if (this.waitingForPong) {
        this.shutdown(
          new ConnectionError(`no answer from ${this.o.host}:${this.o.port} within the keepalive interval`),
        );
        return;
      }
      this.waitingForPong = true;
      this.write(simpleFrame(encodePing()));
    }, this.o.keepAliveIntervalMs);
    this.keepAlive.unref();
  }

  private async answerChallenge(): Promise<void> {
    try {
      const auth = this.o.auth;
      const data = auth ? await auth.getAuthData() : Buffer.alloc(0);
      this.write(simpleFrame(encodeAuthResponse(auth?.methodName ?? "none", data)));
    } catch (err) {
      this.shutdown(new ConnectionError(`cannot refresh credentials: ${(err as Error).message}`));
    }
  }

  private dispatch(cmd: Inbound, frame: InboundFrame): void {
    // Any traffic proves the peer is alive.
    this.waitingForPong = false;
    switch (cmd.type) {
      case CommandType.PING:
        this.write(simpleFrame(encodePong()));
        return;
      case CommandType.PONG:
        return;
      case CommandType.AUTH_CHALLENGE:
        void this.answerChallenge();
        return;
      case CommandType.SUCCESS:
      case CommandType.PRODUCER_SUCCESS:
      case CommandType.PARTITIONED_METADATA_RESPONSE:
      case CommandType.LOOKUP_RESPONSE:
      case CommandType.GET_TOPICS_OF_NAMESPACE_RESPONSE:
        this.complete(cmd.requestId, cmd);
        return;
      case CommandType.ERROR: {
        const err = fromServerError(cmd.error, cmd.message);
        if (this.pending.has(cmd.requestId)) this.fail(cmd.requestId, err);
        else this.brokerError = err;
        return;
      }
      case CommandType.SEND_RECEIPT:
        this.producers.get(cmd.producerId)?.onReceipt(cmd);
        return;
      case CommandType.SEND_ERROR:
        this.producers.get(cmd.producerId)?.onSendError(cmd);
        return;
      case CommandType.CLOSE_PRODUCER: {
        const p = this.producers.get(cmd.producerId);
        this.producers.delete(cmd.producerId);
        p?.onDisconnect(new ConnectionError("the broker closed the producer (topic moved or unloaded)"));
        return;
      }
      case CommandType.CLOSE_CONSUMER: {
        const c = this.consumers.get(cmd.consumerId);
        this.consumers.delete(cmd.consumerId);
        c?.onDisconnect(new ConnectionError("the broker closed the consumer (topic moved or unloaded)"));
        return;
      }
      case CommandType.MESSAGE:
        this.consumers.get(cmd.consumerId)?.onMessage(cmd, frame);
        return;
      default:
        // Unknown or unneeded commands are ignored, not fatal.
        return;
    }
  }

  private complete(requestId: number, cmd: Inbound): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    // A producer waiting for exclusive access gets a second PRODUCER_SUCCESS later.
    if (cmd.type === CommandType.PRODUCER_SUCCESS && !cmd.producerReady) return;
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    p.resolve(cmd);
  }

  private fail(requestId: number, err: PulsarError): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    p.reject(err);
  }

  /** Sends a request built for a fresh request id and resolves with the matching response. */
  request(
    build: (requestId: number) => Buffer,
    what: string,
    timeoutMs = this.o.operationTimeoutMs,
  ): Promise<Inbound> {
    if (this.closed)
      return Promise.reject(new ConnectionError(`connection to ${this.o.host}:${this.o.port} is closed`));
    const requestId = this.nextRequestId++;
    return new Promise<Inbound>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new TimeoutError(`${what} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      this.write(simpleFrame(build(requestId)));
    });
  }

  /** Writes raw frame bytes; returns false when the socket buffer is full (callers may wait for drain). */
  write(frame: Buffer): boolean {
    if (this.closed) return false;
    return this.socket.write(frame);
  }

  addProducer(id: number, listener: ProducerListener): void {
    this.producers.set(id, listener);
  }

  removeProducer(id: number): void {
    this.producers.delete(id);
  }

  addConsumer(id: number, listener: ConsumerListener): void {
    this.consumers.set(id, listener);
  }

  removeConsumer(id: number): void {
    this.consumers.delete(id);
  }

  onClose(listener: (err: Error) => void): void {
    if (this.closed) listener(new ConnectionError("connection closed"));
    else this.closeListeners.push(listener);
  }

  get address(): string {
    return `${this.o.host}:${this.o.port}`;
  }

  /** Closes the socket; pending requests fail and producers/consumers are told to reconnect. */
  shutdown(reason: Error = new ConnectionError("connection closed by the client")): void {
    if (this.closed) return;
    this.closed = true;
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.socket.destroy();
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(reason);
    }
    this.pending.clear();
    const producers = [...this.producers.values()];
    const consumers = [...this.consumers.values()];
    this.producers.clear();
    this.consumers.clear();
    for (const p of producers) p.onDisconnect(reason);
    for (const c of consumers) c.onDisconnect(reason);
    for (const l of this.closeListeners.splice(0)) l(reason);
  }
}

/** "AuthenticationError: <the broker's text>", without saying the code twice. */
function withCode(err: PulsarError): string {
  return err.message.startsWith(err.code) ? err.message : `${err.code}: ${err.message}`;
}

/**
 * A TLS handshake that failed on a certificate: ours untrusted or missing (the broker's alert), or the
 * broker's untrusted, expired or not matching the host. Node's codes for these name the certificate or the CA.
 */
function isCertificateFailure(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? "";
  return /CERT|_CA\b|UNKNOWN_CA|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code);
}
