// Pure pieces of the Pulsar client: CRC32C, key hashes, LZ4 blocks, codecs, protobuf, frames, batches.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { crc32c } from "../../src/pulsar/crc32c";
import { javaStringHash, murmur3Hash32 } from "../../src/pulsar/hash";
import { lz4CompressBlock, lz4DecompressBlock } from "../../src/pulsar/lz4";
import { loadCodec } from "../../src/pulsar/compression";
import { ProtoMessage, ProtoWriter } from "../../src/pulsar/protocol/protobuf";
import { FrameDecoder, payloadFrame, simpleFrame } from "../../src/pulsar/protocol/frame";
import { decodeCommand, encodeSend, encodePing, CommandType } from "../../src/pulsar/protocol/commands";
import {
  decodeBatchPayload,
  decodeEntryMetadata,
  encodeBatchPayload,
  encodeEntryMetadata,
} from "../../src/pulsar/protocol/metadata";
import type { CompressionType } from "../../src/pulsar/types";

test("CRC32C matches the published check value and continues across pieces", () => {
  assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  const data = randomBytes(1000);
  assert.equal(crc32c(data.subarray(300), crc32c(data.subarray(0, 300))), crc32c(data));
  assert.equal(crc32c(Buffer.alloc(0)), 0);
});

test("CRC32C agrees with a bit-by-bit reference at every alignment and length", () => {
  // the definition, one bit at a time: slow, but shares nothing with the table-driven code
  const reference = (bytes: Uint8Array): number => {
    let crc = 0xffffffff;
    for (const byte of bytes) {
      crc ^= byte;
      for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    }
    return ~crc >>> 0;
  };
  const data = randomBytes(300);
  for (let offset = 0; offset < 8; offset++)
    for (const length of [0, 1, 3, 4, 15, 16, 17, 31, 32, 33, 64, 100, 255, 292 - offset]) {
      const view = data.subarray(offset, offset + length);
      assert.equal(crc32c(view), reference(view), `offset ${offset}, length ${length}`);
    }
});

test("key hashes equal the Java client's (JavaStringHash over UTF-16, Murmur3_32 over UTF-8)", () => {
  const vectors: [string, number, number][] = [
    ["key-1", 414258592, 101943363],
    ["hello", 613153351, 99162322],
    ["sensor/42", 409247028, 470814963],
    ["Ünïcødé-ключ", 2010686449, 1545118320],
  ];
  for (const [key, murmur, java] of vectors) {
    assert.equal(murmur3Hash32(key), murmur, `murmur3 ${key}`);
    assert.equal(javaStringHash(key), java, `java ${key}`);
  }
  assert.equal(murmur3Hash32(""), 0);
  assert.equal(murmur3Hash32("a"), 0x3c2569b2);
});

test("LZ4 blocks round-trip, respect the end-of-block rules, and corrupt blocks are refused", () => {
  const inputs: Buffer[] = [
    Buffer.alloc(0),
    Buffer.from("a"),
    Buffer.alloc(13, 1),
    Buffer.alloc(14, 2),
    Buffer.alloc(20, 3),
    randomBytes(5000),
  ];
  inputs.push(
    Buffer.from(JSON.stringify(Array.from({ length: 3000 }, (_, i) => ({ id: i, s: `sensor-${i % 9}` })))),
  );
  for (let t = 0; t < 2000; t++) {
    const n = Math.floor(Math.random() * 3000);
    const b = Buffer.alloc(n);
    const period = 1 + Math.floor(Math.random() * 40);
    const noise = Math.random();
    for (let i = 0; i < n; i++)
      b[i] = Math.random() < noise ? Math.floor(Math.random() * 256) : 65 + (i % period);
    inputs.push(b);
  }
  for (const input of inputs) {
    const block = lz4CompressBlock(input);
    assert.deepEqual(lz4DecompressBlock(block, input.length), input);
    if (input.length >= 5) {
      // the last token carries at least 5 literal bytes: the block ends with the input's last 5 bytes
      assert.deepEqual(block.subarray(block.length - 5), input.subarray(input.length - 5));
    }
  }
  const good = lz4CompressBlock(Buffer.alloc(1000, 7));
  assert.throws(() => lz4DecompressBlock(good, 999), /corrupt LZ4 block/);
  assert.throws(() => lz4DecompressBlock(Buffer.from([0x0f, 1, 2]), 100), /corrupt LZ4 block/);
});

test("every codec round-trips and checks the announced size", async () => {
  const data = Buffer.from(
    JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ sensor: `boiler-${i % 5}`, temperature: 21.5 }))),
  );
  for (const type of ["none", "lz4", "zlib", "zstd", "snappy"] as CompressionType[]) {
    const codec = await loadCodec(type);
    const packed = codec.compress(data);
    assert.deepEqual(codec.decompress(packed, data.length), data, type);
    if (type !== "none") assert.ok(packed.length < data.length, `${type} compresses`);
    assert.throws(() => codec.decompress(packed, data.length + 1), type);
  }
  await assert.rejects(loadCodec("brotli" as CompressionType), /unknown compression/);
});

