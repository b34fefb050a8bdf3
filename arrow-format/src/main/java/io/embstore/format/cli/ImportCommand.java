package io.embstore.format.cli;

import io.embstore.format.TableManifest;
import io.embstore.format.convert.ImportFormat;
import io.embstore.format.convert.Importer;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code embstore import}: a matrix file into a new table. */
@Command(
    name = "import",
    mixinStandardHelpOptions = true,
    description = {
      "Imports a matrix file into a new table directory (streaming: memory does not grow with the number of rows).",
      "Bad input (wrong dtype or shape, truncated file, ragged rows, duplicate tokens, NaN/Inf) is rejected"
          + " with the reason, and no output directory is left behind. Gzip-compressed input is read transparently."
    })
public final class ImportCommand implements Callable<Integer>, Subcommand {
  @Spec CommandSpec spec;

  @Option(
      names = "--from",
      required = true,
      paramLabel = "FORMAT",
      description = "Input format: npy (2-D little-endian float32, C order), word2vec (text), word2vec-bin, glove (text without header).")
  String from;

  @Option(names = "--input", required = true, paramLabel = "FILE", description = "The matrix file (may be .gz).")
  Path input;

  @Option(
      names = "--vocab",
      paramLabel = "TOKENS.txt",
      description = "npy only: token file, UTF-8, one token per line, line i = id i; must have one line per row.")
  Path vocab;

  @Option(names = "--shards", required = true, paramLabel = "P", description = "Number of shards, 1..V.")
  int shards;

  @Option(
      names = "--partitioner",
      defaultValue = "modulo",
      paramLabel = "NAME",
      description = "modulo (id mod P; default: spreads the hot low ids of frequency-sorted vocabularies) or range (contiguous blocks).")
  String partitioner;

  @Option(names = "--output", required = true, paramLabel = "TABLE_DIR", description = "The table directory to create; must not exist.")
  Path output;

  @Option(names = "--allow-non-finite", description = "Keep NaN and infinite values instead of rejecting the file.")
  boolean allowNonFinite;

  @Override
  public int order() {
    return 100;
  }

  @Override
  public Integer call() throws Exception {
    long start = System.nanoTime();
    TableManifest m;
    try (BufferAllocator allocator = new RootAllocator()) {
      m =
          Importer.run(
              new Importer.Options(
                  ImportFormat.of(from), input, vocab, shards, partitioner, output, allowNonFinite,
                  spec.commandLine().getErr()),
              allocator);
    }
    double secs = (System.nanoTime() - start) / 1e9;
    spec.commandLine()
        .getOut()
        .printf(
            Locale.ROOT,
            "imported %s: %d rows x %d dims into %s (%d %s shards%s) in %.1f s, %.0f MB/s%n",
            input.getFileName(),
            m.rows(),
            m.dim(),
            output,
            m.numShards(),
            m.partitioner().name(),
            m.hasVocabulary() ? ", vocabulary of " + m.rows() + " tokens" : "",
            secs,
            m.embeddingBytes() / 1e6 / secs);
    spec.commandLine().getOut().flush();
    return Cli.EXIT_OK;
  }

}
