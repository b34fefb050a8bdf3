package io.embstore.shard.fault;

import io.embstore.shard.ServerLauncher;

/**
 * A shard server in a process of its own, for tests that kill it: {@link ServerLauncher#main} (the
 * arguments are those of {@code embstore serve} it knows; it prints serve's ready line). Exits by
 * itself after 15 minutes so that a test that dies never leaves it behind.
 */
public final class ServeMain {
  private ServeMain() {}

  public static void main(String[] args) {
    Thread limit = new Thread(() -> {
      try {
        Thread.sleep(15 * 60 * 1000L);
      } catch (InterruptedException e) {
        return;
      }
      Runtime.getRuntime().halt(3);
    }, "serve-time-limit");
    limit.setDaemon(true);
    limit.start();
    ServerLauncher.main(args);
  }
}
