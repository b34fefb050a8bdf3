package io.embstore.format.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Matrices;
import io.embstore.format.Partitioner;
import io.embstore.format.Resharder;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.format.TestMatrices;
import io.embstore.format.Vocabulary;
import io.embstore.format.convert.ExportFormat;
import io.embstore.format.convert.Exporter;
import io.embstore.format.convert.ImportFormat;
import io.embstore.format.convert.Importer;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The table tests every storage must pass, through the Java API the commands run (Importer,
 * Table, Exporter, Resharder): import, verify, a row by token, export, reshard (every row and optimizer state value compared bit for bit, the
 * vocabulary carried over), the next version's commit and its clean-up, a failed import that
 * leaves nothing, and a second writer of the same version refused. Subclasses give the storage:
 * the local disk, HDFS (MiniDFSCluster), S3 (S3Mock through S3A).
 */
abstract class TableStorageContract {
  @TempDir Path tmp;
  BufferAllocator allocator;

  /** A table URI on the storage under test, unique per call with a new name. */
  abstract String table(String name);

  @BeforeEach
  void openAllocator() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void closeAllocator() {
    allocator.close();
  }

  /** What {@code embstore import --from npy} does: the npy file into a new table at {@code uri}. */
  TableManifest importNpy(Path npy, Path vocab, int shards, String uri) throws IOException {
    return Importer.run(new Importer.Options(ImportFormat.NPY, npy, vocab, shards, "modulo", TableLocation.of(uri), false,
        new PrintWriter(Writer.nullWriter())), allocator);
  }

  /** What {@code embstore reshard} does. */
  TableManifest reshard(String in, int shards, String partitioner, String out) throws IOException {
    return Resharder.run(new Resharder.Options(TableLocation.of(in), TableLocation.of(out), shards, partitioner,
        new PrintWriter(Writer.nullWriter())), allocator);
  }