test("zlib decoding accepts Java's stream without a final block", async () => {
  const zlib = await import("node:zlib");
  const data = Buffer.from("java writes SYNC_FLUSH and no trailer ".repeat(20));
  const deflate = zlib.createDeflate();
  const chunks: Buffer[] = [];
  deflate.on("data", (c: Buffer) => chunks.push(c));
  deflate.write(data);
  await new Promise<void>((resolve) => deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve()));
  const javaStyle = Buffer.concat(chunks);
  deflate.destroy();
  const codec = await loadCodec("zlib");
  assert.deepEqual(codec.decompress(javaStyle, data.length), data);
});

test("protobuf varints cover 64-bit values and negative int64", () => {
  const w = new ProtoWriter(4);
  w.varint(1, 0)
    .varint(2, 300)
    .varint(3, 2 ** 40 + 5)
    .varint(4, -1)
    .string(5, "héllo")
    .bytes(6, Buffer.from([1, 2]))
    .varint(7, true);
  const m = new ProtoMessage(w.finish());
  assert.equal(m.num(1), 0);
  assert.equal(m.num(2), 300);
  assert.equal(m.num(3), 2 ** 40 + 5);
  assert.equal(m.num(4), -1);
  assert.equal(m.str(5), "héllo");
  assert.deepEqual(m.bytes(6), Buffer.from([1, 2]));
  assert.equal(m.bool(7), true);
  assert.equal(m.num(99, 42), 42);
  assert.throws(() => new ProtoMessage(Buffer.from([0x08, 0x80])), /truncated/);
});

test("frames: a payload frame carries a valid CRC32C and the streaming decoder handles any split", () => {
  const cmd = encodeSend({ producerId: 3, sequenceId: 10, numMessages: 2, highestSequenceId: 11 });
  const md = encodeEntryMetadata({
    producerName: "p",
    sequenceId: 10,
    highestSequenceId: 11,
    publishTime: 1,
    numMessagesInBatch: 2,
  });
  const frame = payloadFrame(cmd, md, Buffer.from("payload"));
  const stream = Buffer.concat([simpleFrame(encodePing()), frame, simpleFrame(encodePing())]);
  for (let cut = 1; cut < stream.length; cut += 7) {
    const decoder = new FrameDecoder();
    const frames: ReturnType<typeof decodeCommand>[] = [];
    const onFrame = (f: { command: Buffer; checksumOk?: boolean; payload?: Buffer }) => {
      frames.push(decodeCommand(f.command));
      if (f.payload) {
        assert.equal(f.checksumOk, true);
        assert.equal(f.payload.toString(), "payload");
      }
    };
    decoder.push(stream.subarray(0, cut), onFrame);
    decoder.push(stream.subarray(cut), onFrame);
    assert.deepEqual(
      frames.map((f) => f.type),
      [CommandType.PING, "unknown", CommandType.PING],
    );
  }
  const corrupted = Buffer.from(frame);
  corrupted[corrupted.length - 1] ^= 0xff;
  new FrameDecoder().push(corrupted, (f) => assert.equal(f.checksumOk, false));
});

test("batch payloads round-trip with per-message keys, properties, event times and sequence ids", () => {
  const items = [
    {
      metadata: { payloadSize: 0, partitionKey: "k1", properties: { a: "1" }, eventTime: 5, sequenceId: 7 },
      payload: Buffer.from("one"),
    },
    {
      metadata: { payloadSize: 0, partitionKey: "AAE=", partitionKeyB64: true, sequenceId: 8 },
      payload: Buffer.alloc(0),
    },
  ];
  const decoded = decodeBatchPayload(encodeBatchPayload(items), 2);
  assert.equal(decoded[0]?.payload.toString(), "one");
  assert.deepEqual(decoded[0]?.metadata.properties, { a: "1" });
  assert.equal(decoded[0]?.metadata.eventTime, 5);
  assert.equal(decoded[1]?.metadata.partitionKeyB64, true);
  assert.equal(decoded[1]?.metadata.sequenceId, 8);
  const md = decodeEntryMetadata(
    encodeEntryMetadata({
      producerName: "x",
      sequenceId: 7,
      highestSequenceId: 8,
      publishTime: 9,
      numMessagesInBatch: 2,
      compression: 1,
      uncompressedSize: 40,
    }),
  );
  assert.equal(md.highestSequenceId, 8);
  assert.equal(md.numMessagesInBatch, 2);
  assert.equal(md.compression, 1);
  assert.throws(() => decodeBatchPayload(encodeBatchPayload(items).subarray(0, 10), 2), /truncated/);
});

test("Kafka codec framings: xxHash32 vectors, LZ4 frames and xerial snappy round-trip", async () => {
  const { xxh32, lz4FrameDecode, lz4FrameEncode, snappyDecode, snappyEncode } =
    await import("../../src/kafka/codecs");
  assert.equal(xxh32(Buffer.from("")), 0x02cc5d05);
  assert.equal(xxh32(Buffer.from("a")), 0x550d7456);
  assert.equal(xxh32(Buffer.from("Nobody inspects the spammish repetition")), 0xe2293b2f);
  const data = Buffer.from(
    JSON.stringify(Array.from({ length: 20_000 }, (_, i) => ({ i, s: `x${i % 10}` }))),
  );
  assert.deepEqual(lz4FrameDecode(lz4FrameEncode(data)), data);
  assert.deepEqual(lz4FrameDecode(lz4FrameEncode(Buffer.alloc(0))), Buffer.alloc(0));
  assert.deepEqual(snappyDecode(snappyEncode(data)), data);
  assert.throws(() => lz4FrameDecode(Buffer.from("not a frame")), /not an LZ4 frame/);
});
