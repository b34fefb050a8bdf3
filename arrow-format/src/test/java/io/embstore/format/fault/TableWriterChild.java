package io.embstore.format.fault;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import io.embstore.format.TableLocation;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * Child process of {@link TableWriteCrashTest}: writes one table version and is killed at a random
 * moment. Arguments ({@code DIR} a path or a URI: any storage): {@code next DIR} writes version N+1 of the table in DIR (every shard rewritten
 * with {@link #matrix} of that version); {@code create DIR ROWS DIM SHARDS PARTITIONER} writes a new
 * table (version 1). Prints {@code WRITING} when the first byte is about to be written, {@code P k}
 * after the k-th chunk of rows, {@code COMMITTING} before the commit (shard footers, fsync, manifest
 * rename, clean-up) and {@code COMMITTED <version>} after it.
 */
public final class TableWriterChild {
  /** Rows appended per call: small enough that a kill lands between many appends. */
  static final int CHUNK_ROWS = 2048;

  private TableWriterChild() {}

  /** The rows of table version {@code version}: seeded, so parent and child agree. */
  public static float[] matrix(long rows, int dim, long version) {
    return io.embstore.format.TestMatrices.random(rows, dim, 1000 + version);
  }

  public static void main(String[] args) throws Exception {
    TableLocation dir = TableLocation.of(args[1]);
    try (BufferAllocator allocator = new RootAllocator()) {
      TableWriter writer;
      long rows;
      int dim;
      if ("next".equals(args[0])) {
        TableManifest base = Table.open(dir).manifest();
        rows = base.rows();
        dim = base.dim();
        writer = TableWriter.nextVersion(dir, base, allocator);
      } else {
        rows = Long.parseLong(args[2]);
        dim = Integer.parseInt(args[3]);
        writer = TableWriter.create(dir, TableManifest.builder().rows(rows).dim(dim).partitioner(args[5]), Integer.parseInt(args[4]), allocator);
      }
      try (TableWriter w = writer) {
        w.createdBy("crash-test");
        float[] m = matrix(rows, dim, w.tableVersion());
        ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK_ROWS * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
        System.out.println("WRITING");
        System.out.flush();
        for (long id = 0; id < rows; id += CHUNK_ROWS) {
          int n = (int) Math.min(CHUNK_ROWS, rows - id);
          buf.clear();
          buf.asFloatBuffer().put(m, (int) (id * dim), n * dim);
          buf.limit(n * dim * 4);
          w.appendInIdOrder(buf, n);
          System.out.println("P " + (id / CHUNK_ROWS + 1));
        }
        System.out.println("COMMITTING");
        System.out.flush();
        TableManifest m2 = w.commit();
        System.out.println("COMMITTED " + m2.tableVersion());
        System.out.flush();
      }
    }
  }
}
