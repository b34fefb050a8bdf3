package io.embstore.cli;


/** The {@code embstore} command: every subcommand of every module on the class path. */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    System.exit(Cli.root().execute(args));
  }
}
