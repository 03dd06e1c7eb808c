// Reads a Pulsar topic with the official Java client (the pulsar-client jars of the test Pulsar
// distribution), as an oracle of what a Java application sees: value or no value, key, event time and
// properties. Run as a single source file:
//   java -cp "<pulsar>/lib/*" PulsarMessageReader.java <serviceUrl> <topic> <count> <timeoutSeconds>
// Prints one line per message, fields tab-separated, bytes in hex:
//   MESSAGE  value|null (getValue() of Schema.BYTES)  data (getData(), "-" for null)  key|nokey  b64|text
//   keyBytes  eventTime  properties (comma-separated name:value, in hex)
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.Map;
import java.util.StringJoiner;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.Schema;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;

public class PulsarMessageReader {
  public static void main(String[] args) throws Exception {
    HexFormat hex = HexFormat.of();
    int count = Integer.parseInt(args[2]);
    long timeoutMs = Long.parseLong(args[3]) * 1000;
    try (PulsarClient client = PulsarClient.builder().serviceUrl(args[0]).build();
        Consumer<byte[]> consumer =
            client
                .newConsumer(Schema.BYTES)
                .topic(args[1])
                .subscriptionName("java-reader-" + System.nanoTime())
                .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest)
                .subscribe()) {
      long deadline = System.currentTimeMillis() + timeoutMs;
      for (int i = 0; i < count; i++) {
        long left = deadline - System.currentTimeMillis();
        Message<byte[]> m = left > 0 ? consumer.receive((int) left, TimeUnit.MILLISECONDS) : null;
        if (m == null) break;
        StringJoiner props = new StringJoiner(",");
        for (Map.Entry<String, String> p : new TreeMap<>(m.getProperties()).entrySet()) {
          props.add(
              hex.formatHex(p.getKey().getBytes(StandardCharsets.UTF_8))
                  + ":"
                  + hex.formatHex(p.getValue().getBytes(StandardCharsets.UTF_8)));
        }
        System.out.println(
            String.join(
                "\t",
                "MESSAGE",
                m.getValue() == null ? "null" : "value",
                m.getData() == null ? "-" : hex.formatHex(m.getData()),
                m.hasKey() ? "key" : "nokey",
                m.hasBase64EncodedKey() ? "b64" : "text",
                m.hasKey() ? hex.formatHex(m.getKeyBytes()) : "",
                Long.toString(m.getEventTime()),
                props.toString()));
        consumer.acknowledge(m);
      }
    }
  }
}
