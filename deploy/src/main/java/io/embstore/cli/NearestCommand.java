package io.embstore.cli;

import io.embstore.format.Tokenizer;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Neighbor;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code embstore nearest}: exact cosine nearest neighbours of a row (or of the mean row of a
 * text's tokens), one line per neighbour: the id (or token, when the query was a token or text), a
 * tab, the cosine similarity.
 */
@Command(name = "nearest", mixinStandardHelpOptions = true, description = "Exact cosine nearest neighbours of an id or token.")
public final class NearestCommand implements Callable<Integer>, Subcommand {
  @Mixin ClientOptions client;

  @ArgGroup(exclusive = true, multiplicity = "1")
  Query query;

  static final class Query {
    @Option(names = "--id", description = "Query id.")
    Long id;

    @Option(names = "--token", description = "Query token (needs the table's vocabulary).")
    String token;

    @Option(
        names = "--text",
        description = "Query text, tokenized as the table records (see lookup --text): one token queries its row (itself excluded),"
            + " several the mean of their rows.")
    String text;
  }

  @Option(names = "-k", defaultValue = "10", description = "Neighbours to print (default: ${DEFAULT-VALUE}).")
  int k;

  @Spec CommandSpec spec;

  @Override
  public int order() {
    return 220;
  }

  @Override
  public Integer call() throws Exception {
    try (EmbeddingClient c = client.connect(null)) {
      List<Neighbor> result;
      Tokenizer tokenizer = null;
      if (query.text != null) {
        tokenizer = Tokenizer.forTable(c.manifest(), c.vocabulary());
        long[] ids = tokenizer.encodeKnown(query.text);
        result = ids.length == 1 ? c.nearest(ids[0], k) : c.nearest(mean(c, ids), k);
      } else {
        result = c.nearest(query.id != null ? query.id : c.tokenIds(query.token)[0], k);
      }
      PrintWriter out = spec.commandLine().getOut();
      for (Neighbor n : result) {
        String name = tokenizer != null ? tokenizer.token(n.id()) : query.token != null ? c.vocabulary().token(n.id()) : Long.toString(n.id());
        out.println(name + "\t" + n.similarity());
      }
      out.flush();
    }
    return 0;
  }

  /** The mean of the rows of {@code ids}. */
  private static float[] mean(EmbeddingClient c, long[] ids) throws java.io.IOException {
    int dim = c.dim();
    float[] rows = new float[ids.length * dim];
    c.lookup(ids, rows);
    float[] mean = new float[dim];
    for (int i = 0; i < ids.length; i++) {
      for (int d = 0; d < dim; d++) {
        mean[d] += rows[i * dim + d];
      }
    }
    for (int d = 0; d < dim; d++) {
      mean[d] /= ids.length;
    }
    return mean;
  }
}
