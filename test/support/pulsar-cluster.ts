// A Pulsar cluster of two brokers, for tests of lookups that name another broker: a standalone on ZooKeeper
// (its ZooKeeper, bookie and first broker) plus `bin/pulsar broker` on the same ZooKeeper and bookie, in
// the same cluster. Both place bundles with the modular load manager (the leader chooses an owner and
// redirects the lookup there); no load shedding, so that ownership stays put during a test.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "./node-red-process";
import { httpStatus, patchConf, runPulsar, type PulsarProcess } from "./pulsar-process";

export interface ClusterBroker {
  port: number;
  httpPort: number;
  serviceUrl: string;
  httpUrl: string;
  /** How the cluster names this broker (lookups, ownership): 127.0.0.1:<httpPort>. */
  id: string;
  process: PulsarProcess;
}

export interface PulsarCluster {
  clusterName: string;
  zookeeperPort: number;
  /** [0]: the standalone (leader, as it starts first); [1]: the extra broker. */
  brokers: [ClusterBroker, ClusterBroker];
  /** Environment for runTool (scripts/brokers.mjs) so that the official CLI talks to broker [0]. */
  toolEnv: NodeJS.ProcessEnv;
  /** Stops both (process groups) and removes the data. */
  dispose(): Promise<void>;
}

const CLUSTER = "standalone";
const LOAD_MANAGER = "org.apache.pulsar.broker.loadbalance.impl.ModularLoadManagerImpl";

export async function startPulsarCluster(): Promise<PulsarCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulsar-cluster-"));
  const ports = [];
  for (let i = 0; i < 6; i++) ports.push(await freePort());
  const [zookeeperPort, bookiePort, portA, httpA, portB, httpB] = ports as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const shared = {
    clusterName: CLUSTER,
    bindAddress: "127.0.0.1",
    advertisedAddress: "127.0.0.1",
    loadManagerClassName: LOAD_MANAGER,
    loadBalancerEnabled: "false",
    brokerDeleteInactiveTopicsEnabled: "false",
    brokerShutdownTimeoutMs: "5000",
    webSocketServiceEnabled: "false",
    numIOThreads: "2",
  };
  const started: PulsarProcess[] = [];
  const dispose = async () => {
    for (const p of started.reverse()) await p.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const broker = (port: number, httpPort: number, proc: PulsarProcess): ClusterBroker => ({
    port,
    httpPort,
    serviceUrl: `pulsar://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    id: `127.0.0.1:${httpPort}`,
    process: proc,
  });
  try {
    const dirA = path.join(dir, "standalone");
    fs.mkdirSync(dirA, { recursive: true });
    patchConf("standalone.conf", path.join(dirA, "standalone.conf"), {
      ...shared,
      brokerServicePort: String(portA),
      webServicePort: String(httpA),
    });
    const a = runPulsar(
      [
        "standalone",
        "--no-functions-worker",
        "--no-stream-storage",
        "--wipe-data",
        "--zookeeper-port",
        String(zookeeperPort),
        "--zookeeper-dir",
        path.join(dirA, "zookeeper"),
        "--bookkeeper-port",
        String(bookiePort),
        "--bookkeeper-dir",
        path.join(dirA, "bookkeeper"),
        "--advertised-address",
        "127.0.0.1",
      ],
      dirA,
      {
        PULSAR_STANDALONE_USE_ZOOKEEPER: "1",
        PULSAR_STANDALONE_CONF: path.join(dirA, "standalone.conf"),
        PULSAR_MEM: "-Xms128m -Xmx512m -XX:MaxDirectMemorySize=512m",
      },
    );
    started.push(a);
    await a.waitUntil(
      "pulsar standalone (ZooKeeper)",
      async () =>
        (await httpStatus(`http://127.0.0.1:${httpA}/admin/v2/namespaces/public/default`)) === 200 &&
        (await httpStatus(`http://127.0.0.1:${httpA}/admin/v2/brokers/health`)) === 200,
      300_000,
    );

    const dirB = path.join(dir, "broker");
    fs.mkdirSync(dirB, { recursive: true });
    const zk = `zk:127.0.0.1:${zookeeperPort}`;
    patchConf("broker.conf", path.join(dirB, "broker.conf"), {
      ...shared,
      metadataStoreUrl: zk,
      configurationMetadataStoreUrl: zk,
      brokerServicePort: String(portB),
      webServicePort: String(httpB),
      // one bookie
      managedLedgerDefaultEnsembleSize: "1",
      managedLedgerDefaultWriteQuorum: "1",
      managedLedgerDefaultAckQuorum: "1",
      bookkeeperClientMinNumRacksPerWriteQuorum: "1",
      functionsWorkerEnabled: "false",
    });
    const b = runPulsar(["broker"], dirB, {
      PULSAR_BROKER_CONF: path.join(dirB, "broker.conf"),
      PULSAR_MEM: "-Xms128m -Xmx384m -XX:MaxDirectMemorySize=384m",
    });
    started.push(b);
    const brokers: [ClusterBroker, ClusterBroker] = [broker(portA, httpA, a), broker(portB, httpB, b)];
    await b.waitUntil(
      "pulsar broker",
      async () => (await httpStatus(`http://127.0.0.1:${httpB}/admin/v2/brokers/health`)) === 200,
      300_000,
    );
    // Both brokers registered, as the leader sees them.
    await a.waitUntil(
      "both brokers in the cluster",
      async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${httpA}/admin/v2/brokers/${CLUSTER}`);
          const list = (await res.json()) as string[];
          return brokers.every((br) => list.includes(br.id));
        } catch {
          return false;
        }
      },
      60_000,
    );
    return {
      clusterName: CLUSTER,
      zookeeperPort,
      brokers,
      toolEnv: {
        ...process.env,
        BROKERS_HOME: path.join(dir, "tools"),
        PULSAR_PORT: String(portA),
        PULSAR_HTTP_PORT: String(httpA),
      },
      dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}
