package io.embstore.cli;

import io.embstore.format.Resharder;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code embstore reshard}: a table's rows into a new table with another shard count or partitioner. */
@Command(
    name = "reshard",
    mixinStandardHelpOptions = true,
    description = {
      "Writes the rows of a table into a new table with another number of shards or partitioner, bit for bit,"
          + " with its optimizer state and vocabulary (streaming: memory does not grow with the number of rows).",
      "Input and output may be on any storage (a directory, file:, hdfs:, s3a:). The input's checksums are checked as it is read."
    })
public final class ReshardCommand implements Callable<Integer>, Subcommand {
  @Spec CommandSpec spec;

  @Option(names = "--table", required = true, paramLabel = "TABLE", description = Cli.TABLE_HELP)
  String table;

  @Option(names = "--shards", required = true, paramLabel = "P", description = "Shards of the new table, 1..V.")
  int shards;

  @Option(names = "--partitioner", paramLabel = "NAME", description = "modulo or range; default: the input's.")
  String partitioner;

  @Option(names = "--output", required = true, paramLabel = "TABLE", description = "The new table (a directory or a URI); must not exist.")
  String output;

  @Override
  public int order() {
    return 115;
  }

  @Override
  public Integer call() throws Exception {
    long start = System.nanoTime();
    TableManifest m;
    try (BufferAllocator allocator = new RootAllocator()) {
      m = Resharder.run(
          new Resharder.Options(TableLocation.of(table), TableLocation.of(output), shards, partitioner, spec.commandLine().getErr()),
          allocator);
    }
    double secs = (System.nanoTime() - start) / 1e9;
    spec.commandLine().getOut().printf(Locale.ROOT, "resharded %s into %s: %d rows x %d dims, %d %s shards%s in %.1f s, %.0f MB/s%n",
        table, output, m.rows(), m.dim(), m.numShards(), m.partitioner().name(),
        m.optimizer() == null ? "" : ", optimizer state " + m.optimizer().stateColumns(),
        secs, m.embeddingBytes() / 1e6 / secs);
    spec.commandLine().getOut().flush();
    return Cli.EXIT_OK;
  }
}
