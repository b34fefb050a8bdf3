package io.embstore.bench.common;

import io.embstore.format.cli.Cli;
import io.embstore.shard.cli.ServeCommand;
import java.io.PrintWriter;

/** {@code embstore serve} with the arguments given, in a JVM of its own (started with {@link ChildProcess#java}). */
public final class ServeMain {
  private ServeMain() {}

  public static void main(String[] args) {
    System.exit(Cli.run(new ServeCommand(), new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
  }
}