  /** The messages of {@code e} and its causes, joined by ": " (what a command's error line says). */
  static String messages(Throwable e) {
    StringBuilder sb = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      sb.append(sb.length() > 0 ? ": " : "").append(t.getMessage());
    }
    return sb.toString();
  }

  @Test
  void importVerifyReadAndExportATable() throws IOException {
    int rows = 5000;
    int dim = 24;
    float[] m = TestMatrices.random(rows, dim, 41);
    Path npy = Matrices.npy(tmp.resolve("m.npy"), m, rows, dim);
    Path vocab = tmp.resolve("vocab.txt");
    List<String> tokens = new ArrayList<>();
    for (int i = 0; i < rows; i++) {
      tokens.add("w" + i);
    }
    Files.write(vocab, tokens, StandardCharsets.UTF_8);
    String uri = table("imported");
    importNpy(npy, vocab, 3, uri);

    Table t = Table.open(uri);
    assertThat(String.join("\n", t.verify(allocator))).contains("shard-00002-v000001.arrow: ok (1666 rows")
        .contains("vocab-v000001.arrow: ok (5000 tokens)");
    assertThat(t.manifest().rows()).isEqualTo(5000);
    assertThat(t.manifest().dim()).isEqualTo(24);
    float[] row = new float[dim];
    t.readRow(t.vocabulary(allocator).requireId("w4321"), row, allocator);
    assertThat(row[5]).isEqualTo(m[4321 * dim + 5]);

    Path back = tmp.resolve("back.npy");
    Exporter.run(ExportFormat.NPY, TableLocation.of(uri), back, null, allocator);
    assertThat(Files.readAllBytes(back)).isEqualTo(Files.readAllBytes(npy));
  }

  @Test
  void reshardKeepsEveryRowStateValueAndTheVocabulary() throws IOException {
    long rows = 20_011;
    int dim = 16;
    String in = table("reshard-in");
    TableManifest.Optimizer adagrad = new TableManifest.Optimizer(
        "rowwise-adagrad", Map.of("lr", 0.05), List.of(new TableManifest.StateColumn("acc", 1)), 777);
    float[] emb = TestMatrices.random(rows, dim, 7);
    float[] acc = TestMatrices.random(rows, 1, 8);
    Vocabulary vocab = vocabulary(rows);
    writeWithState(TableLocation.of(in), rows, dim, 4, "modulo", adagrad, emb, acc, vocab);

    String out = table("reshard-out");
    TableManifest m = reshard(in, 7, "range", out);
    assertThat(m.rows()).isEqualTo(20_011);
    assertThat(m.dim()).isEqualTo(16);
    Table t = Table.open(out);
    assertThat(m.numShards()).isEqualTo(7);
    assertThat(m.partitioner()).isEqualTo(Partitioner.range(rows, 7));
    assertThat(m.optimizer()).isEqualTo(adagrad);
    assertThat(m.properties()).containsEntry("origin", "test").containsKey("reshard.source");
    assertThat(t.verify(allocator)).hasSize(7 + 2);
    assertThat(t.vocabulary(allocator)).isEqualTo(vocab);
    assertRows(t, emb, acc, dim);

    // And back to modulo with another P, from the resharded table: still every bit.
    String again = table("reshard-again");
    reshard(out, 3, null, again);
    Table t2 = Table.open(again);
    assertThat(t2.manifest().partitioner()).isEqualTo(Partitioner.range(rows, 3));
    assertRows(t2, emb, acc, dim);
  }

  @Test
  void shardServersCanReadTheirRowsOfAnotherPartitioning() throws IOException {
    long rows = 3001;
    int dim = 8;
    String uri = table("repartitioned");
    float[] emb = TestMatrices.random(rows, dim, 17);
    float[] acc = TestMatrices.random(rows, 1, 18);
    TableManifest.Optimizer adagrad = new TableManifest.Optimizer(
        "rowwise-adagrad", Map.of("lr", 0.05), List.of(new TableManifest.StateColumn("acc", 1)), 5);
    writeWithState(TableLocation.of(uri), rows, dim, 3, "modulo", adagrad, emb, acc, null);
    Table t = Table.open(uri);
    Partitioner target = Partitioner.modulo(rows, 5);
    ArrowBuf[][] into = new ArrowBuf[5][];
    List<ArrowBuf> all = new ArrayList<>();
    try {
      for (int s : new int[] {1, 4}) {
        into[s] = new ArrowBuf[] {allocator.buffer(target.shardRows(s) * dim * 4), allocator.buffer(target.shardRows(s) * 4)};
        all.addAll(List.of(into[s]));
      }
      t.readRepartitioned(target, into, allocator);
      for (int s : new int[] {1, 4}) {
        for (long pos = 0; pos < target.shardRows(s); pos++) {
          long id = target.idAt(s, pos);
          for (int c = 0; c < dim; c++) {
            assertThat(Float.floatToRawIntBits(into[s][0].getFloat((pos * dim + c) * 4)))
                .as("shard %d id %d column %d", s, id, c).isEqualTo(Float.floatToRawIntBits(emb[(int) (id * dim + c)]));
          }
          assertThat(into[s][1].getFloat(pos * 4)).isEqualTo(acc[(int) id]);
        }
      }
    } finally {
      all.forEach(ArrowBuf::close);
    }
  }

  @Test
  void nextVersionCommitsAndDeletesTheOldFiles() throws IOException {
    long rows = 1000;
    int dim = 4;
    TableLocation loc = TableLocation.of(table("versions"));
    TestMatrices.write(loc, TestMatrices.random(rows, dim, 1), rows, dim, 2, "modulo", allocator);
    float[] v2 = TestMatrices.random(rows, dim, 2);
    TableManifest base = Table.open(loc).manifest();
    try (TableWriter w = TableWriter.nextVersion(loc, base, allocator)) {
      append(w, v2, rows, dim);
      w.commit();
    }
    Table t = Table.open(loc);
    assertThat(t.manifest().tableVersion()).isEqualTo(2);
    assertThat(new HashSet<>(loc.list())).containsExactlyInAnyOrder("manifest.json", "shard-00000-v000002.arrow", "shard-00001-v000002.arrow");
    assertRows(t, v2, null, dim);

    // A second writer of version 2 (from the same, now stale, base) is refused at commit; the table
    // keeps the first writer's version and nothing of the second.
    try (TableWriter late = TableWriter.nextVersion(loc, base, allocator)) {
      assertThatThrownBy(() -> late.shard(0))
          .isInstanceOf(FileAlreadyExistsException.class)
          .hasMessageContaining("Cannot write table version 2 of " + loc + ": version 2 is already committed");
    }
    TableManifest stale = base.toBuilder().tableVersion(2).build();
    assertThatThrownBy(() -> TableWriter.commit(loc, stale))
        .isInstanceOf(FileAlreadyExistsException.class)
        .hasMessageContaining("Cannot commit table version 2 of " + loc + ": version 2 is already committed");
    assertThat(Table.open(loc).manifest()).isEqualTo(t.manifest());
    assertThat(new HashSet<>(loc.list())).containsExactlyInAnyOrder("manifest.json", "shard-00000-v000002.arrow", "shard-00001-v000002.arrow");
  }

  @Test
  void failedImportLeavesNothingAndAnExistingTableIsNotOverwritten() throws IOException {
    int rows = 64;
    int dim = 4;
    byte[] data = Matrices.le(TestMatrices.random(rows, dim, 3));
    Path truncated = Matrices.npy(tmp.resolve("short.npy"), Matrices.dict("<f4", false, "(" + rows + ", " + dim + ")"),
        java.util.Arrays.copyOf(data, data.length - 12));
    String uri = table("failed");
    assertThatThrownBy(() -> importNpy(truncated, null, 2, uri))
        .satisfies(e -> assertThat(messages(e)).startsWith("Cannot import ").contains("truncated"));
    assertThat(TableLocation.of(uri).exists()).as("%s after a failed import", uri).isFalse();

    Path good = Matrices.npy(tmp.resolve("good.npy"), TestMatrices.random(rows, dim, 3), rows, dim);
    importNpy(good, null, 2, uri);
    assertThatThrownBy(() -> importNpy(good, null, 3, uri))
        .satisfies(e -> assertThat(messages(e)).isEqualTo("Cannot import into " + uri + ": it already exists (choose a new directory or remove it)"));
    assertThat(Table.open(uri).manifest().numShards()).isEqualTo(2);
  }

  static Vocabulary vocabulary(long rows) {
    List<String> tokens = new ArrayList<>();
    long[] counts = new long[(int) rows];
    for (int i = 0; i < rows; i++) {
      tokens.add("token-" + i);
      counts[i] = rows - i;
    }
    return Vocabulary.of(tokens, counts);
  }

  /** A table whose shards carry one optimizer state column ({@code acc}, width 1). */
  void writeWithState(TableLocation loc, long rows, int dim, int shards, String partitioner, TableManifest.Optimizer opt,
      float[] emb, float[] acc, Vocabulary vocab) throws IOException {
    TableManifest.Builder spec = TableManifest.builder().rows(rows).dim(dim).partitioner(partitioner).optimizer(opt)
        .property("origin", "test");
    Partitioner p = Partitioner.of(partitioner, rows, shards);
    try (TableWriter w = TableWriter.create(loc, spec, shards, allocator)) {
      w.vocabulary(vocab);
      for (int s = 0; s < shards; s++) {
        long n = p.shardRows(s);
        try (ArrowBuf e = allocator.buffer(n * dim * 4); ArrowBuf a = allocator.buffer(n * 4)) {
          for (long pos = 0; pos < n; pos++) {
            long id = p.idAt(s, pos);
            for (int c = 0; c < dim; c++) {
              e.setFloat((pos * dim + c) * 4, emb[(int) (id * dim + c)]);
            }
            a.setFloat(pos * 4, acc[(int) id]);
          }
          w.shard(s).append(e, 0, (int) n, a);
        }
      }
      w.commit();
    }
  }

  static void append(TableWriter w, float[] m, long rows, int dim) throws IOException {
    ByteBuffer buf = ByteBuffer.allocateDirect(m.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    buf.asFloatBuffer().put(m);
    w.appendInIdOrder(buf, (int) rows);
  }

  /** Every embedding (and state value, when given) of {@code t} equals the expected bits. */
  void assertRows(Table t, float[] emb, float[] acc, int dim) throws IOException {
    Partitioner p = t.manifest().partitioner();
    Set<Long> seen = new HashSet<>();
    for (int s = 0; s < p.numShards(); s++) {
      try (var r = t.openShard(s, allocator, true)) {
        while (r.loadNextBatch()) {
          for (int i = 0; i < r.batchRows(); i++) {
            long id = p.idAt(s, r.batchStart() + i);
            seen.add(id);
            for (int c = 0; c < dim; c++) {
              int got = Float.floatToRawIntBits(r.embeddings().getFloat(((long) i * dim + c) * 4));
              if (got != Float.floatToRawIntBits(emb[(int) (id * dim + c)])) {
                throw new AssertionError("id " + id + " column " + c + ": " + Float.intBitsToFloat(got) + ", expected " + emb[(int) (id * dim + c)]);
              }
            }
            if (acc != null && Float.floatToRawIntBits(r.state(0).getFloat(i * 4L)) != Float.floatToRawIntBits(acc[(int) id])) {
              throw new AssertionError("id " + id + " state " + r.state(0).getFloat(i * 4L) + ", expected " + acc[(int) id]);
            }
          }
        }
      }
    }
    assertThat(seen).hasSize((int) p.numRows());
  }
}
