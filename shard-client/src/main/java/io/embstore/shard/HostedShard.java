package io.embstore.shard;

import io.embstore.format.Partitioner;
import io.embstore.format.ShardWriter;
import io.embstore.format.Table;
import io.embstore.format.TableFormat;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.apache.arrow.util.AutoCloseables;

/**
 * One shard held in memory: a contiguous off-heap buffer of rows x C float32 (row i = the id at
 * position i, see {@link Partitioner#idAt}) plus one contiguous buffer per optimizer state column,
 * all from a child allocator named after the shard. A row's position is computed by the
 * partitioner; there is no hash map.
 *
 * <p>Concurrency: lookups copy rows without locking (a reader may see a row half-way through an
 * update: Hogwild). Updates lock the row's stripe (one of {@value #STRIPES} locks, by position), so
 * two updates of one row, or an update and a snapshot copy of it, never interleave: the embedding
 * and its optimizer state move together.
 */
final class HostedShard implements AutoCloseable {
  static final int STRIPES = 1024;

  final int index;
  final Partitioner partitioner;
  final int dim;
  final long rows;
  final long rowBytes;
  final OptimizerSpec spec;
  final List<TableManifest.StateColumn> stateColumns;
  private final BufferAllocator allocator;
  private final ArrowBuf embeddings;
  private final ArrowBuf[] state;
  private final long embAddress;
  private final long[] stateAddress;
  private final ReentrantLock[] stripes = new ReentrantLock[STRIPES];

  /** Sink of {@link #touch}'s loads, so that the JIT keeps them. */
  @SuppressWarnings("unused")
  private volatile long touched;

  final LongAdder lookupRows = new LongAdder();
  final LongAdder lookupRequests = new LongAdder();
  final LongAdder updateRows = new LongAdder();
  final LongAdder updateRequests = new LongAdder();

  private HostedShard(int index, Partitioner partitioner, int dim, OptimizerSpec spec, BufferAllocator parent) {
    this.index = index;
    this.partitioner = partitioner;
    this.dim = dim;
    this.rows = partitioner.shardRows(index);
    this.rowBytes = dim * 4L;
    this.spec = spec;
    this.stateColumns = spec.stateColumns(dim);
    for (int i = 0; i < STRIPES; i++) {
      stripes[i] = new ReentrantLock();
    }
    BufferAllocator child = parent.newChildAllocator("shard-" + index, 0, Long.MAX_VALUE);
    ArrowBuf emb = null;
    ArrowBuf[] st = new ArrowBuf[stateColumns.size()];
    try {
      emb = child.buffer(rows * rowBytes);
      for (int i = 0; i < st.length; i++) {
        st[i] = child.buffer(rows * stateColumns.get(i).width() * 4L);
        st[i].setZero(0, st[i].capacity());
      }
    } catch (RuntimeException e) {
      closeAll(e, st, emb, child);
      throw e;
    }
    this.allocator = child;
    this.embeddings = emb;
    this.state = st;
    this.embAddress = emb.memoryAddress();
    this.stateAddress = new long[st.length];
    for (int i = 0; i < st.length; i++) {
      stateAddress[i] = st[i].memoryAddress();
    }
  }

  private static void closeAll(Throwable primary, ArrowBuf[] bufs, AutoCloseable... more) {
    for (ArrowBuf b : bufs) {
      if (b != null) {
        b.close();
      }
    }
    try {
      AutoCloseables.close(more);
    } catch (Exception e) {
      primary.addSuppressed(e);
    }
  }

