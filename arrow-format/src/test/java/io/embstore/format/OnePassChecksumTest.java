package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The readers that check a shard's CRC-32C from the bytes as they read them, in one pass
 * ({@link Table#readShardFully}, {@link Table#readRepartitioned}, {@link Resharder}), detect a flipped
 * bit anywhere in the file (magic, schema, record batches, footer) and report the checksum
 * mismatch, even when Arrow or the id check stumbles first; an intact file reads the same as a
 * two-pass read.
 */
class OnePassChecksumTest {
  @TempDir Path tmp;
  BufferAllocator allocator;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close();
  }

  @Test
  void aFlippedBitAnywhereIsReportedAsAChecksumMismatch() throws Exception {
    long rows = 70_000; // two record batches per shard at C=32
    int dim = 32;
    float[] m = TestMatrices.random(rows, dim, 11);
    SplittableRandom random = new SplittableRandom(5);
    for (int trial = 0; trial < 40; trial++) {
      Path dir = tmp.resolve("t" + trial);
      TableManifest manifest = TestMatrices.write(dir, m, rows, dim, 2, "modulo", allocator);
      Path shard = dir.resolve(manifest.shard(1).file());
      byte[] bytes = Files.readAllBytes(shard);
      // Every fifth flip in the first or last 600 bytes (magic, schema, footer), the others anywhere.
      int at = trial % 5 == 0
          ? (random.nextBoolean() ? random.nextInt(600) : bytes.length - 1 - random.nextInt(600))
          : random.nextInt(bytes.length);
      bytes[at] ^= (byte) (1 << random.nextInt(8));
      Files.write(shard, bytes);
      Table t = Table.open(dir);
      long shardRows = manifest.partitioner().shardRows(1);
      String expected = "Cannot open " + shard + ": checksum mismatch (manifest crc32c:" + Checksums.hex(manifest.shard(1).crc32c());
      try (ArrowBuf emb = allocator.buffer(shardRows * dim * 4)) {
        assertThatThrownBy(() -> t.readShardFully(1, allocator, emb)).as("flip at byte %d of %d", at, bytes.length)
            .isInstanceOf(TableFormatException.class).hasMessageStartingWith(expected);
      }
      Partitioner three = Partitioner.modulo(rows, 3);
      ArrowBuf[][] into = new ArrowBuf[3][];
      try (ArrowBuf emb = allocator.buffer(three.shardRows(0) * dim * 4)) {
        into[0] = new ArrowBuf[] {emb};
        assertThatThrownBy(() -> t.readRepartitioned(three, into, allocator)).as("flip at byte %d", at)
            .isInstanceOf(TableFormatException.class).hasMessageStartingWith(expected);
      }
      if (trial % 8 == 0) {
        Path out = tmp.resolve("out" + trial);
        assertThatThrownBy(() -> Resharder.run(new Resharder.Options(TableLocation.of(dir), TableLocation.of(out), 3, null, null), allocator))
            .isInstanceOf(TableFormatException.class).hasMessageStartingWith(expected);
        assertThat(out).doesNotExist();
      }
    }
  }

  @Test
  void anIntactShardReadsTheSameInOnePass() throws Exception {
    long rows = 70_000;
    int dim = 32;
    float[] m = TestMatrices.random(rows, dim, 12);
    Path dir = tmp.resolve("t");
    TableManifest manifest = TestMatrices.write(dir, m, rows, dim, 3, "modulo", allocator);
    Table t = Table.open(dir);
    for (int s = 0; s < 3; s++) {
      long n = manifest.partitioner().shardRows(s);
      try (ArrowBuf onePass = allocator.buffer(n * dim * 4); ArrowBuf twoPass = allocator.buffer(n * dim * 4);
          ShardReader r = t.openShard(s, allocator, true)) {
        t.readShardFully(s, allocator, onePass);
        r.readFully(twoPass);
        for (long i = 0; i < n * dim; i++) {
          assertThat(onePass.getInt(i * 4)).isEqualTo(twoPass.getInt(i * 4));
        }
        assertThat(onePass.getFloat(0)).isEqualTo(m[s * dim]);
      }
    }
  }
}
