// Reads a Pulsar topic with the official Java client and Schema.AUTO_CONSUME(): the client fetches the
// schema version each message carries from the broker and decodes the message with it, as a Java
// application with a typed consumer would. Run as a single source file:
//   java -cp "<pulsar>/lib/*" PulsarSchemaReader.java <serviceUrl> <topic> <count> <timeoutSeconds>
// Prints one line per message: RECORD <schema type> then name=value for each field, tab-separated
// (bytes as base64; a nested record, or a JSON array or object, as the text of the client's native object).
import java.nio.ByteBuffer;
import java.util.Base64;
import java.util.StringJoiner;
import java.util.concurrent.TimeUnit;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.Schema;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.client.api.schema.Field;
import org.apache.pulsar.client.api.schema.GenericRecord;

public class PulsarSchemaReader {
  /** A field's value as text: bytes as base64, a nested record as its native object's text. */
  static String shown(Object v) {
    if (v instanceof byte[] b) return Base64.getEncoder().encodeToString(b);
    if (v instanceof ByteBuffer b) {
      byte[] copy = new byte[b.remaining()];
      b.duplicate().get(copy);
      return Base64.getEncoder().encodeToString(copy);
    }
    if (v instanceof GenericRecord r) return String.valueOf(r.getNativeObject());
    return String.valueOf(v);
  }

  public static void main(String[] args) throws Exception {
    int count = Integer.parseInt(args[2]);
    long timeoutMs = Long.parseLong(args[3]) * 1000;
    try (PulsarClient client = PulsarClient.builder().serviceUrl(args[0]).build();
        Consumer<GenericRecord> consumer =
            client
                .newConsumer(Schema.AUTO_CONSUME())
                .topic(args[1])
                .subscriptionName("java-schema-reader-" + System.nanoTime())
                .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest)
                .subscribe()) {
      long deadline = System.currentTimeMillis() + timeoutMs;
      for (int i = 0; i < count; i++) {
        long left = deadline - System.currentTimeMillis();
        Message<GenericRecord> m = left > 0 ? consumer.receive((int) left, TimeUnit.MILLISECONDS) : null;
        if (m == null) break;
        GenericRecord value = m.getValue();
        StringJoiner line = new StringJoiner("\t");
        line.add("RECORD").add(String.valueOf(value.getSchemaType()));
        for (Field f : value.getFields()) {
          Object v = value.getField(f);
          line.add(f.getName() + "=" + shown(v));
        }
        System.out.println(line);
        consumer.acknowledge(m);
      }
    }
  }
}