  /**
   * Loads shard {@code index} of {@code table} (checksum verified). Optimizer state is loaded when
   * the table carries state columns of the same optimizer; otherwise it starts at zero.
   */
  static HostedShard load(Table table, int index, OptimizerSpec spec, BufferAllocator parent) throws IOException {
    TableManifest m = table.manifest();
    HostedShard shard = new HostedShard(index, m.partitioner(), m.dim(), spec, parent);
    boolean sameState = m.optimizer() != null && m.optimizer().name().equals(spec.name())
        && m.stateColumns().equals(shard.stateColumns);
    try {
      // One pass over the file: from HDFS or S3 a shard is streamed once, its checksum on the way.
      if (sameState) {
        table.readShardFully(index, shard.allocator, shard.embeddings, shard.state);
      } else {
        table.readShardFully(index, shard.allocator, shard.embeddings);
      }
    } catch (IOException | RuntimeException e) {
      shard.close();
      throw e;
    }
    return shard;
  }

  /**
   * Loads shards {@code indexes} of partitioning {@code target} from {@code table}, which is
   * partitioned otherwise ({@link Table#readRepartitioned}: one scan of the table for all of them),
   * into {@code out[index]}. Optimizer state is loaded as {@link #load} does.
   */
  static void loadRepartitioned(Table table, Partitioner target, int[] indexes, OptimizerSpec spec, BufferAllocator parent,
      HostedShard[] out) throws IOException {
    TableManifest m = table.manifest();
    ArrowBuf[][] into = new ArrowBuf[target.numShards()][];
    try {
      for (int s : indexes) {
        HostedShard shard = new HostedShard(s, target, m.dim(), spec, parent);
        out[s] = shard;
        boolean sameState = m.optimizer() != null && m.optimizer().name().equals(spec.name())
            && m.stateColumns().equals(shard.stateColumns);
        ArrowBuf[] bufs = new ArrowBuf[1 + (sameState ? shard.state.length : 0)];
        bufs[0] = shard.embeddings;
        for (int i = 1; i < bufs.length; i++) {
          bufs[i] = shard.state[i - 1];
        }
        into[s] = bufs;
      }
      table.readRepartitioned(target, into, parent);
    } catch (IOException | RuntimeException e) {
      for (int s : indexes) {
        if (out[s] != null) {
          out[s].close();
          out[s] = null;
        }
      }
      throw e;
    }
  }

  /** Creates shard {@code index} in memory, row of id {@code id} filled by {@code init}. */
  static HostedShard initialize(
      Partitioner partitioner, int dim, int index, RowInitializer init, OptimizerSpec spec, BufferAllocator parent) {
    HostedShard shard = new HostedShard(index, partitioner, dim, spec, parent);
    float[] row = new float[dim];
    try {
      for (long pos = 0; pos < shard.rows; pos++) {
        java.util.Arrays.fill(row, 0f);
        init.fill(partitioner.idAt(index, pos), row);
        long at = shard.embAddress + pos * shard.rowBytes;
        for (int c = 0; c < dim; c++) {
          MemoryUtil.putInt(at + 4L * c, Float.floatToRawIntBits(row[c]));
        }
      }
    } catch (RuntimeException e) {
      shard.close();
      throw e;
    }
    return shard;
  }

  /** Bytes held: embeddings plus optimizer state. */
  long bytes() {
    long b = embeddings.capacity();
    for (ArrowBuf s : state) {
      b += s.capacity();
    }
    return b;
  }

  // ------------------------------------------------------------------ validation

  /**
   * Throws INVALID_ARGUMENT (via {@link ShardErrors}) at the first id of {@code ids[0..n)} (an int64
   * buffer) that is outside [0, V) or not owned by this shard.
   */
  void checkIds(ArrowBuf ids, int n, String verb) {
    long address = ids.memoryAddress();
    for (int i = 0; i < n; i++) {
      long id = MemoryUtil.getLong(address + 8L * i);
      if (!partitioner.contains(id)) {
        throw ShardErrors.invalid(
            "Cannot " + verb + " id " + id + ": outside [0, " + partitioner.numRows() + ") (request row " + i + ", " + partitioner.describeShard(index) + ")");
      }
      if (partitioner.shardOf(id) != index) {
        throw ShardErrors.invalid(
            "Cannot " + verb + " id " + id + ": not owned by " + partitioner.describeShard(index) + " (request row " + i + "; it belongs to shard " + partitioner.shardOf(id) + ")");
      }
    }
  }

