package io.embstore.cli;

import io.embstore.format.Tokenizer;
import io.embstore.shard.EmbeddingClient;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code embstore lookup}: prints one line per requested id or token, in request order: the id or
 * token, a tab, then the C values separated by single spaces ({@link Float#toString}, which parses
 * back to the same float32). With {@code --text}, one line per token of the text: its id, a tab,
 * its vocabulary token, a tab, the values.
 */
@Command(name = "lookup", mixinStandardHelpOptions = true, description = "Look up rows by id or token from shard servers.")
public final class LookupCommand implements Callable<Integer>, Subcommand {
  @Mixin ClientOptions client;

  @ArgGroup(exclusive = true, multiplicity = "1")
  Query query;

  static final class Query {
    @Option(names = "--ids", split = ",", description = "Ids, e.g. 1,2,3.")
    long[] ids;

    @Option(names = "--tokens", split = ",", description = "Tokens of the table's vocabulary, e.g. king,queen.")
    String[] tokens;

    @Option(
        names = "--text",
        description = "Text, tokenized as the table records (gpt2: GPT-2's byte-pair encoding; a table without a tokenizer:"
            + " whitespace-separated vocabulary tokens); one line per token: id, token, row.")
    String text;
  }

  /**
   * The bearer token under its old name. Deprecated: {@code --token} names the query token in
   * {@code nearest} and {@code inspect}; kept hidden for one release, with a warning.
   */
  @Deprecated
  @Option(names = "--token", hidden = true, description = "Deprecated alias of --auth-token.")
  String token;

  @Option(names = "--stored-rows", description = "Ask the servers for rows as the table stores them (float16, bfloat16: 2 bytes a value;"
      + " int8: C + 8 bytes a row) and decode them here, to the same float32 values: fewer bytes on the wire. No effect on float32 tables.")
  boolean storedRows;

  @Spec CommandSpec spec;

  @Override
  public int order() {
    return 210;
  }

  @Override
  public Integer call() throws Exception {
    if (token != null) {
      spec.commandLine().getErr().println("embstore lookup: --token is deprecated and will be removed; use --auth-token");
      spec.commandLine().getErr().flush();
    }
    try (EmbeddingClient c = client.connect(token, storedRows)) {
      Tokenizer tokenizer = query.text == null ? null : Tokenizer.forTable(c.manifest(), c.vocabulary());
      long[] ids = query.ids != null ? query.ids : tokenizer != null ? tokenizer.encodeKnown(query.text) : c.tokenIds(query.tokens);
      int dim = c.dim();
      float[] rows = new float[ids.length * dim];
      c.lookup(ids, rows);
      PrintWriter out = spec.commandLine().getOut();
      StringBuilder line = new StringBuilder();
      for (int i = 0; i < ids.length; i++) {
        line.setLength(0);
        if (tokenizer != null) {
          line.append(ids[i]).append('\t').append(tokenizer.token(ids[i])).append('\t');
        } else {
          line.append(query.ids != null ? Long.toString(ids[i]) : query.tokens[i]).append('\t');
        }
        for (int k = 0; k < dim; k++) {
          if (k > 0) {
            line.append(' ');
          }
          line.append(rows[i * dim + k]);
        }
        out.println(line);
      }
      out.flush();
    }
    return 0;
  }
}
