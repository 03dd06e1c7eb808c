// Demo records for `npm start`: sensor readings as JSON into a Kafka topic with several partitions,
// keyed by sensor id, with headers — what a bridge flow typically receives.
import { Kafka, logLevel, Partitioners } from "kafkajs";

const SENSORS = ["boiler-1", "boiler-2", "pump-7", "fan-3", "valve-12", "tank-4"];

/**
 * Starts producing `ratePerSecond` records to `topic` (created with `partitions` partitions when missing).
 * Returns a stop function and a live counter.
 */
export async function startDemoGenerator({ brokers, topic = "sensors", partitions = 3, ratePerSecond = 20 }) {
  const kafka = new Kafka({ clientId: "demo-generator", brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const state = { produced: 0, failed: 0, lastError: "" };
  let seq = 0;
  const perTick = Math.max(1, Math.round(ratePerSecond / 10));
  const timer = setInterval(() => {
    const messages = [];
    for (let i = 0; i < perTick; i++) {
      const sensor = SENSORS[seq++ % SENSORS.length];
      const reading = {
        sensor,
        temperature: Math.round((20 + 15 * Math.sin(seq / 50) + Math.random() * 2) * 10) / 10,
        humidity: Math.round(40 + Math.random() * 20),
        seq,
        at: new Date().toISOString(),
      };
      messages.push({
        key: sensor,
        value: JSON.stringify(reading),
        headers: { source: "demo-generator", "content-type": "application/json" },
      });
    }
    producer.send({ topic, messages }).then(
      () => (state.produced += messages.length),
      (err) => {
        state.failed += messages.length;
        state.lastError = err instanceof Error ? err.message : String(err);
      },
    );
  }, 100);
  return {
    state,
    async stop() {
      clearInterval(timer);
      await producer.disconnect().catch(() => {});
    },
  };
}
