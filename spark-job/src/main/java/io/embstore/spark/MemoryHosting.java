package io.embstore.spark;

import io.embstore.format.Partitioner;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.UUID;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * Both matrices as heap arrays of the driver JVM: for local mode only (tasks run in the driver),
 * as the no-network baseline of the benchmark and the math check of the job. Not the product
 * path: the real job hosts shards in executors ({@link ShardHosting}). Optimizer state is not
 * checkpointed here. The matrices are registered with this JVM's {@link ExecutorHost} under the
 * hosting's key, where the tasks' openers find them, and dropped when the hosting closes.
 */
final class MemoryHosting implements Hosting {
  private final String key = UUID.randomUUID().toString();
  private final InMemoryRowStore input;
  private final InMemoryRowStore output;
  private final String partitioner;
  private final int shards;

  MemoryHosting(long rows, long contextRows, int dim, int shards, boolean adagrad, long seed, TableLocation resumeOutput,
      TableLocation resumeContext) throws IOException {
    this.input = adagrad ? InMemoryRowStore.rowwiseAdagrad(rows, dim, 1e-8f) : InMemoryRowStore.sgd(rows, dim);
    this.output = adagrad
        ? InMemoryRowStore.rowwiseAdagrad(contextRows, dim, 1e-8f) : InMemoryRowStore.sgd(contextRows, dim);
    this.partitioner = "modulo";
    this.shards = shards;
    if (resumeOutput != null) {
      load(resumeOutput, input);
      load(resumeContext, output);
    } else {
      float[] row = new float[dim];
      float[] v = input.values();
      for (long id = 0; id < rows; id++) {
        SkipGram.initInputRow(seed, id, row);
        System.arraycopy(row, 0, v, (int) id * dim, dim);
      }
    }
    ExecutorHost.addStores(key, input, output);
  }

  private static void load(TableLocation dir, InMemoryRowStore store) throws IOException {
    try (BufferAllocator a = new RootAllocator()) {
      Table t = Table.open(dir);
      float[] v = store.values();
      int dim = store.dim();
      t.forEachRowInIdOrder(a, true, (firstId, count, buf, offset) -> {
        for (int i = 0; i < count * dim; i++) {
          v[(int) (firstId * dim) + i] = buf.getFloat(offset + 4L * i);
        }
      });
    }
  }

  @Override
  public Opener opener() {
    return new MemoryOpener(key);
  }

  private record MemoryOpener(String key) implements Opener {
    @Override
    public RowStore input() {
      return store(key, 0);
    }

    @Override
    public RowStore output() {
      return store(key, 1);
    }
  }

  private static RowStore store(String key, int which) {
    RowStore store = ExecutorHost.store(key, which);
    // Closing a task's view must not free the shared matrix.
    return new RowStore() {
      @Override
      public int dim() {
        return store.dim();
      }

      @Override
      public void pull(long[] ids, int n, float[] out) throws IOException {
        store.pull(ids, n, out);
      }

      @Override
      public void push(long[] ids, int n, float[] grads, float lr) throws IOException {
        store.push(ids, n, grads, lr);
      }
    };
  }

  @Override
  public TableManifest checkpoint(TableLocation out, TableLocation context, VocabularyWriter vocabulary, Map<String, String> properties)
      throws IOException {
    if (!out.hasManifest()) {
      // First checkpoint: the table directory must be created empty, before _context goes in it.
      TableManifest m = write(out, input, vocabulary, properties);
      write(context, output, null, properties);
      return m;
    }
    write(context, output, null, properties);
    return write(out, input, vocabulary, properties);
  }

  private TableManifest write(TableLocation dir, InMemoryRowStore store, VocabularyWriter vocabulary, Map<String, String> properties)
      throws IOException {
    int dim = store.dim();
    long rows = store.values().length / dim;
    try (BufferAllocator a = new RootAllocator()) {
      boolean exists = dir.hasManifest();
      // A checkpoint resumed onto another shard count writes every shard in the new partitioning.
      TableWriter w = exists
          ? TableWriter.nextVersion(dir, Table.open(dir).manifest().withPartitioning(Partitioner.of(partitioner, rows, shards)), a)
          : TableWriter.create(dir, TableManifest.builder().rows(rows).dim(dim).partitioner(partitioner), shards, a);
      try (w) {
        w.createdBy("embstore train");
        properties.forEach(w::property);
        if (vocabulary != null && !exists) {
          w.vocabularyFiles(vocabulary.write(dir, w.tableVersion()));
        }
        ByteBuffer buf = ByteBuffer.allocate(4 * dim * 4096).order(ByteOrder.LITTLE_ENDIAN);
        float[] v = store.values();
        for (long id = 0; id < rows; id += 4096) {
          int n = (int) Math.min(4096, rows - id);
          buf.clear();
          buf.asFloatBuffer().put(v, (int) id * dim, n * dim);
          buf.limit(n * dim * 4);
          w.appendInIdOrder(buf, n);
        }
        return w.commit();
      }
    }
  }

  @Override
  public void close() {
    ExecutorHost.release(key);
  }
}
