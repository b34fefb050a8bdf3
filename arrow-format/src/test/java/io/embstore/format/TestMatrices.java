package io.embstore.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.apache.arrow.memory.BufferAllocator;

/** Test helpers: seeded random matrices and tables written from them. */
public final class TestMatrices {
  private TestMatrices() {}

  /** A rows x dim row-major matrix of seeded values in [-1, 1). */
  public static float[] random(long rows, int dim, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    float[] m = new float[Math.toIntExact(rows * dim)];
    for (int i = 0; i < m.length; i++) {
      m[i] = (float) (r.nextDouble() * 2 - 1);
    }
    return m;
  }

  /** Writes {@code matrix} as a new table in {@code dir} and returns its manifest. */
  public static TableManifest write(
      Path dir, float[] matrix, long rows, int dim, int shards, String partitioner, BufferAllocator allocator)
      throws IOException {
    return write(TableLocation.of(dir), matrix, rows, dim, shards, partitioner, allocator);
  }

  /** Writes {@code matrix} as a new table at {@code dir} (any storage) and returns its manifest. */
  public static TableManifest write(
      TableLocation dir, float[] matrix, long rows, int dim, int shards, String partitioner, BufferAllocator allocator)
      throws IOException {
    return write(dir, matrix, rows, dim, shards, partitioner, ValueType.FLOAT32, allocator);
  }

  /** Writes {@code matrix} (float32, narrowed to {@code type}) as a new table at {@code dir} and returns its manifest. */
  public static TableManifest write(
      TableLocation dir, float[] matrix, long rows, int dim, int shards, String partitioner, ValueType type, BufferAllocator allocator)
      throws IOException {
    try (TableWriter w = TableWriter.create(dir, TableManifest.builder().rows(rows).dim(dim).partitioner(partitioner).valueType(type), shards, allocator)) {
      w.createdBy("test");
      ByteBuffer buf = ByteBuffer.allocateDirect(matrix.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      buf.asFloatBuffer().put(matrix);
      w.appendInIdOrder(buf, (int) rows);
      return w.commit();
    }
  }

  /** Every row of the table in {@code dir}, in id order, as the raw bits of its float32 values (checksums verified). */
  public static int[] readBits(Path dir, BufferAllocator allocator) throws IOException {
    Table t = Table.open(dir);
    int dim = t.manifest().dim();
    int[] bits = new int[Math.toIntExact(t.manifest().rows() * dim)];
    t.forEachRowInIdOrder(allocator, true, (firstId, n, buf, offset) -> {
      for (int i = 0; i < n * dim; i++) {
        bits[Math.toIntExact(firstId * dim) + i] = buf.getInt(offset + 4L * i);
      }
    });
    return bits;
  }

  /** The raw bits of {@code values}. */
  public static int[] bits(float[] values) {
    int[] out = new int[values.length];
    for (int i = 0; i < values.length; i++) {
      out[i] = Float.floatToRawIntBits(values[i]);
    }
    return out;
  }
}
