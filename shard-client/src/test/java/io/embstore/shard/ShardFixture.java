package io.embstore.shard;

import io.embstore.format.TableManifest;
import io.embstore.format.TestMatrices;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;

/** A table written from a known matrix and servers hosting its shards; closes what it started. */
final class ShardFixture implements AutoCloseable {
  final Path dir;
  final float[] matrix;
  final long rows;
  final int dim;
  final TableManifest manifest;
  final List<ShardServer> servers = new ArrayList<>();

  ShardFixture(Path dir, long rows, int dim, int shards, String partitioner, BufferAllocator allocator)
      throws IOException {
    this.dir = dir;
    this.rows = rows;
    this.dim = dim;
    this.matrix = TestMatrices.random(rows, dim, 7);
    this.manifest = TestMatrices.write(dir, matrix, rows, dim, shards, partitioner, allocator);
  }

  ShardServer start(BufferAllocator allocator, int... shards) throws IOException {
    ShardServer s = ShardServer.builder().table(dir).shards(shards).allocator(allocator).start();
    servers.add(s);
    return s;
  }

  ShardServer start(ShardServer.Builder b) throws IOException {
    ShardServer s = b.start();
    servers.add(s);
    return s;
  }

  List<String> endpoints() {
    List<String> e = new ArrayList<>();
    for (ShardServer s : servers) {
      e.add(s.endpoint());
    }
    return e;
  }

  float[] row(long id) {
    float[] r = new float[dim];
    System.arraycopy(matrix, (int) (id * dim), r, 0, dim);
    return r;
  }

  @Override
  public void close() {
    for (ShardServer s : servers) {
      s.close();
    }
    servers.clear();
  }
}
