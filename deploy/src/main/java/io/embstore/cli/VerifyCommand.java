package io.embstore.cli;

import io.embstore.format.Table;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code embstore verify}: reads every byte of a table and checks it against its manifest. */
@Command(
    name = "verify",
    mixinStandardHelpOptions = true,
    description = {
      "Checks a table: the manifest's checksum, then every shard file's length, CRC-32C, schema, metadata and ids,"
          + " and the vocabulary file.",
      "Exits 0 with one line per file when the table is sound; exits 1 with the first problem otherwise."
    })
public final class VerifyCommand implements Callable<Integer>, Subcommand {
  @Spec CommandSpec spec;

  @Option(names = "--table", required = true, paramLabel = "TABLE", description = Cli.TABLE_HELP)
  String table;

  @Override
  public int order() {
    return 130;
  }

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    try (BufferAllocator allocator = new RootAllocator()) {
      for (String line : Table.open(table).verify(allocator)) {
        out.println(line);
      }
    }
    out.println("ok: " + table);
    out.flush();
    return Cli.EXIT_OK;
  }
}