  // ------------------------------------------------------------------ lookup

  /** Copies the rows of {@code ids[0..n)} (validated) into {@code out}, back to back. */
  void copyRows(ArrowBuf ids, int n, ArrowBuf out) {
    long idAddress = ids.memoryAddress();
    long outAddress = out.memoryAddress();
    for (int i = 0; i < n; i++) {
      long pos = partitioner.positionOf(MemoryUtil.getLong(idAddress + 8L * i));
      MemoryUtil.copyMemory(embAddress + pos * rowBytes, outAddress + i * rowBytes, rowBytes);
    }
    lookupRows.add(n);
    lookupRequests.increment();
  }

  /** Reads the row at {@code pos} (for tests and nearest-by-id). */
  void readRow(long pos, float[] out) {
    long at = embAddress + pos * rowBytes;
    for (int c = 0; c < dim; c++) {
      out[c] = Float.intBitsToFloat(MemoryUtil.getInt(at + 4L * c));
    }
  }

  // ------------------------------------------------------------------ update

  /**
   * Applies one update: row {@code i} of {@code n} gets the gradient at {@code gradAddress + i * C *
   * 4}. Ids must be validated and distinct, gradients finite.
   */
  void applyUpdate(long idAddress, long gradAddress, int n, float lr) {
    touch(idAddress, n);
    for (int i = 0; i < n; i++) {
      long pos = partitioner.positionOf(MemoryUtil.getLong(idAddress + 8L * i));
      long g = gradAddress + i * rowBytes;
      ReentrantLock lock = stripes[(int) (pos & (STRIPES - 1))];
      lock.lock();
      try {
        applyRow(pos, g, lr);
      } finally {
        lock.unlock();
      }
    }
    updateRows.add(n);
    updateRequests.increment();
  }

  /**
   * Loads one word of every cache line of the rows of {@code ids[0..n)} and of their optimizer
   * state: the loads are independent, so the CPU overlaps their cache misses, where the update loop
   * (a lock, a fence, per row) takes them one row at a time.
   */
  private void touch(long idAddress, int n) {
    long sink = 0;
    for (int i = 0; i < n; i++) {
      long pos = partitioner.positionOf(MemoryUtil.getLong(idAddress + 8L * i));
      long at = embAddress + pos * rowBytes;
      for (long o = 0; o < rowBytes; o += 64) {
        sink += MemoryUtil.getLong(at + o);
      }
      for (int k = 0; k < stateAddress.length; k++) {
        long width = stateColumns.get(k).width() * 4L;
        long st = stateAddress[k] + pos * width;
        for (long o = 0; o < width; o += 64) {
          sink += MemoryUtil.getInt(st + o);
        }
      }
    }
    touched = sink;
  }

