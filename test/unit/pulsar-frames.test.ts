// Golden frames: bytes worked out by hand from the protobuf wire format and Pulsar's framing
// (research/pulsar-protocol.md §1.1; field numbers from PulsarApi.proto), compared with what our encoder
// writes, then decoded again with our decoder. A wrong field number, wire type, varint, size or checksum
// changes a byte here. The CRC-32C values were computed with a separate, bitwise implementation.
//
// Reading the listings: a protobuf key is varint(field << 3 | wire type), wire type 0 = varint and
// 2 = length-delimited (a varint length follows). Varints are little-endian groups of 7 bits whose high
// bit says "more follows": 300 = ac 02, 1000 = e8 07, 1700000000000 = 80 d0 95 ff bc 31; the key of
// field 18 with wire type 2 is 146 = 92 01. In the comments, "name (n)" is field n and indentation
// is nesting.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CommandType,
  decodeCommand,
  encodeAck,
  encodeConnect,
  encodeFlow,
  encodePing,
  encodePong,
  encodeSend,
  encodeSubscribe,
} from "../../src/pulsar/protocol/commands";
import { FrameDecoder, payloadFrame, simpleFrame, type InboundFrame } from "../../src/pulsar/protocol/frame";
import {
  decodeBatchPayload,
  decodeEntryMetadata,
  encodeBatchPayload,
  encodeEntryMetadata,
} from "../../src/pulsar/protocol/metadata";
import {
  AuthenticationError,
  ConsumerBusyError,
  PulsarError,
  ServerError,
  fromServerError,
} from "../../src/pulsar/errors";

/** A golden frame written field by field: hex bytes, spaces ignored; 'quoted' text is its ASCII bytes. */
function hex(...parts: string[]): Buffer {
  const text = parts
    .join(" ")
    .replace(/'([^']*)'/g, (_, ascii: string) => Buffer.from(ascii, "latin1").toString("hex"));
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

function decodeOne(bytes: Buffer): InboundFrame {
  const frames: InboundFrame[] = [];
  new FrameDecoder().push(bytes, (f) => frames.push(f));
  assert.equal(frames.length, 1, "exactly one frame");
  return frames[0];
}

test("PING and PONG: the smallest simple frames", () => {
  const ping = hex(
    "00000009", // totalSize 9 = 4 (commandSize field) + 5
    "00000005", // commandSize 5
    "08 12", // BaseCommand.type (1, varint) = PING (18)
    "92 01 00", // BaseCommand.ping (18, length-delimited): an empty CommandPing
  );
  const pong = hex(
    "00000009", // totalSize 9
    "00000005", // commandSize 5
    "08 13", // type = PONG (19)
    "9a 01 00", // BaseCommand.pong (19, key 154 = 9a 01): empty
  );
  assert.deepEqual(simpleFrame(encodePing()), ping);
  assert.deepEqual(simpleFrame(encodePong()), pong);
  assert.deepEqual(decodeCommand(decodeOne(ping).command), { type: CommandType.PING });
  assert.deepEqual(decodeCommand(decodeOne(pong).command), { type: CommandType.PONG });
  assert.equal(decodeOne(ping).payload, undefined, "a simple frame has no payload part");
});

test("CONNECT without and with credentials and a proxy target", () => {
  const plain = hex(
    "0000002f", // totalSize 47
    "0000002b", // commandSize 43
    "08 02", // type = CONNECT (2)
    "12 27", // BaseCommand.connect (2), 39 bytes:
    "0a 1d 'node-red-contrib-kafka-pulsar'", //   client_version (1), 29 bytes
    "20 13", //   protocol_version (4) = 19
    "52 04", //   feature_flags (10), 4 bytes:
    "08 01", //     supports_auth_refresh (1) = true
    "18 01", //     supports_partial_producer (3) = true
  );
  assert.deepEqual(simpleFrame(encodeConnect({})), plain);

  const withAuth = hex(
    "00000043", // totalSize 67
    "0000003f", // commandSize 63
    "08 02", // type = CONNECT (2)
    "12 3b", // BaseCommand.connect (2), 59 bytes:
    "0a 1d 'node-red-contrib-kafka-pulsar'", //   client_version (1)
    "1a 03 'abc'", //   auth_data (3, bytes)
    "20 13", //   protocol_version (4) = 19
    "2a 05 'token'", //   auth_method_name (5)
    "32 06 'b:6650'", //   proxy_to_broker_url (6)
    "52 04 08 01 18 01", //   feature_flags (10) as above
  );
  const connect = encodeConnect({
    authMethodName: "token",
    authData: Buffer.from("abc"),
    proxyToBrokerUrl: "b:6650",
  });
  assert.deepEqual(simpleFrame(connect), withAuth);
  assert.deepEqual(decodeOne(withAuth).command, connect);
});

