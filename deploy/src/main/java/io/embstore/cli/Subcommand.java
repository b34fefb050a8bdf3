package io.embstore.cli;

/**
 * A subcommand of the {@code embstore} command line. Implementations are picocli {@code @Command}
 * classes with a public no-argument constructor, listed in {@code
 * META-INF/services/io.embstore.format.cli.Subcommand} of their module; {@code bin/embstore} finds
 * them with {@link java.util.ServiceLoader}, so each module contributes its own commands and the
 * launcher depends on none of them by name.
 */
public interface Subcommand {
  /** Position in the help listing: format commands 100+, shard commands 200+, Spark jobs 300+. */
  int order();
}
