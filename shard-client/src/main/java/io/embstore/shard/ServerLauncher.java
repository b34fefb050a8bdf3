package io.embstore.shard;

import io.embstore.format.TableLocation;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

/**
 * Runs a shard server as the work of its JVM: starts it from a {@link ShardServer.Builder}, prints
 * one ready line ({@code embstore serve: serving shards [0, 2] of TABLE at grpc+tcp://HOST:PORT}),
 * which scripts read to learn a port picked with port 0, serves until SIGTERM/SIGINT (or {@link
 * #stop}), then closes the server. {@code embstore serve} (deploy) runs through it; so do tests and
 * benchmarks that start a server in a JVM of their own, with {@link #main}.
 *
 * <p>The endpoint of the ready line is one a client can connect to ({@link ShardServer#endpoint}):
 * bound to a wildcard address ({@code 0.0.0.0} or {@code ::}), which no client can dial, it names
 * the loopback address {@code 127.0.0.1} instead, the one address certain to reach the server from
 * the machine that started it; the line then also says that the server listens on every address,
 * for clients elsewhere to use the machine's own.
 */
public final class ServerLauncher {
  private final CountDownLatch stop = new CountDownLatch(1);
  private volatile ShardServer server;

  /**
   * Starts {@code b}, prints the ready line naming {@code table} on {@code out} and blocks until
   * SIGTERM/SIGINT or {@link #stop}; the server is closed when this returns or throws.
   */
  public void run(ShardServer.Builder b, String table, PrintWriter out) throws IOException, InterruptedException {
    CountDownLatch closed = new CountDownLatch(1);
    Thread hook = new Thread(() -> {
      stop.countDown();
      try {
        closed.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }, "embstore-serve-shutdown");
    try (ShardServer s = b.start()) {
      server = s;
      Runtime.getRuntime().addShutdownHook(hook);
      out.println(readyLine(s, table));
      out.flush();
      stop.await();
    } finally {
      closed.countDown();
      try {
        Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException | IllegalArgumentException e) {
        // the JVM is shutting down (the hook is running) or it was never added
      }
    }
  }

  /** Stops serving (what SIGTERM does); for a server run in a thread of a test. */
  public void stop() {
    stop.countDown();
  }

  /** The running server, or null before it is ready. */
  public ShardServer server() {
    return server;
  }

  /** The line printed once {@code s}, serving {@code table}, is ready. */
  static String readyLine(ShardServer s, String table) {
    String at = s.listensOnEveryAddress() ? s.endpoint() + " (listening on every address, " + s.listenAddress() + ")" : s.endpoint();
    return "embstore serve: serving shards " + Arrays.toString(s.shards()) + " of " + table + " at " + at;
  }

  /**
   * A shard server in a JVM of its own, for tests and benchmarks that start (and kill) server
   * processes: {@code --table TABLE [--shards 0,2] [--host H] [--port N] [--read-token R]
   * [--write-token W] [--optimizer NAME [--lr X]] [--wal DIR [--wal-sync MODE]]}, each given to the
   * {@link ShardServer.Builder} method of that name (see {@code embstore serve --help}). Prints the
   * ready line; on a failure, one line on stderr and exit 1.
   */
  public static void main(String[] args) {
    try {
      Launch l = parse(args);
      new ServerLauncher().run(l.builder(), l.table(), new PrintWriter(System.out, true));
      System.exit(0);
    } catch (Exception e) {
      System.err.println("embstore serve: " + e.getMessage() + (e.getCause() == null ? "" : ": " + e.getCause().getMessage()));
      System.exit(1);
    }
  }

  /** A builder and the table it serves, from the arguments of {@link #main}. */
  record Launch(ShardServer.Builder builder, String table) {}

  static Launch parse(String... args) {
    ShardServer.Builder b = ShardServer.builder();
    String table = null;
    String optimizer = null;
    Double lr = null;
    for (int i = 0; i < args.length; i += 2) {
      String name = args[i];
      if (i + 1 >= args.length) {
        throw new IllegalArgumentException("Cannot launch a shard server: " + name + " has no value");
      }
      String v = args[i + 1];
      try {
        switch (name) {
          case "--table" -> b.table(TableLocation.of(table = v));
          case "--shards" -> b.shards(Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray());
          case "--host" -> b.host(v);
          case "--port" -> b.port(Integer.parseInt(v));
          case "--read-token" -> b.readToken(v);
          case "--write-token" -> b.writeToken(v);
          case "--optimizer" -> optimizer = v;
          case "--lr" -> lr = Double.parseDouble(v);
          case "--wal" -> b.wal(Path.of(v));
          case "--wal-sync" -> b.walSync(v);
          default -> throw new IllegalArgumentException("Cannot launch a shard server: unknown argument " + name
              + " (known: --table --shards --host --port --read-token --write-token --optimizer --lr --wal --wal-sync)");
        }
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("Cannot launch a shard server: " + name + " " + v + " (not a number)", e);
      }
    }
    if (table == null) {
      throw new IllegalArgumentException("Cannot launch a shard server: --table is required");
    }
    if (optimizer != null) {
      b.optimizer(Optimizer.parse(optimizer, lr == null ? Map.of() : Map.of("lr", lr)));
    } else if (lr != null) {
      throw new IllegalArgumentException("Cannot launch a shard server: --lr " + lr + " needs --optimizer");
    }
    return new Launch(b, table);
  }
}
