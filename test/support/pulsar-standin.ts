// A stand-in for the Pulsar client's lookup and connections (no broker): what the broker answers to a
// producer's creation is scripted per attempt, frames written are kept, receipts are given by the test.
import type { BuiltinClient } from "../../src/pulsar/client";
import type { Connection, ProducerListener } from "../../src/pulsar/connection";
import { MemoryLimit } from "../../src/pulsar/memory-limit";
import { SequenceHoles } from "../../src/pulsar/sequence-ranges";
import { CommandType, type Inbound } from "../../src/pulsar/protocol/commands";
import { FrameDecoder } from "../../src/pulsar/protocol/frame";
import { ProtoMessage } from "../../src/pulsar/protocol/protobuf";

/** What the stand-in broker does with one creation attempt. */
export type Step = "ok" | Error;

export class StandIn {
  /** One entry per attempt: where it fails (lookup, or the PRODUCER request), or "ok". */
  readonly script: { at: "lookup" | "producer"; step: Step }[] = [];
  lookups = 0;
  listener: ProducerListener | undefined;
  producerId = 0;
  written: Buffer[] = [];
  logs: string[] = [];
  /** What PRODUCER_SUCCESS reports as the broker's last sequence id for the producer. */
  lastSequenceId = -1;
  /** The topic's partitions (0: not partitioned). */
  partitions = 0;
  /** The client's memory limit (0: none). */
  memoryLimitBytes = 0;
  /** The client's holes (BuiltinClient.holes), kept across the producers made of this stand-in. */
  readonly holes = new SequenceHoles();

  client(): BuiltinClient {
    let nextId = 1;
    const conn = {
      maxMessageSize: 5 * 1024 * 1024,
      closed: false,
      addProducer: (id: number, l: ProducerListener) => {
        this.producerId = id;
        this.listener = l;
      },
      removeProducer: () => (this.listener = undefined),
      write: (frame: Buffer) => {
        this.written.push(frame);
        return true;
      },
      request: (): Promise<Inbound> => {
        const next = this.script[0];
        if (next?.at === "producer") {
          this.script.shift();
          if (next.step !== "ok") return Promise.reject(next.step);
        }
        return Promise.resolve({
          type: CommandType.PRODUCER_SUCCESS,
          requestId: 1,
          producerName: "standin-1",
          lastSequenceId: this.lastSequenceId,
          producerReady: true,
        });
      },
    } as unknown as Connection;
    return {
      options: {
        serviceUrl: "pulsar://standin:6650",
        operationTimeoutMs: 2000,
        connectionTimeoutMs: 1000,
        keepAliveIntervalMs: 30_000,
        initialBackoffMs: 5,
        maxBackoffMs: 20,
      },
      newId: () => nextId++,
      memory: new MemoryLimit(this.memoryLimitBytes),
      holes: this.holes,
      log: (level: string, message: string) => this.logs.push(`${level}: ${message}`),
      partitionCountWithRetry: () => Promise.resolve(this.partitions),
      lookup: () => {
        this.lookups++;
        const next = this.script[0];
        if (next?.at === "lookup") {
          this.script.shift();
          if (next.step !== "ok") return Promise.reject(next.step);
        }
        return Promise.resolve({ logical: "standin:6650", physical: { host: "standin", port: 6650 } });
      },
      getConnection: () => Promise.resolve(conn),
      untrack: () => undefined,
    } as unknown as BuiltinClient;
  }

  /** The broker acknowledges the oldest pending entry (by one of its sequence ids); -1:-1 for a duplicate. */
  receipt(sequenceId: number, duplicate = false): void {
    this.listener?.onReceipt({
      type: CommandType.SEND_RECEIPT,
      producerId: this.producerId,
      sequenceId,
      messageId: duplicate ? { ledgerId: -1, entryId: -1 } : { ledgerId: 7, entryId: sequenceId },
    } as Extract<Inbound, { type: typeof CommandType.SEND_RECEIPT }>);
  }
}

/** A stand-in client that keeps each partition producer's listener, to answer a SEND on its producer. */
export function partitionedClient(b: StandIn) {
  const client = b.client();
  const listeners = new Map<number, ProducerListener>();
  const getConnection = client.getConnection.bind(client);
  const wrapped = new WeakSet<Connection>();
  client.getConnection = async (target) => {
    const conn = await getConnection(target);
    if (!wrapped.has(conn)) {
      wrapped.add(conn);
      const add = conn.addProducer.bind(conn);
      conn.addProducer = (id, l) => {
        listeners.set(id, l);
        add(id, l);
      };
    }
    return conn;
  };
  /** Answers every SEND written so far with a receipt on its own producer. */
  const answerAll = () => {
    const d = new FrameDecoder();
    for (const frame of b.written.splice(0))
      d.push(frame, (f) => {
        const send = new ProtoMessage(f.command).message(CommandType.SEND);
        if (!send) return;
        const producerId = send.num(1);
        listeners.get(producerId)?.onReceipt({
          type: CommandType.SEND_RECEIPT,
          producerId,
          sequenceId: send.num(2),
          messageId: { ledgerId: 7, entryId: send.num(2) },
        } as Extract<Inbound, { type: typeof CommandType.SEND_RECEIPT }>);
      });
  };
  return { client, answerAll };
}
