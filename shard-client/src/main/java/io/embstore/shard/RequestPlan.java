package io.embstore.shard;

import io.embstore.format.Partitioner;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.util.MemoryUtil;

/**
 * The deduplicated, routed form of one call's id list: the distinct ids grouped by the shard that
 * owns them (the table's {@link Partitioner}), and for each distinct id the chain of request
 * positions that asked for it. Primitive arrays only; built once per call and shared by every
 * transport that carries a part of it. An update's plan also sums the gradients of duplicate ids
 * ({@link #sumGradients}).
 */
final class RequestPlan {
  /** Request positions. */
  final int n;
  final int distinct;
  /** For distinct id u: the first request position that asked for it; {@code nextReq[i]}: the next, or -1. */
  final int[] firstReq;
  final int[] nextReq;
  /** For request position i: the index of its distinct id. */
  final int[] uniqueOfReq;
  final long[] uniqueIds;
  /** Shards with work, ascending. */
  final int[] shards;
  /** For shard s: the indexes of its distinct ids in send order (null when it has none). */
  final int[][] uniquesOf;

  /**
   * Plans {@code ids}; throws IllegalArgumentException naming the first id outside [0, V) and its
   * request position ({@code verb} as in "look up").
   */
  RequestPlan(long[] ids, Partitioner partitioner, String verb) {
    this(ids, ids.length, partitioner, verb);
  }

  /** Plans the first {@code count} of {@code ids} (the rest of the array is not read). */
  RequestPlan(long[] ids, int count, Partitioner partitioner, String verb) {
    n = count;
    LongIntMap map = new LongIntMap(n);
    firstReq = new int[n];
    nextReq = new int[n];
    int[] lastReq = new int[n];
    uniqueOfReq = new int[n];
    long[] uniq = new long[n];
    int d = 0;
    for (int i = 0; i < n; i++) {
      long id = ids[i];
      if (!partitioner.contains(id)) {
        throw new IllegalArgumentException(
            "Cannot " + verb + " id " + id + ": outside [0, " + partitioner.numRows() + ") (request position " + i + ")");
      }
      int u = map.putIfAbsent(id, d);
      uniqueOfReq[i] = u;
      nextReq[i] = -1;
      if (u == d) {
        uniq[d] = id;
        firstReq[d] = i;
        lastReq[d] = i;
        d++;
      } else {
        nextReq[lastReq[u]] = i;
        lastReq[u] = i;
      }
    }
    distinct = d;
    uniqueIds = uniq;
    int p = partitioner.numShards();
    int[] counts = new int[p];
    int[] shardOfUnique = new int[d];
    int busy = 0;
    for (int u = 0; u < d; u++) {
      int s = partitioner.shardOf(uniq[u]);
      shardOfUnique[u] = s;
      if (counts[s]++ == 0) {
        busy++;
      }
    }
    shards = new int[busy];
    uniquesOf = new int[p][];
    int k = 0;
    for (int s = 0; s < p; s++) {
      if (counts[s] > 0) {
        shards[k++] = s;
        uniquesOf[s] = new int[counts[s]];
      }
    }
    int[] fill = new int[p];
    for (int u = 0; u < d; u++) {
      int s = shardOfUnique[u];
      uniquesOf[s][fill[s]++] = u;
    }
  }

  /** Distinct ids of {@code shard}'s part. */
  int size(int shard) {
    return uniquesOf[shard].length;
  }

  /** Writes ids {@code from .. from + count} of {@code shard}'s part as int64 at {@code address}. */
  void writeIds(int shard, int from, int count, long address) {
    int[] uniques = uniquesOf[shard];
    for (int i = 0; i < count; i++) {
      MemoryUtil.putLong(address + 8L * i, uniqueIds[uniques[from + i]]);
    }
  }

  /** Puts ids {@code from .. from + count} of {@code shard}'s part into {@code out} (little-endian int64). */
  void writeIds(int shard, int from, int count, java.nio.ByteBuffer out) {
    int[] uniques = uniquesOf[shard];
    for (int i = 0; i < count; i++) {
      out.putLong(uniqueIds[uniques[from + i]]);
    }
  }

