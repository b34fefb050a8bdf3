package io.embstore.cli;

import io.embstore.format.Resharder;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.ValueType;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code embstore convert}: a table's rows into a new table of another value type. */
@Command(
    name = "convert",
    mixinStandardHelpOptions = true,
    description = {
      "Writes the rows of a table into a new table of another value type (float32, float16, bfloat16, int8), with the same shards,"
          + " partitioner, optimizer state (float32) and vocabulary (streaming: memory does not grow with the number of rows).",
      "16-bit values widen exactly to float32; float32 narrows with round to nearest even. int8 (a read-only serving copy) quantizes each"
          + " row to C codes plus a float32 scale and bias; from int8, rows are decoded (code * scale + bias). Input and output may be on any storage."
    })
public final class ConvertCommand implements Callable<Integer>, Subcommand {
  @Spec CommandSpec spec;

  @Option(names = "--table", required = true, paramLabel = "TABLE", description = Cli.TABLE_HELP)
  String table;

  @Option(names = "--dtype", required = true, paramLabel = "TYPE", description = "The new table's value type: float32, float16, bfloat16 or int8.")
  String dtype;

  @Option(names = "--output", required = true, paramLabel = "TABLE", description = "The new table (a directory or a URI); must not exist.")
  String output;

  @Option(names = "--allow-non-finite", description = "float16: store values beyond 65504 as infinity instead of refusing the table.")
  boolean allowNonFinite;

  @Override
  public int order() {
    return 116;
  }

  @Override
  public Integer call() throws Exception {
    ValueType type = Cli.valueType(dtype);
    TableLocation in = TableLocation.of(table);
    TableManifest source = Table.open(in).manifest();
    if (source.valueType() == type) {
      throw new IllegalArgumentException("Cannot convert " + table + ": it already is " + type + " (reshard copies a table)");
    }
    long start = System.nanoTime();
    TableManifest m;
    try (BufferAllocator allocator = new RootAllocator()) {
      if (type == ValueType.FLOAT16 && !allowNonFinite) {
        Resharder.checkFloat16Range(Table.open(in), allocator);
      }
      m = Resharder.run(
          new Resharder.Options(in, TableLocation.of(output), 0, null, type, spec.commandLine().getErr()), allocator);
    }
    double secs = (System.nanoTime() - start) / 1e9;
    spec.commandLine().getOut().printf(Locale.ROOT, "converted %s (%s) into %s: %d rows x %d dims, %s, %d bytes per row, in %.1f s%n",
        table, source.valueType(), output, m.rows(), m.dim(), m.valueType(), m.rowBytes(), secs);
    spec.commandLine().getOut().flush();
    return Cli.EXIT_OK;
  }
}
