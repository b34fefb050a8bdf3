package io.embstore.bench.lookup;

import io.embstore.bench.common.ChildProcess;
import io.embstore.bench.common.Rows;
import java.io.File;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;

/**
 * The peer: our own redis-server on 127.0.0.1 (free port, no persistence), rows stored as binary
 * strings under their decimal id, loaded with pipelines of 1000 SETs, read with MGET through Jedis.
 */
final class RedisPeer implements AutoCloseable {
  private final ChildProcess process;
  private final byte[][] keys;
  private final int rowBytes;

  private RedisPeer(ChildProcess process, int port, long rows, int dim) {
    this.process = process;
    this.rowBytes = dim * 4;
    this.keys = new byte[(int) rows][];
    for (int i = 0; i < rows; i++) {
      keys[i] = Integer.toString(i).getBytes(StandardCharsets.US_ASCII);
    }
    this.port = port;
  }

  private final int port;

  /** The redis-server binary on PATH, if any. */
  static Optional<String> binary() {
    for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
      File f = new File(dir, "redis-server");
      if (f.canExecute()) {
        return Optional.of(f.getPath());
      }
    }
    return Optional.empty();
  }

  static RedisPeer start(String binary, long rows, int dim, long seed) throws IOException, InterruptedException {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    ChildProcess p =
        ChildProcess.start(
            "redis",
            List.of(binary, "--port", Integer.toString(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--loglevel", "warning", "--protected-mode", "yes"));
    RedisPeer peer = new RedisPeer(p, port, rows, dim);
    try {
      peer.awaitReady();
      peer.load(rows, dim, seed);
      return peer;
    } catch (IOException | InterruptedException | RuntimeException e) {
      peer.close();
      throw e;
    }
  }

  private void awaitReady() throws IOException, InterruptedException {
    long deadline = System.nanoTime() + 10_000_000_000L;
    while (true) {
      try (Jedis j = connect()) {
        j.ping();
        return;
      } catch (RuntimeException e) {
        if (System.nanoTime() > deadline) {
          throw new IOException("Cannot start redis-server on port " + port + " (no answer to PING in 10 s)", e);
        }
        Thread.sleep(50);
      }
    }
  }

  private void load(long rows, int dim, long seed) {
    try (Jedis j = connect()) {
      Pipeline p = j.pipelined();
      for (int id = 0; id < rows; id++) {
        p.set(keys[id], Rows.bytes(seed, id, dim));
        if (id % 1000 == 999) {
          p.sync();
        }
      }
      p.sync();
      long n = j.dbSize();
      if (n != rows) {
        throw new IllegalStateException("Cannot load Redis: " + n + " keys after loading " + rows + " rows");
      }
    }
  }

  Jedis connect() {
    return new Jedis("127.0.0.1", port);
  }

  long pid() {
    return process.pid();
  }

  /** used_memory (the allocator's view) from INFO memory. */
  long usedMemory() {
    try (Jedis j = connect()) {
      for (String line : j.info("memory").split("\r?\n")) {
        if (line.startsWith("used_memory:")) {
          return Long.parseLong(line.substring("used_memory:".length()).trim());
        }
      }
    }
    return -1;
  }

  /** One connection's MGET calls. */
  final class Reader implements AutoCloseable {
    private final Jedis jedis = connect();

    /** One MGET of the ids; checks the reply size. */
    void mget(long[] ids) {
      byte[][] k = new byte[ids.length][];
      for (int i = 0; i < ids.length; i++) {
        k[i] = keys[(int) ids[i]];
      }
      List<byte[]> v = jedis.mget(k);
      check(v);
    }

    /** {@code depth} MGETs of {@code ids.length / depth} ids each, pipelined on one connection. */
    void pipelined(long[] ids, int depth) {
      Pipeline p = jedis.pipelined();
      int per = ids.length / depth;
      @SuppressWarnings("unchecked")
      redis.clients.jedis.Response<List<byte[]>>[] rs = new redis.clients.jedis.Response[depth];
      for (int d = 0; d < depth; d++) {
        byte[][] k = new byte[per][];
        for (int i = 0; i < per; i++) {
          k[i] = keys[(int) ids[d * per + i]];
        }
        rs[d] = p.mget(k);
      }
      p.sync();
      for (var r : rs) {
        check(r.get());
      }
    }

    private void check(List<byte[]> v) {
      for (byte[] row : v) {
        if (row == null || row.length != rowBytes) {
          throw new IllegalStateException("Redis MGET returned a row of " + (row == null ? "null" : row.length + " bytes"));
        }
      }
    }

    @Override
    public void close() {
      jedis.close();
    }
  }

  @Override
  public void close() {
    try (Jedis j = connect()) {
      j.shutdown();
    } catch (RuntimeException e) {
      // already gone, or shutting down closed the connection: the process close below makes sure
    }
    process.close();
  }
}