test("SUBSCRIBE, FLOW and ACK: what the consumer sends", () => {
  const subscribe = hex(
    "00000035", // totalSize 53
    "00000031", // commandSize 49
    "08 04", // type = SUBSCRIBE (4)
    "22 2d", // BaseCommand.subscribe (4), 45 bytes:
    "0a 1d 'persistent://public/default/t'", //   topic (1), 29 bytes
    "12 01 's'", //   subscription (2)
    "18 03", //   subType (3) = Key_Shared (3)
    "20 01", //   consumer_id (4) = 1
    "28 02", //   request_id (5) = 2
    "32 01 'c'", //   consumer_name (6)
    "68 01", //   initialPosition (13, key 104) = Earliest (1)
  );
  assert.deepEqual(
    simpleFrame(
      encodeSubscribe({
        topic: "persistent://public/default/t",
        subscription: "s",
        subType: 3,
        consumerId: 1,
        requestId: 2,
        consumerName: "c",
        initialPosition: "earliest",
      }),
    ),
    subscribe,
  );

  const flow = hex(
    "0000000d", // totalSize 13
    "00000009", // commandSize 9
    "08 0b", // type = FLOW (11)
    "5a 05", // BaseCommand.flow (11, key 90), 5 bytes:
    "08 01", //   consumer_id (1) = 1
    "10 e8 07", //   messagePermits (2) = 1000
  );
  assert.deepEqual(simpleFrame(encodeFlow(1, 1000)), flow);

  const ack = hex(
    "00000012", // totalSize 18
    "0000000e", // commandSize 14
    "08 0a", // type = ACK (10)
    "52 0a", // BaseCommand.ack (10, key 82), 10 bytes:
    "08 01", //   consumer_id (1) = 1
    "10 00", //   ack_type (2) = Individual (0)
    "1a 04", //   message_id (3, MessageIdData), 4 bytes:
    "08 0c", //     ledgerId (1) = 12
    "10 22", //     entryId (2) = 34
  );
  assert.deepEqual(simpleFrame(encodeAck(1, { ledgerId: 12, entryId: 34 })), ack);
});

test("SEND of one message: command, magic, CRC-32C, metadata size, MessageMetadata, payload", () => {
  const golden = hex(
    "0000003d", // totalSize 61 = 4 + 9 + 2 (magic) + 4 (CRC) + 4 (metadata size) + 36 + 2
    "00000009", // commandSize 9
    "08 06", // type = SEND (6)
    "32 05", // BaseCommand.send (6), 5 bytes:
    "08 07", //   producer_id (1) = 7
    "10 ac 02", //   sequence_id (2) = 300; num_messages = 1 and highest_sequence_id are left out
    "0e 01", // magic 0x0e01: a checksum follows
    "d6 33 a5 86", // CRC-32C over the rest of the frame: metadata size, metadata, payload
    "00000024", // metadata size 36, then MessageMetadata:
    "0a 03 'p-1'", //   producer_name (1)
    "10 ac 02", //   sequence_id (2) = 300
    "18 80 d0 95 ff bc 31", //   publish_time (3) = 1700000000000
    "22 09", //   properties (4), a KeyValue of 9 bytes:
    "0a 04 'unit'", //     key (1)
    "12 01 'C'", //     value (2)
    "32 01 'k'", //   partition_key (6)
    "60 81 d0 95 ff bc 31", //   event_time (12, key 96) = 1700000000001
    "'hi'", // payload
  );
  const command = encodeSend({ producerId: 7, sequenceId: 300, numMessages: 1, highestSequenceId: 300 });
  const metadata = encodeEntryMetadata({
    producerName: "p-1",
    sequenceId: 300,
    publishTime: 1700000000000,
    properties: { unit: "C" },
    partitionKey: "k",
    eventTime: 1700000000001,
  });
  assert.deepEqual(payloadFrame(command, metadata, Buffer.from("hi")), golden);

  const frame = decodeOne(golden);
  assert.equal(frame.checksumOk, true);
  assert.deepEqual(frame.command, command);
  assert.equal(frame.payload?.toString(), "hi");
  const md = decodeEntryMetadata(frame.metadata ?? Buffer.alloc(0));
  assert.equal(md.producerName, "p-1");
  assert.equal(md.sequenceId, 300);
  assert.equal(md.publishTime, 1700000000000);
  assert.deepEqual(md.properties, { unit: "C" });
  assert.equal(md.partitionKey, "k");
  assert.equal(md.eventTime, 1700000000001);
  assert.equal(md.numMessagesInBatch, undefined, "not a batch");

  // one flipped payload bit: the checksum no longer matches
  const corrupted = Buffer.from(golden);
  corrupted[corrupted.length - 1] ^= 0x01;
  assert.equal(decodeOne(corrupted).checksumOk, false);
});

