// The real Pulsar proxy (`bin/pulsar proxy` from the suite's distribution) in front of running brokers, on
// free ports of 127.0.0.1, for tests of lookups and connections through a proxy.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "./node-red-process";
import { runPulsar, tcpOpen, writeConf, type PulsarProcess } from "./pulsar-process";

export interface PulsarProxy {
  port: number;
  httpPort: number;
  /** pulsar://127.0.0.1:<port>: the service URL clients use. */
  serviceUrl: string;
  process: PulsarProcess;
  /** Stops the proxy (its whole process group) and removes its folder. */
  dispose(): Promise<void>;
}

export interface PulsarProxyOptions {
  /** pulsar://host:port of a broker: where the proxy sends lookups. */
  brokerServiceUrl: string;
  /** http://host:port of the same broker's admin API. */
  brokerWebServiceUrl: string;
  /** The brokers' cluster (the proxy refuses to start without one). Default "standalone". */
  clusterName?: string;
}

export async function startPulsarProxy(o: PulsarProxyOptions): Promise<PulsarProxy> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulsar-proxy-"));
  const [port, httpPort] = [await freePort(), await freePort()];
  const conf = path.join(dir, "proxy.conf");
  // With broker URLs given the proxy needs no metadata store: it asks that broker and forwards.
  writeConf(conf, {
    brokerServiceURL: o.brokerServiceUrl,
    brokerWebServiceURL: o.brokerWebServiceUrl,
    clusterName: o.clusterName ?? "standalone",
    bindAddress: "127.0.0.1",
    advertisedAddress: "127.0.0.1",
    servicePort: String(port),
    webServicePort: String(httpPort),
    // the default (6650,6651) would refuse brokers of a test's own on other ports
    brokerProxyAllowedTargetPorts: "*",
    numIOThreads: "2",
  });
  const proc = runPulsar(["proxy"], dir, { PULSAR_PROXY_CONF: conf });
  const dispose = async () => {
    await proc.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The binary port opens first; the web port opens last, once everything else has started.
    await proc.waitUntil(
      "pulsar proxy",
      async () => (await tcpOpen(port)) && (await tcpOpen(httpPort)),
      120_000,
    );
  } catch (err) {
    await dispose();
    throw err;
  }
  return { port, httpPort, serviceUrl: `pulsar://127.0.0.1:${port}`, process: proc, dispose };
}
