package io.embstore.shard.cli;

import io.embstore.format.cli.Subcommand;
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
 * {@code embstore nearest}: exact cosine nearest neighbours of a row, one line per neighbour: the
 * id (or token, when the query was a token), a tab, the cosine similarity.
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
      long id = query.id != null ? query.id : c.tokenIds(query.token)[0];
      List<Neighbor> result = c.nearest(id, k);
      PrintWriter out = spec.commandLine().getOut();
      for (Neighbor n : result) {
        String name = query.token != null ? c.vocabulary().token(n.id()) : Long.toString(n.id());
        out.println(name + "\t" + n.similarity());
      }
      out.flush();
    }
    return 0;
  }
}
