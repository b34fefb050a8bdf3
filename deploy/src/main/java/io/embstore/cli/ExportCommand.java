package io.embstore.cli;

import io.embstore.format.TableLocation;
import io.embstore.format.convert.ExportFormat;
import io.embstore.format.convert.Exporter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code embstore export}: a table into a matrix file. */
@Command(
    name = "export",
    mixinStandardHelpOptions = true,
    description = {
      "Exports a table to a matrix file, rows in id order (streaming). The file appears only when complete.",
      "word2vec formats carry the table's vocabulary (or the decimal id when it has none)."
    })
public final class ExportCommand implements Callable<Integer>, Subcommand {
  @Spec CommandSpec spec;

  @Option(
      names = "--to",
      required = true,
      paramLabel = "FORMAT",
      description = "Output format: npy (version 1.0, '<f4', C order), word2vec (text, values that parse back exactly), word2vec-bin,"
          + " safetensors (one F32 tensor [V, C]).")
  String to;

  @Option(names = "--tensor", paramLabel = "NAME", description = "safetensors: the tensor's name (default: embedding), e.g. wte.weight.")
  String tensor;

  @Option(names = "--table", required = true, paramLabel = "TABLE", description = Cli.TABLE_HELP)
  String table;

  @Option(names = "--output", required = true, paramLabel = "FILE", description = "The file to write; must not exist.")
  Path output;

  @Option(names = "--dtype", defaultValue = "float32", paramLabel = "TYPE",
      description = "Values written: float32 (default; every table decoded exactly), float16 (npy '<f2', safetensors F16) or bfloat16 (safetensors BF16);"
          + " 16-bit values rounded to nearest even (the stored bits of a table of that type).")
  String dtype;

  @Override
  public int order() {
    return 110;
  }

  @Override
  public Integer call() throws Exception {
    long start = System.nanoTime();
    long bytes;
    try (BufferAllocator allocator = new RootAllocator()) {
      bytes = Exporter.run(ExportFormat.of(to), TableLocation.of(table), output, tensor, Cli.valueType(dtype), allocator);
    }
    double secs = (System.nanoTime() - start) / 1e9;
    spec.commandLine().getOut().printf(Locale.ROOT, "exported %s to %s: %d bytes in %.1f s%n", table, output, bytes, secs);
    spec.commandLine().getOut().flush();
    return Cli.EXIT_OK;
  }
}
