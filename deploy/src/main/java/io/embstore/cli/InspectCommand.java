package io.embstore.cli;

import io.embstore.format.Checksums;
import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.Vocabulary;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code embstore inspect}: the manifest in short, or one row. */
@Command(
    name = "inspect",
    mixinStandardHelpOptions = true,
    description = {
      "Shows a table's manifest in short (shape, partitioner, shards, vocabulary, creation).",
      "With --id or --token prints one row as 'id-or-token<TAB>v1 v2 ... vC' (values in Java's Float.toString form,"
          + " which parses back to the same float32)."
    })
public final class InspectCommand implements Callable<Integer>, Subcommand {
  @Spec CommandSpec spec;

  @Option(names = "--table", required = true, paramLabel = "TABLE", description = Cli.TABLE_HELP)
  String table;

  @ArgGroup(exclusive = true)
  Row row;

  static final class Row {
    @Option(names = "--id", paramLabel = "N", description = "Print the row of id N.")
    Long id;

    @Option(names = "--token", paramLabel = "T", description = "Print the row of token T (the table needs a vocabulary).")
    String token;
  }

  @Override
  public int order() {
    return 120;
  }

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    Table t = Table.open(table);
    TableManifest m = t.manifest();
    if (row == null) {
      summary(m, out);
    } else {
      try (BufferAllocator allocator = new RootAllocator()) {
        long id;
        String label;
        if (row.token != null) {
          Vocabulary v = t.vocabulary(allocator);
          if (v == null) {
            throw new IllegalArgumentException(
                "Cannot look up token '" + row.token + "': the table " + table + " has no vocabulary (use --id)");
          }
          id = v.requireId(row.token);
          label = row.token;
        } else {
          id = row.id;
          label = Long.toString(id);
        }
        float[] values = new float[m.dim()];
        t.readRow(id, values, allocator);
        StringBuilder sb = new StringBuilder(label).append('\t');
        for (int c = 0; c < values.length; c++) {
          sb.append(c > 0 ? " " : "").append(Float.toString(values[c]));
        }
        out.println(sb);
      }
    }
    out.flush();
    return Cli.EXIT_OK;
  }

  private void summary(TableManifest m, PrintWriter out) {
    out.printf(Locale.ROOT, "table        %s%n", table);
    out.printf(Locale.ROOT, "format       embstore-table %d, table version %d%n", m.formatVersion(), m.tableVersion());
    out.printf(Locale.ROOT, "shape        %d rows (V) x %d dims (C), %s, %s, %d bytes per row%n", m.rows(), m.dim(), m.valueType(), mb(m.embeddingBytes()), m.rowBytes());
    out.printf(Locale.ROOT, "partitioner  %s, %d shards%n", m.partitioner().name(), m.numShards());
    for (TableManifest.ShardEntry s : m.shards()) {
      out.printf(
          Locale.ROOT,
          "  shard %-5d %s  %d rows, ids %d..%d, %s, crc32c %s%n",
          s.index(), s.file(), s.rows(), s.minId(), s.maxId(), mb(s.bytes()), Checksums.hex(s.crc32c()));
    }
    List<TableManifest.FileEntry> vocab = m.vocabularyFiles();
    if (vocab.isEmpty()) {
      out.println("vocabulary   none");
    } else if (vocab.size() == 1) {
      out.printf(
          Locale.ROOT,
          "vocabulary   %s  %d tokens, %s, crc32c %s%n",
          vocab.get(0).file(), vocab.get(0).rows(), mb(vocab.get(0).bytes()), Checksums.hex(vocab.get(0).crc32c()));
    } else {
      out.printf(Locale.ROOT, "vocabulary   %d tokens in %d files, %s%n", m.rows(), vocab.size(),
          mb(vocab.stream().mapToLong(TableManifest.FileEntry::bytes).sum()));
      for (int i = 0; i < vocab.size(); i++) {
        TableManifest.FileEntry f = vocab.get(i);
        long first = m.vocabularyFirstId(i);
        out.printf(Locale.ROOT, "  %s  %d tokens, ids %d..%d, %s, crc32c %s%n",
            f.file(), f.rows(), first, first + f.rows() - 1, mb(f.bytes()), Checksums.hex(f.crc32c()));
      }
    }
    if (m.optimizer() != null) {
      out.printf(Locale.ROOT, "optimizer    %s %s, state %s, step %d%n", m.optimizer().name(), m.optimizer().params(), m.optimizer().stateColumns(), m.optimizer().step());
    }
    out.printf(Locale.ROOT, "created      %s%n", join(m.created()));
    if (!m.properties().isEmpty()) {
      out.printf(Locale.ROOT, "properties   %s%n", join(m.properties()));
    }
  }

  private static String join(Map<String, String> map) {
    StringBuilder sb = new StringBuilder();
    map.forEach((k, v) -> sb.append(sb.length() > 0 ? ", " : "").append(k).append('=').append(v));
    return sb.toString();
  }

  private static String mb(long bytes) {
    return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
  }
}
