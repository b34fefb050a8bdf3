package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A vocabulary written in pieces (format version 2): pieces written by separate writers, committed
 * by one manifest, read back whole and file by file, verified without holding the tokens; version-1
 * manifests (one vocabulary file) keep reading; versions outside 1..2 are refused.
 */
class VocabularyPiecesTest {
  static final int ROWS = 150_000;
  static final int DIM = 2;
  @TempDir Path tmp;
  BufferAllocator allocator;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close(); // throws on a leak
  }

  static String token(long id) {
    return "t" + id + (id % 5 == 0 ? "é" : "");
  }

  /** A table of ROWS x DIM whose vocabulary is written as pieces of the given sizes (piece i holds the i-th range). */
  Path tableWithPieces(Path dir, int[] sizes, String duplicateAtLastId) throws IOException {
    float[] rows = TestMatrices.random(ROWS, DIM, 5);
    try (TableWriter w = TableWriter.create(dir, ROWS, DIM, 3, "modulo", allocator)) {
      java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(rows.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      buf.asFloatBuffer().put(rows);
      w.appendInIdOrder(buf, ROWS);
      List<TableManifest.FileEntry> pieces = new ArrayList<>();
      long first = 0;
      // Written out of order, as parallel tasks finish: the manifest lists them by id.
      TableManifest.FileEntry[] byPiece = new TableManifest.FileEntry[sizes.length];
      long[] firsts = new long[sizes.length];
      for (int i = 0; i < sizes.length; i++) {
        firsts[i] = first;
        first += sizes[i];
      }
      for (int i = sizes.length - 1; i >= 0; i--) {
        try (Vocabulary.TokenWriter v = Vocabulary.pieceWriter(dir, i * 10, w.tableVersion(), firsts[i], allocator)) {
          for (long id = firsts[i]; id < firsts[i] + sizes[i]; id++) {
            boolean last = id == ROWS - 1;
            v.add(last && duplicateAtLastId != null ? duplicateAtLastId : token(id), ROWS - id);
          }
          byPiece[i] = v.finish();
        }
      }
      pieces.addAll(List.of(byPiece));
      w.vocabularyFiles(pieces);
      w.commit();
    }
    return dir;
  }

  @Test
  void piecesCommitAsOneVocabularyReadWholeAndFileByFile() throws Exception {
    Path dir = tableWithPieces(tmp.resolve("t"), new int[] {70_000, 1, 79_999}, null);
    Table t = Table.open(dir);
    TableManifest m = t.manifest();
    assertThat(m.formatVersion()).isEqualTo(2);
    assertThat(m.vocabularyFiles()).extracting(TableManifest.FileEntry::file)
        .containsExactly("vocab-00000-v000001.arrow", "vocab-00010-v000001.arrow", "vocab-00020-v000001.arrow");
    assertThat(m.vocabularyFirstId(2)).isEqualTo(70_001);
    String json = new String(m.toJson(), StandardCharsets.UTF_8);
    assertThat(json).contains("\"firstId\" : 70001");

    Vocabulary v = t.vocabulary(allocator);
    assertThat(v.size()).isEqualTo(ROWS);
    assertThat(v.token(70_000)).isEqualTo(token(70_000));
    assertThat(v.id(token(149_999))).isEqualTo(149_999);
    assertThat(v.count(3)).isEqualTo(ROWS - 3);

    long[] seen = {0};
    t.forEachVocabularyToken(2, allocator, (id, token, count) -> {
      assertThat(id).isEqualTo(70_001 + seen[0]);
      assertThat(token).isEqualTo(token(id));
      assertThat(count).isEqualTo(ROWS - id);
      seen[0]++;
    });
    assertThat(seen[0]).isEqualTo(79_999);

    assertThat(t.verify(allocator)).hasSize(1 + 3 + 3).contains(
        "vocab-00000-v000001.arrow: ok (70000 tokens, ids 0..69999)",
        "vocab-00010-v000001.arrow: ok (1 tokens, ids 70000..70000)",
        "vocab-00020-v000001.arrow: ok (79999 tokens, ids 70001..149999)");

    // The next version carries the pieces along; a version without them deletes them.
    try (TableWriter w = TableWriter.nextVersion(dir, m, allocator)) {
      w.property("k", "v");
      w.commit();
    }
    assertThat(Table.open(dir).verify(allocator)).hasSize(7);
    try (TableWriter w = TableWriter.nextVersion(dir, Table.open(dir).manifest().toBuilder().vocabularyFiles(List.of()).build(), allocator)) {
      w.commit();
    }
    assertThat(Files.exists(dir.resolve("vocab-00000-v000001.arrow"))).isFalse();
  }

  @Test
  void verifyFindsATokenRepeatedInAnotherPieceWithoutLoadingTheVocabulary() throws Exception {
    Path dir = tableWithPieces(tmp.resolve("t"), new int[] {100_000, 50_000}, token(12_345));
    Table t = Table.open(dir);
    assertThatThrownBy(() -> t.verify(allocator))
        .isInstanceOf(TableFormatException.class)
        .hasMessageContaining("vocab-00010-v000001.arrow")
        .hasMessageEndingWith("duplicate token '" + token(12_345) + "' at ids 12345 and 149999");
    assertThatThrownBy(() -> t.vocabulary(allocator))
        .isInstanceOf(TableFormatException.class)
        .hasMessageContaining("duplicate token '" + token(12_345) + "' at ids 12345 and 149999");
  }

  @Test
  void piecesThatDoNotCoverTheTableOrAreEmptyAreRefusedAndLeaveNothingBehind() throws Exception {
    Path dir = tmp.resolve("t");
    try (TableWriter w = TableWriter.create(dir, 10, 2, 1, "modulo", allocator)) {
      TableManifest.FileEntry piece;
      try (Vocabulary.TokenWriter v = Vocabulary.pieceWriter(dir, 0, w.tableVersion(), 0, allocator)) {
        for (int i = 0; i < 9; i++) {
          v.add("w" + i, 1);
        }
        piece = v.finish();
      }
      assertThatThrownBy(() -> w.vocabularyFiles(List.of(piece)))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot attach vocabulary: 1 files of 9 tokens for a table of 10 rows");
      try (Vocabulary.TokenWriter v = Vocabulary.pieceWriter(dir, 1, w.tableVersion(), 9, allocator)) {
        assertThatThrownBy(v::finish).isInstanceOf(IllegalStateException.class)
            .hasMessageEndingWith("vocab-00001-v000001.arrow: no tokens (a vocabulary file holds at least one)");
        assertThatThrownBy(() -> v.add("", 1)).isInstanceOf(IllegalArgumentException.class)
            .hasMessage("Cannot write vocabulary vocab-00001-v000001.arrow: token at id 9 is empty");
      }
      assertThat(Files.exists(dir.resolve("vocab-00001-v000001.arrow"))).as("an unfinished piece is deleted").isFalse();
    }
    // The writer never committed: the piece it was given is deleted with the rest.
    assertThat(Files.exists(dir)).isFalse();
  }

  @Test
  void aVersionOneManifestReadsAndItsNextVersionIsWrittenAsVersionTwo() throws Exception {
    Path dir = tmp.resolve("t");
    List<String> tokens = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      tokens.add("w" + i);
    }
    try (TableWriter w = TableWriter.create(dir, 6, 2, 2, "modulo", allocator)) {
      w.vocabulary(Vocabulary.of(tokens, null));
      java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(6 * 2 * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      w.appendInIdOrder(buf, 6);
      w.commit();
    }
    // The manifest as version 1 wrote it: one vocabulary object, formatVersion 1.
    TableManifest v2 = TableManifest.read(dir);
    TableManifest.FileEntry only = v2.vocabularyFiles().get(0);
    String json = new String(v2.toJson(), StandardCharsets.UTF_8);
    String head = json.substring(0, json.lastIndexOf(",\n  \"checksum\""))
        .replace("\"formatVersion\" : 2", "\"formatVersion\" : 1")
        .replaceFirst("(?s)\"vocabulary\" : \\{.*?\\} \\]\\s*\\}", "\"vocabulary\" : {\n    \"file\" : \"" + only.file()
            + "\",\n    \"rows\" : 6,\n    \"bytes\" : " + only.bytes() + ",\n    \"crc32c\" : \"" + Checksums.hex(only.crc32c()) + "\"\n  }");
    byte[] headBytes = (head + ",\n").getBytes(StandardCharsets.UTF_8);
    String v1 = head + ",\n  \"checksum\" : \"crc32c:" + Checksums.hex(Checksums.crc32c(headBytes, 0, headBytes.length)) + "\"\n}\n";
    Files.writeString(dir.resolve("manifest.json"), v1);

    Table t = Table.open(dir);
    assertThat(t.manifest().formatVersion()).isEqualTo(1);
    assertThat(t.manifest().toJson()).as("a version-1 manifest serialises as it was read").isEqualTo(v1.getBytes(StandardCharsets.UTF_8));
    assertThat(t.vocabulary(allocator).tokens()).isEqualTo(tokens);
    assertThat(t.verify(allocator)).contains("vocab-v000001.arrow: ok (6 tokens)");

    try (TableWriter w = TableWriter.nextVersion(dir, t.manifest(), allocator)) {
      w.property("upgraded", "yes");
      w.commit();
    }
    TableManifest next = TableManifest.read(dir);
    assertThat(next.formatVersion()).isEqualTo(2);
    assertThat(new String(next.toJson(), StandardCharsets.UTF_8)).contains("\"files\" : [");
    assertThat(Table.open(dir).vocabulary(allocator).tokens()).isEqualTo(tokens);

    // Version 3 is too new, with the range this reader supports.
    String v3 = new String(next.toJson(), StandardCharsets.UTF_8).replace("\"formatVersion\" : 2", "\"formatVersion\" : 3");
    String v3head = v3.substring(0, v3.lastIndexOf(",\n  \"checksum\""));
    byte[] v3HeadBytes = (v3head + ",\n").getBytes(StandardCharsets.UTF_8);
    Files.writeString(dir.resolve("manifest.json"), v3head + ",\n  \"checksum\" : \"crc32c:"
        + Checksums.hex(Checksums.crc32c(v3HeadBytes, 0, v3HeadBytes.length)) + "\"\n}\n");
    assertThatThrownBy(() -> Table.open(dir))
        .isInstanceOf(TableFormatException.TooNew.class)
        .hasMessageContaining("format version 3 is too new (this reader supports 1..2");
  }

  @Test
  void aManifestWhosePiecesDoNotLineUpIsRefused() {
    TableManifest.Builder b = TableManifest.builder().rows(10).dim(2).partitioner("modulo")
        .addShard(new TableManifest.ShardEntry(0, "shard-00000-v000001.arrow", 10, 0, 9, 1, 0))
        .vocabularyFiles(List.of(new TableManifest.FileEntry("vocab-00000-v000001.arrow", 4, 1, 0),
            new TableManifest.FileEntry("vocab-00001-v000001.arrow", 5, 1, 0)));
    assertThatThrownBy(b::build).isInstanceOf(IllegalArgumentException.class).hasMessage("vocabulary has 9 rows, the table has 10");
    String json = new String(b.vocabularyFiles(List.of(new TableManifest.FileEntry("vocab-00000-v000001.arrow", 4, 1, 0),
        new TableManifest.FileEntry("vocab-00001-v000001.arrow", 6, 1, 0))).build().toJson(), StandardCharsets.UTF_8);
    String shifted = json.replace("\"firstId\" : 4", "\"firstId\" : 5");
    String head = shifted.substring(0, shifted.lastIndexOf(",\n  \"checksum\""));
    byte[] headBytes = (head + ",\n").getBytes(StandardCharsets.UTF_8);
    byte[] bytes = (head + ",\n  \"checksum\" : \"crc32c:" + Checksums.hex(Checksums.crc32c(headBytes, 0, headBytes.length)) + "\"\n}\n")
        .getBytes(StandardCharsets.UTF_8);
    assertThatThrownBy(() -> TableManifest.parse(bytes, "m.json"))
        .isInstanceOf(TableFormatException.class)
        .hasMessage("Cannot read m.json: vocabulary file 1 has firstId 5, the files before it end at 4");
  }
}
