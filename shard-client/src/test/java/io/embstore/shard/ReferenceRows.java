package io.embstore.shard;

import io.embstore.format.Partitioner;
import io.embstore.format.ShardReader;
import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;

/**
 * What a shard server must hold after a known series of updates: every row of a table with its
 * optimizer state, updated here by the same {@link Optimizer} code in the order given, for
 * bit-for-bit comparison with a table the servers wrote ({@link #diff}). Updates must have distinct
 * ids (then the server applies each gradient as sent).
 */
public final class ReferenceRows implements AutoCloseable {
  private final long rows;
  private final int dim;
  private final Optimizer optimizer;
  private final List<TableManifest.StateColumn> columns;
  private final ArrowBuf emb;
  private final ArrowBuf[] state;
  private final ArrowBuf grad;

  public ReferenceRows(BufferAllocator allocator, float[] matrix, long rows, int dim, Optimizer optimizer) {
    this.rows = rows;
    this.dim = dim;
    this.optimizer = optimizer;
    this.columns = optimizer.stateColumns(dim);
    this.emb = allocator.buffer(rows * dim * 4L);
    for (int i = 0; i < matrix.length; i++) {
      emb.setFloat(4L * i, matrix[i]);
    }
    this.state = new ArrowBuf[columns.size()];
    for (int k = 0; k < state.length; k++) {
      state[k] = allocator.buffer(rows * columns.get(k).width() * 4L);
      state[k].setZero(0, state[k].capacity());
    }
    this.grad = allocator.buffer(dim * 4L);
  }

  /** The learning rate a server applies for {@code lr} sent by the Java client (JSON text of the float, read as a double). */
  public static float wireRate(float lr) {
    return (float) Double.parseDouble(Float.toString(lr));
  }

  /** Applies gradient rows {@code grads[i * dim ..]} to the distinct {@code ids} with rate {@code lr} (as the server applies it). */
  public void apply(long[] ids, float[] grads, float lr) {
    long[] at = new long[state.length];
    for (int i = 0; i < ids.length; i++) {
      for (int c = 0; c < dim; c++) {
        grad.setFloat(4L * c, grads[i * dim + c]);
      }
      for (int k = 0; k < state.length; k++) {
        at[k] = state[k].memoryAddress() + ids[i] * columns.get(k).width() * 4L;
      }
      optimizer.apply(emb.memoryAddress() + ids[i] * dim * 4L, grad.memoryAddress(), at, dim, lr);
    }
  }

  /** Whether row {@code id} and its state equal those of the table's shard buffers at {@code position}. */
  private boolean same(long id, long position, ArrowBuf[] shard) {
    long rowBytes = dim * 4L;
    if (!sameBytes(emb.memoryAddress() + id * rowBytes, shard[0].memoryAddress() + position * rowBytes, rowBytes)) {
      return false;
    }
    for (int k = 0; k < state.length; k++) {
      long w = columns.get(k).width() * 4L;
      if (!sameBytes(state[k].memoryAddress() + id * w, shard[1 + k].memoryAddress() + position * w, w)) {
        return false;
      }
    }
    return true;
  }

  private static boolean sameBytes(long a, long b, long n) {
    for (long i = 0; i < n; i += 4) {
      if (MemoryUtil.getInt(a + i) != MemoryUtil.getInt(b + i)) {
        return false;
      }
    }
    return true;
  }

  /** The table's committed rows and state, shard by shard, as read buffers (embeddings, then state columns). */
  public static final class Snapshot implements AutoCloseable {
    final Partitioner partitioner;
    final ArrowBuf[][] shards;

    public Snapshot(Path dir, BufferAllocator allocator) throws IOException {
      Table t = Table.open(dir);
      TableManifest m = t.manifest();
      this.partitioner = m.partitioner();
      this.shards = new ArrowBuf[m.numShards()][];
      for (int s = 0; s < shards.length; s++) {
        long n = partitioner.shardRows(s);
        ArrowBuf[] bufs = new ArrowBuf[1 + m.stateColumns().size()];
        bufs[0] = allocator.buffer(Math.max(1, n * m.dim() * 4L));
        for (int k = 0; k < m.stateColumns().size(); k++) {
          bufs[1 + k] = allocator.buffer(Math.max(1, n * m.stateColumns().get(k).width() * 4L));
        }
        shards[s] = bufs;
        try (ShardReader r = t.openShard(s, allocator, true)) {
          ArrowBuf[] st = new ArrowBuf[bufs.length - 1];
          System.arraycopy(bufs, 1, st, 0, st.length);
          r.readFully(bufs[0], st);
        }
      }
    }

    @Override
    public void close() {
      for (ArrowBuf[] s : shards) {
        if (s != null) {
          for (ArrowBuf b : s) {
            b.close();
          }
        }
      }
    }
  }

  /** Whether every one of {@code ids} (rows and state) equals the snapshot's. */
  public boolean matches(Snapshot table, long[] ids) {
    for (long id : ids) {
      if (!same(id, table.partitioner.positionOf(id), table.shards[table.partitioner.shardOf(id)])) {
        return false;
      }
    }
    return true;
  }

  /** The ids (at most 10) whose row or state differs from the snapshot's; empty when every row is equal bit for bit. */
  public List<Long> diff(Snapshot table) {
    List<Long> bad = new ArrayList<>();
    for (long id = 0; id < rows && bad.size() < 10; id++) {
      if (!same(id, table.partitioner.positionOf(id), table.shards[table.partitioner.shardOf(id)])) {
        bad.add(id);
      }
    }
    return bad;
  }

  @Override
  public void close() {
    emb.close();
    for (ArrowBuf b : state) {
      b.close();
    }
    grad.close();
  }
}
