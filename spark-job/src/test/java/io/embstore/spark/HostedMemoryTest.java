package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.junit.jupiter.api.Test;

/** {@link TrainJob#hostedMemory}: the allocator figures benchmarks read while a run trains. */
class HostedMemoryTest {
  @Test
  void reportsAllocatedAndPeakBytesOfEveryAllocatorUnderTheHostingRoot() {
    BufferAllocator root = ExecutorHost.allocator();
    try (BufferAllocator a = root.newChildAllocator("memtest", 0, Long.MAX_VALUE);
        BufferAllocator b = root.newChildAllocator("memtest", 0, Long.MAX_VALUE);
        BufferAllocator shard = a.newChildAllocator("shard-0", 0, Long.MAX_VALUE)) {
      try (ArrowBuf big = shard.buffer(1 << 20)) {
        big.setByte(0, 1);
      }
      try (ArrowBuf small = b.buffer(4096)) {
        Map<String, long[]> m = TrainJob.hostedMemory();
        String rootPath = "/" + root.getName();
        String aPath = rootPath + "/memtest#" + Integer.toHexString(System.identityHashCode(a));
        String bPath = rootPath + "/memtest#" + Integer.toHexString(System.identityHashCode(b));
        String shardPath = aPath + "/shard-0#" + Integer.toHexString(System.identityHashCode(shard));
        assertThat(m).containsKeys(rootPath, aPath, bPath, shardPath);
        assertThat(m.get(shardPath)[0]).isZero();
        assertThat(m.get(shardPath)[1]).isGreaterThanOrEqualTo(1 << 20);
        assertThat(m.get(aPath)[1]).isGreaterThanOrEqualTo(1 << 20);
        assertThat(m.get(bPath)[0]).isGreaterThanOrEqualTo(4096);
        assertThat(m.get(bPath)[1]).isLessThan(1 << 20);
      }
    }
  }
}