  private void applyRow(long pos, long g, float lr) {
    long w = embAddress + pos * rowBytes;
    switch (spec.name()) {
      case OptimizerSpec.SGD:
        for (int c = 0; c < dim; c++) {
          long o = 4L * c;
          put(w + o, get(w + o) - lr * get(g + o));
        }
        break;
      case OptimizerSpec.ADAGRAD: {
        float eps = (float) spec.eps();
        long s = stateAddress[0] + pos * rowBytes;
        for (int c = 0; c < dim; c++) {
          long o = 4L * c;
          float gc = get(g + o);
          float sum = get(s + o) + gc * gc;
          put(s + o, sum);
          put(w + o, get(w + o) - lr * gc / ((float) Math.sqrt(sum) + eps));
        }
        break;
      }
      case OptimizerSpec.ROWWISE_ADAGRAD: {
        double sq = sumOfSquares(g, dim);
        long s = stateAddress[0] + pos * 4L;
        float sum = get(s) + (float) (sq / dim);
        put(s, sum);
        float scale = lr / ((float) Math.sqrt(sum) + (float) spec.eps());
        for (int c = 0; c < dim; c++) {
          long o = 4L * c;
          put(w + o, get(w + o) - scale * get(g + o));
        }
        break;
      }
      case OptimizerSpec.ADAM: {
        float b1 = (float) spec.beta1();
        float b2 = (float) spec.beta2();
        float eps = (float) spec.eps();
        long m = stateAddress[0] + pos * rowBytes;
        long v = stateAddress[1] + pos * rowBytes;
        long stepAt = stateAddress[2] + pos * 4L;
        float t = get(stepAt) + 1;
        put(stepAt, t);
        float bc1 = (float) (1 - Math.pow(spec.beta1(), t));
        float bc2 = (float) (1 - Math.pow(spec.beta2(), t));
        for (int c = 0; c < dim; c++) {
          long o = 4L * c;
          float gc = get(g + o);
          float mc = b1 * get(m + o) + (1 - b1) * gc;
          float vc = b2 * get(v + o) + (1 - b2) * gc * gc;
          put(m + o, mc);
          put(v + o, vc);
          put(w + o, get(w + o) - lr * (mc / bc1) / ((float) Math.sqrt(vc / bc2) + eps));
        }
        break;
      }
      default:
        throw new IllegalStateException("unknown optimizer " + spec.name());
    }
  }

  /**
   * The sum of squares of {@code dim} floats at {@code g}, in doubles, with four independent
   * partial sums (one chain of dependent adds waits out each add's latency).
   */
  private static double sumOfSquares(long g, int dim) {
    double s0 = 0;
    double s1 = 0;
    double s2 = 0;
    double s3 = 0;
    int c = 0;
    for (; c + 4 <= dim; c += 4) {
      float a = get(g + 4L * c);
      float b = get(g + 4L * c + 4);
      float d = get(g + 4L * c + 8);
      float e = get(g + 4L * c + 12);
      s0 += a * a;
      s1 += b * b;
      s2 += d * d;
      s3 += e * e;
    }
    for (; c < dim; c++) {
      float a = get(g + 4L * c);
      s0 += a * a;
    }
    return (s0 + s1) + (s2 + s3);
  }

  private static float get(long address) {
    return Float.intBitsToFloat(MemoryUtil.getInt(address));
  }

  private static void put(long address, float value) {
    MemoryUtil.putInt(address, Float.floatToRawIntBits(value));
  }

  // ------------------------------------------------------------------ nearest

  /**
   * Exact cosine top-k of this shard for {@code query} (norm {@code > 0}), skipping {@code exclude}
   * (-1: none). Fills {@code outIds} / {@code outSims} best first; returns how many.
   */
  int nearest(float[] query, int k, long exclude, long[] outIds, float[] outSims) {
    double qn = 0;
    for (float q : query) {
      qn += (double) q * q;
    }
    qn = Math.sqrt(qn);
    TopK top = new TopK(k);
    for (long pos = 0; pos < rows; pos++) {
      long id = partitioner.idAt(index, pos);
      if (id == exclude) {
        continue;
      }
      long at = embAddress + pos * rowBytes;
      double dot = 0;
      double rn = 0;
      for (int c = 0; c < dim; c++) {
        float x = get(at + 4L * c);
        dot += (double) x * query[c];
        rn += (double) x * x;
      }
      float sim = rn == 0 ? 0f : (float) (dot / (qn * Math.sqrt(rn)));
      top.offer(id, sim);
    }
    return top.drainBestFirst(outIds, outSims);
  }

  // ------------------------------------------------------------------ snapshot

