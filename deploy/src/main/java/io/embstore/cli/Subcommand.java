package io.embstore.cli;

/**
 * A subcommand of the {@code embstore} command line. Implementations are picocli {@code @Command}
 * classes with a public no-argument constructor, listed in this module's {@code
 * META-INF/services/io.embstore.cli.Subcommand}; {@link Cli#root} finds them with {@link
 * java.util.ServiceLoader}.
 */
public interface Subcommand {
  /** Position in the help listing: format commands 100+, shard commands 200+, Spark jobs 300+. */
  int order();
}
