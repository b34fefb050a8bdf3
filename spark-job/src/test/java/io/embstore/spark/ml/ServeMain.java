package io.embstore.spark.ml;

import io.embstore.format.cli.Cli;
import io.embstore.shard.cli.ServeCommand;
import java.io.PrintWriter;

/** {@code embstore serve} as the main of a child JVM (tests start real server processes with it). */
public final class ServeMain {
  private ServeMain() {}

  public static void main(String[] args) {
    System.exit(Cli.run(new ServeCommand(), new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
  }
}