  /**
   * Writes every row and its optimizer state to {@code writer}, chunk by chunk. Each chunk is copied
   * into a staging buffer while holding every stripe lock, so each row of the file is the state
   * after a whole number of updates (with matching optimizer state); lookups never wait, and
   * updates wait at most for one chunk copy. Rows of different chunks may come from different
   * moments.
   */
  void writeTo(ShardWriter writer, BufferAllocator scratch) throws IOException {
    int chunk = TableFormat.batchRows(dim, stateWidth());
    try (ArrowBuf embStage = scratch.buffer(chunk * rowBytes)) {
      ArrowBuf[] stateStage = new ArrowBuf[state.length];
      try {
        for (int i = 0; i < state.length; i++) {
          stateStage[i] = scratch.buffer(chunk * stateColumns.get(i).width() * 4L);
        }
        for (long from = 0; from < rows; from += chunk) {
          int n = (int) Math.min(chunk, rows - from);
          lockAll();
          try {
            embStage.setBytes(0, embeddings, from * rowBytes, n * rowBytes);
            for (int i = 0; i < state.length; i++) {
              long w = stateColumns.get(i).width() * 4L;
              stateStage[i].setBytes(0, state[i], from * w, n * w);
            }
          } finally {
            unlockAll();
          }
          writer.append(embStage, 0, n, stateStage);
        }
      } finally {
        for (ArrowBuf b : stateStage) {
          if (b != null) {
            b.close();
          }
        }
      }
    }
  }

  private int stateWidth() {
    int w = 0;
    for (TableManifest.StateColumn c : stateColumns) {
      w += c.width();
    }
    return w;
  }

  private void lockAll() {
    for (ReentrantLock l : stripes) {
      l.lock();
    }
  }

  private void unlockAll() {
    for (int i = STRIPES - 1; i >= 0; i--) {
      stripes[i].unlock();
    }
  }

  @Override
  public void close() {
    for (ArrowBuf s : state) {
      s.close();
    }
    embeddings.close();
    allocator.close();
  }

  /** A bounded min-heap of (similarity, id) on primitive arrays: the k best seen so far. */
  static final class TopK {
    private final long[] ids;
    private final float[] sims;
    private int size;

    TopK(int k) {
      ids = new long[k];
      sims = new float[k];
    }

    /** Whether (a, ida) ranks below (b, idb): lower similarity, ties broken by larger id. */
    private static boolean worse(float a, long ida, float b, long idb) {
      return a < b || (a == b && ida > idb);
    }

    void offer(long id, float sim) {
      if (ids.length == 0) {
        return;
      }
      if (size < ids.length) {
        int i = size++;
        ids[i] = id;
        sims[i] = sim;
        while (i > 0) {
          int parent = (i - 1) >>> 1;
          if (!worse(sims[i], ids[i], sims[parent], ids[parent])) {
            break;
          }
          swap(i, parent);
          i = parent;
        }
      } else if (worse(sims[0], ids[0], sim, id)) {
        ids[0] = id;
        sims[0] = sim;
        siftDown(0, size);
      }
    }

    private void siftDown(int i, int n) {
      while (true) {
        int l = 2 * i + 1;
        int r = l + 1;
        int m = i;
        if (l < n && worse(sims[l], ids[l], sims[m], ids[m])) {
          m = l;
        }
        if (r < n && worse(sims[r], ids[r], sims[m], ids[m])) {
          m = r;
        }
        if (m == i) {
          return;
        }
        swap(i, m);
        i = m;
      }
    }

    private void swap(int a, int b) {
      long id = ids[a];
      ids[a] = ids[b];
      ids[b] = id;
      float s = sims[a];
      sims[a] = sims[b];
      sims[b] = s;
    }

    /** Writes the entries best first; returns their number. */
    int drainBestFirst(long[] outIds, float[] outSims) {
      int n = size;
      for (int end = n - 1; end >= 0; end--) {
        outIds[end] = ids[0];
        outSims[end] = sims[0];
        ids[0] = ids[end];
        sims[0] = sims[end];
        siftDown(0, end);
      }
      size = 0;
      return n;
    }
  }
}
