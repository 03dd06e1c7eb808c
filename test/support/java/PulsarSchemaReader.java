// Reads a Pulsar topic with the official Java client and Schema.AUTO_CONSUME(): the client fetches the
// schema version each message carries from the broker and decodes the message with it, as a Java
// application with a typed consumer would. Run as a single source file:
//   java -cp "<pulsar>/lib/*" PulsarSchemaReader.java <serviceUrl> <topic> <count> <timeoutSeconds>
// Prints one line per message: RECORD <schema type> then name=value for each field, tab-separated
// (nested records as their toString()).
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
        for (Field f : value.getFields()) line.add(f.getName() + "=" + value.getField(f));
        System.out.println(line);
        consumer.acknowledge(m);
      }
    }
  }
}
