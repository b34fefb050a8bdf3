package io.embstore.shard.fault;

import io.embstore.shard.ShardServer;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A shard server in its own process, for tests that kill it: {@code TABLE_DIR PORT SHARDS}
 * (SHARDS comma-separated, or "all"). Prints {@code ENDPOINT <uri>} once serving; exits by itself
 * after 15 minutes so that a test that dies never leaves it behind.
 */
public final class ShardServerMain {
  private ShardServerMain() {}

  public static void main(String[] args) throws Exception {
    ShardServer.Builder b = ShardServer.builder().table(Path.of(args[0])).port(Integer.parseInt(args[1]));
    if (!"all".equals(args[2])) {
      b.shards(Arrays.stream(args[2].split(",")).mapToInt(Integer::parseInt).toArray());
    }
    try (ShardServer server = b.start()) {
      System.out.println("ENDPOINT " + server.endpoint());
      System.out.flush();
      Thread.sleep(15 * 60 * 1000L);
    }
  }
}