test("SEND of a batch: lowest and highest sequence ids, a SingleMessageMetadata per message", () => {
  const golden = hex(
    "0000004b", // totalSize 75 = 4 + 14 + 2 + 4 + 4 + 21 + 26
    "0000000e", // commandSize 14
    "08 06", // type = SEND (6)
    "32 0a", // BaseCommand.send (6), 10 bytes:
    "08 07", //   producer_id (1) = 7
    "10 ad 02", //   sequence_id (2) = 301, the lowest of the batch
    "18 02", //   num_messages (3) = 2
    "30 ae 02", //   highest_sequence_id (6) = 302
    "0e 01", // magic
    "87 6a 10 3d", // CRC-32C
    "00000015", // metadata size 21, then MessageMetadata:
    "0a 03 'p-1'", //   producer_name (1)
    "10 ad 02", //   sequence_id (2) = 301
    "18 82 d0 95 ff bc 31", //   publish_time (3) = 1700000000002
    "58 02", //   num_messages_in_batch (11, key 88) = 2
    "c0 01 ae 02", //   highest_sequence_id (24, key 192 = c0 01) = 302
    // the batch payload, 26 bytes: per message [size u32][SingleMessageMetadata][payload]
    "00000008", // size 8, then SingleMessageMetadata:
    "12 01 'a'", //   partition_key (2)
    "18 01", //   payload_size (3) = 1
    "40 ad 02", //   sequence_id (8, key 64) = 301
    "'x'", // payload
    "00000007", // size 7, then SingleMessageMetadata:
    "18 02", //   payload_size (3) = 2
    "28 05", //   event_time (5) = 5
    "40 ae 02", //   sequence_id (8) = 302
    "'yz'", // payload
  );
  const command = encodeSend({ producerId: 7, sequenceId: 301, numMessages: 2, highestSequenceId: 302 });
  const metadata = encodeEntryMetadata({
    producerName: "p-1",
    sequenceId: 301,
    publishTime: 1700000000002,
    numMessagesInBatch: 2,
    highestSequenceId: 302,
  });
  const batch = encodeBatchPayload([
    { metadata: { payloadSize: 0, partitionKey: "a", sequenceId: 301 }, payload: Buffer.from("x") },
    { metadata: { payloadSize: 0, eventTime: 5, sequenceId: 302 }, payload: Buffer.from("yz") },
  ]);
  assert.deepEqual(payloadFrame(command, metadata, batch), golden);

  const frame = decodeOne(golden);
  assert.equal(frame.checksumOk, true);
  const md = decodeEntryMetadata(frame.metadata ?? Buffer.alloc(0));
  assert.equal(md.sequenceId, 301);
  assert.equal(md.highestSequenceId, 302);
  assert.equal(md.numMessagesInBatch, 2);
  const messages = decodeBatchPayload(frame.payload ?? Buffer.alloc(0), 2);
  assert.deepEqual(
    messages.map((m) => [
      m.payload.toString(),
      m.metadata.partitionKey,
      m.metadata.sequenceId,
      m.metadata.eventTime,
    ]),
    [
      ["x", "a", 301, undefined],
      ["yz", undefined, 302, 5],
    ],
  );
});

