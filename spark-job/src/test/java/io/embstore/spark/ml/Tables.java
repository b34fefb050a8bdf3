package io.embstore.spark.ml;

import io.embstore.format.TableWriter;
import io.embstore.format.TestMatrices;
import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/** Test tables: a seeded random matrix with tokens {@code t0..t(V-1)}, and the bits of every row as read back from the files. */
final class Tables {
  private Tables() {}

  /** Writes a V x C table of seeded values with vocabulary t0.. in {@code dir}; returns the raw bits of the table files' rows. */
  static int[] write(Path dir, int rows, int dim, int shards, long seed, String tokenizer, Vocabulary vocabulary) throws IOException {
    float[] m = TestMatrices.random(rows, dim, seed);
    try (BufferAllocator allocator = new RootAllocator()) {
      try (TableWriter w = TableWriter.create(dir, rows, dim, shards, "modulo", allocator)) {
        ByteBuffer buf = ByteBuffer.allocateDirect(m.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        buf.asFloatBuffer().put(m);
        w.vocabulary(vocabulary != null ? vocabulary : Vocabulary.of(tokens(rows), null)).createdBy("test").appendInIdOrder(buf, rows);
        if (tokenizer != null) {
          w.property(io.embstore.format.Tokenizer.PROPERTY, tokenizer);
        }
        w.commit();
      }
      return TestMatrices.readBits(dir, allocator);
    }
  }

  static List<String> tokens(int rows) {
    List<String> t = new ArrayList<>(rows);
    for (int i = 0; i < rows; i++) {
      t.add("t" + i);
    }
    return t;
  }
}