  /**
   * Writes the summed gradients ({@code sums}, C per distinct id) of ids {@code from .. from + count}
   * of {@code shard}'s part, back to back, into {@code out} from byte 0.
   */
  void writeGradients(int shard, int from, int count, float[] sums, int dim, ArrowBuf out) {
    int[] uniques = uniquesOf[shard];
    FloatBuffer view = floatView(out, count, dim);
    for (int i = 0; i < count; i++) {
      view.put(i * dim, sums, uniques[from + i] * dim, dim);
    }
  }

  /**
   * Copies reply rows {@code row0 .. row0 + count} of {@code floats} (rows of ids {@code from ..
   * from + count} of {@code shard}'s part; {@code bytes} is the same memory) to every request
   * position that asked for each.
   */
  void scatter(int shard, int from, int count, java.nio.ByteBuffer bytes, FloatBuffer floats, int row0, Scatter scatter) {
    int[] uniques = uniquesOf[shard];
    for (int r = 0; r < count; r++) {
      for (int i = firstReq[uniques[from + r]]; i >= 0; i = nextReq[i]) {
        scatter.copy(bytes, floats, row0 + r, i);
      }
    }
  }

  /** {@link #scatter} from the first rows of an Arrow buffer. */
  void scatter(int shard, int from, int count, ArrowBuf data, int row0, int dim, Scatter scatter) {
    java.nio.ByteBuffer bytes = data.nioBuffer(0, (row0 + count) * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
    scatter(shard, from, count, bytes, bytes.asFloatBuffer(), row0, scatter);
  }

  /**
   * The gradients summed per distinct id (C per distinct id, in distinct-id order): {@code grads}
   * itself when no id repeats. Summed in float32 in request order.
   */
  float[] sumGradients(float[] grads, int dim) {
    if (distinct == n) {
      return grads;
    }
    float[] sums = new float[Math.toIntExact((long) distinct * dim)];
    for (int i = 0; i < n; i++) {
      int base = uniqueOfReq[i] * dim;
      int src = i * dim;
      for (int c = 0; c < dim; c++) {
        sums[base + c] += grads[src + c];
      }
    }
    return sums;
  }

  /**
   * {@link #writeGradients(int, int, int, float[], int, ArrowBuf)} into {@code out} from index 0
   * (a fast update's staging buffer).
   */
  void writeGradients(int shard, int from, int count, float[] sums, int dim, FloatBuffer out) {
    int[] uniques = uniquesOf[shard];
    for (int i = 0; i < count; i++) {
      out.put(i * dim, sums, uniques[from + i] * dim, dim);
    }
  }

  /** A little-endian float view of the first {@code rows} rows of {@code data}. */
  static FloatBuffer floatView(ArrowBuf data, int rows, int dim) {
    return data.nioBuffer(0, rows * dim * 4).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
  }

  /**
   * Copies row {@code u}'s C floats in {@code out}, already at its first request position, to the
   * other request positions that asked for distinct id {@code u}.
   */
  void copyToRepeats(int u, float[] out, int dim) {
    int first = firstReq[u];
    for (int i = nextReq[first]; i >= 0; i = nextReq[i]) {
      System.arraycopy(out, first * dim, out, i * dim, dim);
    }
  }

  /**
   * A scatter into a float array, row of request position i at {@code out[i * dim ..]}: a transport
   * that holds the rows itself (in process) writes them there directly instead of through {@link
   * #copy}.
   */
  record ArrayScatter(float[] out, int dim) implements Scatter {
    @Override
    public void copy(java.nio.ByteBuffer bytes, FloatBuffer floats, int row, int request) {
      floats.get(row * dim, out, request * dim, dim);
    }
  }

  /** Copies reply rows to the request positions that asked for them. */
  interface Scatter {
    /**
     * Copies row {@code row} of the reply rows in {@code floats} (little-endian float32, C per row;
     * {@code bytes} is the same memory) to request position {@code request}.
     */
    void copy(java.nio.ByteBuffer bytes, FloatBuffer floats, int row, int request);
  }
}