test("MESSAGE from the broker, with broker entry metadata before the checksum", () => {
  const golden = hex(
    "0000003c", // totalSize 60 = 4 + 14 + 15 (entry metadata block) + 2 + 4 + 4 + 15 + 2
    "0000000e", // commandSize 14
    "08 09", // type = MESSAGE (9)
    "4a 0a", // BaseCommand.message (9, key 74), 10 bytes:
    "08 01", //   consumer_id (1) = 1
    "12 04", //   message_id (2), 4 bytes:
    "08 0c", //     ledgerId (1) = 12
    "10 22", //     entryId (2) = 34
    "18 02", //   redelivery_count (3) = 2
    "0e 02", // magic 0x0e02: broker entry metadata follows
    "00000009", // its size 9, then BrokerEntryMetadata:
    "08 83 d0 95 ff bc 31", //   broker_timestamp (1) = 1700000000003
    "10 09", //   index (2) = 9
    "0e 01", // magic 0x0e01
    "f6 aa f7 fc", // CRC-32C
    "0000000f", // metadata size 15, then MessageMetadata:
    "0a 03 'p-1'", //   producer_name (1)
    "10 ac 02", //   sequence_id (2) = 300
    "18 80 d0 95 ff bc 31", //   publish_time (3) = 1700000000000
    "'hi'", // payload
  );
  const frame = decodeOne(golden);
  assert.equal(frame.checksumOk, true);
  assert.equal(frame.payload?.toString(), "hi");
  assert.deepEqual(decodeCommand(frame.command), {
    type: CommandType.MESSAGE,
    consumerId: 1,
    messageId: { ledgerId: 12, entryId: 34, partition: -1, batchIndex: -1 },
    redeliveryCount: 2,
  });
  const md = decodeEntryMetadata(frame.metadata ?? Buffer.alloc(0));
  assert.deepEqual([md.producerName, md.sequenceId, md.publishTime], ["p-1", 300, 1700000000000]);
});

test("ERROR from the broker becomes a typed error whose text names the code once", () => {
  const golden = hex(
    "00000017", // totalSize 23
    "00000013", // commandSize 19
    "08 0e", // type = ERROR (14)
    "72 0f", // BaseCommand.error (14, key 114), 15 bytes:
    "08 05", //   request_id (1) = 5
    "10 03", //   error (2) = AuthenticationError (3)
    "1a 09 'bad token'", //   message (3)
  );
  const cmd = decodeCommand(decodeOne(golden).command);
  assert.deepEqual(cmd, { type: CommandType.ERROR, requestId: 5, error: 3, message: "bad token" });
  assert.ok(cmd.type === CommandType.ERROR);
  const err = fromServerError(cmd.error, cmd.message);
  assert.ok(err instanceof AuthenticationError);
  assert.equal(err.code, "AuthenticationError");
  assert.equal(err.retriable, false);
  assert.equal(String(err), "AuthenticationError: bad token");

  const busy = fromServerError(5, "Exclusive consumer is already connected");
  assert.ok(busy instanceof ConsumerBusyError);
  assert.equal(busy.retriable, false, "a subscription held by another consumer is refused, not retried");
  assert.equal(String(busy), "ConsumerBusyError: Exclusive consumer is already connected");
  assert.equal(String(fromServerError(3, "")), "AuthenticationError: the broker gave no details");
  // the generic class names the code in its text, once
  const generic = fromServerError(19, "no consumer for the key range");
  assert.ok(generic instanceof ServerError && generic instanceof PulsarError);
  assert.equal(generic.code, "ConsumerAssignError");
  assert.equal(String(generic), "ServerError: ConsumerAssignError: no consumer for the key range");
  assert.equal(String(fromServerError(19, "")), "ServerError: ConsumerAssignError");
  assert.equal(String(fromServerError(99, "new")), "ServerError: ServerError99: new");
});
