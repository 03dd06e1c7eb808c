// Writes Avro records with Apicurio Registry's Java serializer in Confluent-compatible mode (the wire
// format: a zero byte, the 4-byte id the registry's ccompat API serves, the Avro binary body), registering
// the schema under <topic>-value, for tests of kafka-in's schema registry format. Run as a single source file:
//   java -cp "<kafka>/libs/*:<serdes>/*" RegistryRecordProducer.java <bootstrap> <topic> <registry v2 url> <schema file>
// One record per line of standard input: the key as text, a tab, the value in Avro's JSON encoding (unions
// as {"type": value}). Prints "RECORD <partition> <offset>" per record, in order.
import io.apicurio.registry.serde.SerdeConfig;
import io.apicurio.registry.serde.avro.AvroKafkaSerializer;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public class RegistryRecordProducer {
  public static void main(String[] args) throws Exception {
    Schema schema = new Schema.Parser().parse(Files.readString(Path.of(args[3])));
    Properties config = new Properties();
    config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    config.put(ProducerConfig.ACKS_CONFIG, "all");
    config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, AvroKafkaSerializer.class.getName());
    config.put(SerdeConfig.REGISTRY_URL, args[2]);
    config.put(SerdeConfig.AUTO_REGISTER_ARTIFACT, "true");
    // the Confluent wire format: the id in the value (not in headers), 4 bytes, the content id
    config.put(SerdeConfig.ENABLE_HEADERS, "false");
    config.put(SerdeConfig.ENABLE_CONFLUENT_ID_HANDLER, "true");
    config.put(SerdeConfig.USE_ID, "contentId");
    String topic = args[1];
    GenericDatumReader<GenericRecord> reader = new GenericDatumReader<>(schema);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    try (KafkaProducer<String, Object> producer = new KafkaProducer<>(config)) {
      String line;
      while ((line = in.readLine()) != null) {
        if (line.isEmpty()) continue;
        int tab = line.indexOf('\t');
        String key = line.substring(0, tab);
        GenericRecord value = reader.read(null, DecoderFactory.get().jsonDecoder(schema, line.substring(tab + 1)));
        RecordMetadata m = producer.send(new ProducerRecord<>(topic, key, value)).get();
        System.out.println("RECORD " + m.partition() + " " + m.offset());
      }
    }
  }
}
