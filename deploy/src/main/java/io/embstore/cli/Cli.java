package io.embstore.cli;

import io.embstore.format.ValueType;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.ServiceLoader;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * Runs {@code embstore} commands with one error convention: a failure prints a single line {@code
 * embstore <command>: <reason>} on stderr and exits 1; a usage error prints the reason and the
 * command's usage and exits 2. Stack traces only with {@code EMBSTORE_DEBUG=1}.
 */
public final class Cli {
  public static final int EXIT_OK = 0;
  public static final int EXIT_FAILURE = 1;
  public static final int EXIT_USAGE = 2;
  /** Help of every {@code --table} option: where a table may live. */
  public static final String TABLE_HELP =
      "The table: a directory, or a URI (file:, hdfs://NAMENODE/DIR, s3a://BUCKET/DIR; Hadoop configuration from HADOOP_CONF_DIR).";

  private Cli() {}

  /** The value type named by a {@code --dtype} option ({@link ValueType#of}, the error naming the option). */
  public static ValueType valueType(String dtype) {
    try {
      return ValueType.of(dtype);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("Cannot use --dtype " + dtype + " (known: " + ValueType.known() + ")");
    }
  }

  /** The root command with every {@link Subcommand} found on the class path. */
  public static CommandLine root() {
    CommandLine root = new CommandLine(new Root());
    List<Subcommand> commands = new ArrayList<>();
    ServiceLoader.load(Subcommand.class).forEach(commands::add);
    commands.sort(Comparator.comparingInt(Subcommand::order));
    for (Subcommand c : commands) {
      root.addSubcommand(c);
    }
    return configure(root);
  }

  /** Applies the error convention to {@code cmd} (and its subcommands). */
  public static CommandLine configure(CommandLine cmd) {
    cmd.setExecutionExceptionHandler(
        (e, commandLine, parseResult) -> {
          PrintWriter err = commandLine.getErr();
          err.println("embstore " + commandLine.getCommandName() + ": " + oneLine(e));
          if ("1".equals(System.getenv("EMBSTORE_DEBUG"))) {
            e.printStackTrace(err);
          }
          err.flush();
          return EXIT_FAILURE;
        });
    cmd.setParameterExceptionHandler(
        (e, args) -> {
          CommandLine c = e.getCommandLine();
          PrintWriter err = c.getErr();
          err.println("embstore " + c.getCommandName() + ": " + e.getMessage());
          c.usage(err);
          err.flush();
          return EXIT_USAGE;
        });
    return cmd;
  }

  /** Runs a single command object with the convention; returns the exit code. */
  public static int run(Object command, PrintWriter out, PrintWriter err, String... args) {
    CommandLine cmd = configure(new CommandLine(command));
    cmd.setOut(out);
    cmd.setErr(err);
    return cmd.execute(args);
  }

  /**
   * The message of {@code e} and its causes on one line. A message that carries a stack trace (a
   * Spark job aborted by a failed task quotes the task's exception with its stack and the driver's)
   * is cut where the trace starts; {@code EMBSTORE_DEBUG=1} prints the whole exception. A cause
   * whose message starts as something the line already says (a wrapper that quoted its first line,
   * as storage errors quote Hadoop's) is not repeated.
   */
  public static String oneLine(Throwable e) {
    StringBuilder sb = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      String m = t.getMessage();
      if (m == null || m.isBlank()) {
        m = t.getClass().getSimpleName();
      }
      m = withoutStackTrace(m);
      if (sb.indexOf(m) < 0 && (m.length() < QUOTED_PREFIX || sb.indexOf(m.substring(0, QUOTED_PREFIX)) < 0)) {
        if (sb.length() > 0) {
          sb.append(": ");
        }
        sb.append(m.replace('\n', ' '));
      }
    }
    return sb.toString();
  }

  /** Characters of a cause's message that, found in the line already, mark it as quoted. */
  private static final int QUOTED_PREFIX = 40;

  private static String withoutStackTrace(String message) {
    int cut = message.length();
    for (String start : new String[] {"\n\tat ", "\nDriver stacktrace:"}) {
      int i = message.indexOf(start);
      if (i >= 0 && i < cut) {
        cut = i;
      }
    }
    return message.substring(0, cut).strip();
  }

  @Command(
      name = "embstore",
      mixinStandardHelpOptions = true,
      versionProvider = Version.class,
      description = "A distributed, sharded store for token-embedding matrices.",
      subcommands = {CommandLine.HelpCommand.class})
  static final class Root implements Runnable {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
      spec.commandLine().usage(spec.commandLine().getOut());
    }
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = Cli.class.getPackage().getImplementationVersion();
      return new String[] {"embstore " + (v == null ? "dev" : v)};
    }
  }
}
