package io.embstore.shard.fault;

import io.embstore.format.cli.Cli;
import io.embstore.shard.cli.ServeCommand;
import java.io.PrintWriter;

/**
 * {@code embstore serve} in a process of its own, for tests that kill it: the arguments are those
 * of {@code serve}; it prints the command's ready line. Exits by itself after 15 minutes so that a
 * test that dies never leaves it behind.
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
    System.exit(Cli.run(new ServeCommand(), new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
  }
}
