package io.embstore.bench.lookup;

import io.embstore.bench.common.Rows;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;

/**
 * The in-process gather of BENCHMARKS.md: the whole matrix in one contiguous off-heap buffer, and a
 * lookup copies the B requested rows by id into an output buffer. This is what a shard server does
 * per request before any networking, so it bounds what the servers can serve per core.
 */
final class InProcessGather implements AutoCloseable {
  private final BufferAllocator allocator;
  private final ArrowBuf matrix;
  private final long rows;
  private final int rowBytes;

  InProcessGather(BufferAllocator parent, long rows, int dim, long seed) {
    this.allocator = parent.newChildAllocator("gather-matrix", 0, Long.MAX_VALUE);
    this.rows = rows;
    this.rowBytes = dim * 4;
    this.matrix = allocator.buffer(rows * rowBytes);
    int chunk = 4096;
    ByteBuffer b = ByteBuffer.allocateDirect(chunk * rowBytes).order(ByteOrder.LITTLE_ENDIAN);
    for (long id = 0; id < rows; id += chunk) {
      int n = (int) Math.min(chunk, rows - id);
      b.clear();
      for (int i = 0; i < n; i++) {
        Rows.put(seed, id + i, dim, b);
      }
      MemoryUtil.copyMemory(MemoryUtil.getByteBufferAddress(b), matrix.memoryAddress() + id * rowBytes, (long) n * rowBytes);
    }
  }

  long bytes() {
    return rows * rowBytes;
  }

  /** One thread's output buffer; {@link #gather} copies the rows of {@code ids} into it. */
  final class Output implements AutoCloseable {
    private final ArrowBuf out;

    Output(int maxBatch) {
      this.out = allocator.buffer((long) maxBatch * rowBytes);
    }

    void gather(long[] ids) {
      long src = matrix.memoryAddress();
      long dst = out.memoryAddress();
      for (int i = 0; i < ids.length; i++) {
        long id = ids[i];
        if (id < 0 || id >= rows) {
          throw new IllegalArgumentException("Cannot gather id " + id + " (rows 0.." + (rows - 1) + ")");
        }
        MemoryUtil.copyMemory(src + id * rowBytes, dst + (long) i * rowBytes, rowBytes);
      }
    }

    @Override
    public void close() {
      out.close();
    }
  }

  @Override
  public void close() {
    matrix.close();
    allocator.close();
  }
}
