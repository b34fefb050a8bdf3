package io.embstore.cli;

import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.convert.ImportFormat;
import io.embstore.format.convert.Importer;
import io.embstore.format.convert.SafetensorsImport;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine;
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
      description = "Input format: npy (2-D little-endian float32, C order), word2vec (text), word2vec-bin, glove (text without header),"
          + " safetensors (one 2-D F32, F16 or BF16 tensor; 16-bit values widened exactly to float32).")
  String from;

  @Option(names = "--input", required = true, paramLabel = "FILE", description = "The matrix file (may be .gz).")
  Path input;

  @Option(
      names = "--vocab",
      paramLabel = "TOKENS.txt",
      description = "npy and safetensors: token file, UTF-8, one token per line, line i = id i; must have one line per row.")
  Path vocab;

  @Option(
      names = "--tokenizer",
      paramLabel = "NAME",
      description = "npy and safetensors: the ids are this tokenizer's (gpt2: GPT-2's 50,257 byte-pair tokens; V must match);"
          + " the table gets its token strings as vocabulary and records it, so lookups by text need no flag.")
  String tokenizer;

  @Option(names = "--tensor", paramLabel = "NAME", description = "safetensors: the 2-D tensor to import, e.g. wte.weight (default: the file's only tensor).")
  String tensor;

  @Option(names = "--list", description = "safetensors: print the file's tensors (name, dtype, shape, bytes) and import nothing.")
  boolean list;

  @Option(names = "--shards", paramLabel = "P", description = "Number of shards, 1..V (required unless --list).")
  Integer shards;

  @Option(
      names = "--partitioner",
      defaultValue = "modulo",
      paramLabel = "NAME",
      description = "modulo (id mod P; default: spreads the hot low ids of frequency-sorted vocabularies) or range (contiguous blocks).")
  String partitioner;

  @Option(names = "--output", paramLabel = "TABLE",
      description = "The table to create: a directory, or a URI (file:, hdfs://NAMENODE/DIR, s3a://BUCKET/DIR); must not exist (required unless --list).")
  String output;

  @Option(names = "--allow-non-finite", description = "Keep NaN and infinite values instead of rejecting the file"
      + " (and, with --dtype float16, values beyond 65504, stored as infinity); refused with --dtype int8.")
  boolean allowNonFinite;

  @Option(names = "--dtype", defaultValue = "float32", paramLabel = "TYPE",
      description = "The table's value type: float32 (default), float16 or bfloat16 (2 bytes a value; float32 input rounded to nearest even,"
          + " 16-bit safetensors of the same dtype kept bit for bit), or int8 (a read-only serving copy: each row quantized to C codes"
          + " plus a float32 scale and bias, C + 8 bytes a row; NaN and infinity refused).")
  String dtype;

  @Override
  public int order() {
    return 100;
  }

  @Override
  public Integer call() throws Exception {
    ImportFormat format = ImportFormat.of(from);
    if (list) {
      if (format != ImportFormat.SAFETENSORS) {
        throw new IllegalArgumentException("Cannot list " + input + ": --list applies to safetensors only");
      }
      SafetensorsImport.list(input).forEach(spec.commandLine().getOut()::println);
      spec.commandLine().getOut().flush();
      return Cli.EXIT_OK;
    }
    if (shards == null || output == null) {
      // Required unless --list, so picocli cannot check them.
      java.util.List<String> missing = new java.util.ArrayList<>();
      if (shards == null) {
        missing.add("'--shards=P'");
      }
      if (output == null) {
        missing.add("'--output=TABLE'");
      }
      throw new CommandLine.ParameterException(
          spec.commandLine(), "Missing required option" + (missing.size() > 1 ? "s: " : ": ") + String.join(", ", missing));
    }
    long start = System.nanoTime();
    TableManifest m;
    try (BufferAllocator allocator = new RootAllocator()) {
      m =
          Importer.run(
              new Importer.Options(
                  format, input, vocab, shards, partitioner, TableLocation.of(output), allowNonFinite,
                  spec.commandLine().getErr(), tensor, tokenizer, Cli.valueType(dtype)),
              allocator);
    }
    double secs = (System.nanoTime() - start) / 1e9;
    spec.commandLine()
        .getOut()
        .printf(
            Locale.ROOT,
            "imported %s: %d rows x %d dims%s into %s (%d %s shards%s) in %.1f s, %.0f MB/s%n",
            input.getFileName(),
            m.rows(),
            m.dim(),
            m.valueType().isCompact() ? " as " + m.valueType() : "",
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
