// A TCP proxy a test controls, to cut the network between clients and a broker without touching either.
// A cut is silent by default, like a pulled cable: nothing is closed or reset, bytes stop flowing both ways
// (they wait in the socket buffers, as TCP retransmission would keep them). With { reset: true } the open
// connections are closed at once instead, and whatever was in flight is gone. Either way new connections
// are accepted but not forwarded until heal(); what the peers' own timeouts closed in between stays closed.
import net from "node:net";

export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  /** Connections currently open through the proxy. */
  connections(): number;
  cut(options?: { reset?: boolean }): void;
  heal(): void;
  close(): Promise<void>;
}

interface Link {
  client: net.Socket;
  upstream?: net.Socket;
}

export async function tcpProxy(
  listen: { host: string; port: number },
  target: { host: string; port: number },
) {
  const links = new Set<Link>();
  const held: Link[] = [];
  let isCut = false;

  // Forwards one direction by hand (not pipe(), whose drain handling would resume a paused socket).
  const forward = (from: net.Socket, to: net.Socket) => {
    from.on("data", (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => {
          if (!isCut) from.resume();
        });
      }
    });
    from.on("end", () => to.end());
  };
  const connect = (link: Link) => {
    const upstream = net.connect(target.port, target.host);
    link.upstream = upstream;
    const drop = () => {
      link.client.destroy();
      upstream.destroy();
      links.delete(link);
    };
    upstream.on("error", drop);
    upstream.on("close", drop);
    link.client.on("close", drop);
    forward(link.client, upstream);
    forward(upstream, link.client);
    link.client.resume();
  };
  const pause = (link: Link) => {
    link.client.pause();
    link.upstream?.pause();
  };

  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    const link: Link = { client };
    links.add(link);
    client.on("error", () => {
      client.destroy();
      link.upstream?.destroy();
      links.delete(link);
    });
    if (isCut) held.push(link);
    else connect(link);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => resolve());
  });

  const proxy: TcpProxy = {
    host: listen.host,
    port: listen.port,
    connections: () => links.size,
    cut(options = {}) {
      isCut = true;
      for (const link of links) {
        if (options.reset) {
          link.client.destroy();
          link.upstream?.destroy();
          links.delete(link);
        } else pause(link);
      }
    },
    heal() {
      isCut = false;
      for (const link of links) {
        if (link.upstream) {
          link.upstream.resume();
          link.client.resume();
        }
      }
      for (const link of held.splice(0)) if (!link.client.destroyed) connect(link);
    },
    async close() {
      for (const link of links) {
        link.client.destroy();
        link.upstream?.destroy();
      }
      links.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
