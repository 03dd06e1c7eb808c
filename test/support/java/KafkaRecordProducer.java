// Writes records with Kafka's own Java producer (kafka-clients of the test Kafka distribution), for tests
// that need records only Kafka's clients write: headers without a value, a name repeated out of order,
// tombstones, empty values, binary keys, no timestamp. Run as a single source file:
//   java -cp "<kafka>/libs/*" KafkaRecordProducer.java <bootstrap> <topic> < records
// One record per line of standard input, tab-separated, bytes in hex ("-" for null):
//   partition ("" = the producer's choice)  timestamp ("" = the producer's clock, "none" = no timestamp)
//   key  value  headers (comma-separated name:value, "" = none)
// Prints "RECORD <partition> <offset> <timestamp>" per record, in order.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class KafkaRecordProducer {
  private static final HexFormat HEX = HexFormat.of();

  private static byte[] bytes(String field) {
    return field.equals("-") ? null : HEX.parseHex(field);
  }

  public static void main(String[] args) throws Exception {
    Properties config = new Properties();
    config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    config.put(ProducerConfig.ACKS_CONFIG, "all");
    config.put(ProducerConfig.LINGER_MS_CONFIG, "0");
    config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    String topic = args[1];
    // ProducerRecord refuses a negative timestamp, but the rest of the client takes -1 as Kafka's
    // "no timestamp" (RecordBatch.NO_TIMESTAMP) and the broker stores it: set past the constructor's check.
    Field timestampField = ProducerRecord.class.getDeclaredField("timestamp");
    timestampField.setAccessible(true);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
      String line;
      while ((line = in.readLine()) != null) {
        if (line.isEmpty()) continue;
        String[] f = line.split("\t", -1);
        Integer partition = f[0].isEmpty() ? null : Integer.valueOf(f[0]);
        boolean noTimestamp = f[1].equals("none");
        Long timestamp = f[1].isEmpty() || noTimestamp ? null : Long.valueOf(f[1]);
        List<Header> headers = new ArrayList<>();
        if (!f[4].isEmpty()) {
          for (String h : f[4].split(",")) {
            String[] nv = h.split(":", 2);
            String name = new String(HEX.parseHex(nv[0]), StandardCharsets.UTF_8);
            headers.add(new RecordHeader(name, bytes(nv[1])));
          }
        }
        ProducerRecord<byte[], byte[]> record =
            new ProducerRecord<>(topic, partition, timestamp, bytes(f[2]), bytes(f[3]), headers);
        if (noTimestamp) timestampField.set(record, -1L);
        RecordMetadata md = producer.send(record).get();
        System.out.println("RECORD " + md.partition() + " " + md.offset() + " " + md.timestamp());
      }
      producer.flush();
    }
  }
}
