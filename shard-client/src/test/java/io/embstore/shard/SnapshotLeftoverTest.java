package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Table;
import io.embstore.format.TableFormat;
import io.embstore.format.TableManifest;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A snapshot killed before its commit (e.g. a training driver killed mid-checkpoint) leaves shard
 * files of the next version behind; the next snapshot of that version must replace them, while a
 * version that is already committed is never overwritten; a server given a snapshot root writes
 * below it only.
 */
class SnapshotLeftoverTest {
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
  void snapshotReplacesFilesLeftByAnUncommittedSnapshotOfTheSameVersion() throws Exception {
    Path dir = tmp.resolve("t");
    try (ShardFixture f = new ShardFixture(dir, 100, 4, 2, "modulo", allocator)) {
      f.start(allocator, 0, 1);
      Path leftover = dir.resolve(TableFormat.shardFileName(0, 2));
      Files.write(leftover, new byte[] {1, 2, 3});
      try (EmbeddingClient client =
          EmbeddingClient.builder().table(dir).endpoints(f.endpoints()).allocator(allocator).build()) {
        TableManifest snap = TableSnapshot.write(client, dir);
        assertThat(snap.tableVersion()).isEqualTo(2);
      }
      Table table = Table.open(dir);
      assertThat(table.manifest().tableVersion()).isEqualTo(2);
      assertThat(table.verify(allocator)).hasSize(3);
      float[] row = new float[4];
      table.readRow(42, row, allocator);
      assertThat(row).isEqualTo(f.row(42));
    }
  }

  @Test
  void writeShardsRefusesToOverwriteACommittedVersion() throws Exception {
    Path dir2 = tmp.resolve("t2");
    try (ShardFixture f = new ShardFixture(dir2, 100, 4, 2, "modulo", allocator)) {
      ShardServer server = f.start(allocator, 0, 1);
      byte[] before = Files.readAllBytes(dir2.resolve(TableFormat.shardFileName(0, 1)));
      assertThatThrownBy(() -> server.writeShards(dir2, 1))
          .isInstanceOf(FileAlreadyExistsException.class)
          .hasMessageContaining("version 1 is already committed");
      assertThat(Files.readAllBytes(dir2.resolve(TableFormat.shardFileName(0, 1)))).isEqualTo(before);
      assertThat(Table.open(dir2).verify(allocator)).hasSize(3);
    }
  }
}
