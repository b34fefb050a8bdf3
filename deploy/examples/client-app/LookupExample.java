// An application that reads embeddings from running embstore shard servers.
//
// Run it without a build step (Java 17 runs a single source file), from the distribution folder:
//
//   java --add-opens=java.base/java.nio=ALL-UNNAMED \
//     -cp client/embstore-client-VERSION.jar examples/client-app/LookupExample.java \
//     TABLE_DIR grpc+tcp://127.0.0.1:PORT1,grpc+tcp://127.0.0.1:PORT2 king queen whale
//
// In a Maven/Gradle project depend on io.embstore:embstore-shard-client instead of the jar (the
// client jar relocates gRPC, Protobuf, Guava, Netty and Jackson; Arrow stays as it is because it is
// part of the API). The `--add-opens` is what Arrow's memory needs on Java 17.
import io.embstore.format.Vocabulary;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Neighbor;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

public class LookupExample {
  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: LookupExample TABLE_DIR ENDPOINT[,ENDPOINT...] [TOKEN...]");
      System.exit(2);
    }
    Path table = Path.of(args[0]);
    // The client needs only the table's manifest (and vocabulary); it asks each endpoint which
    // shards it hosts and routes every id to its owner.
    List<String> endpoints = Arrays.asList(args[1].split(","));
    String[] tokens =
        args.length > 2 ? Arrays.copyOfRange(args, 2, args.length) : new String[] {"king", "queen"};

    try (BufferAllocator root = new RootAllocator();
        EmbeddingClient client =
            EmbeddingClient.builder().table(table).endpoints(endpoints).allocator(root).build()) {
      Vocabulary vocab = client.vocabulary();
      int dim = client.dim();
      float[] rows = client.lookupTokens(tokens); // one request per shard, duplicates removed
      for (int i = 0; i < tokens.length; i++) {
        float[] row = Arrays.copyOfRange(rows, i * dim, (i + 1) * dim);
        StringBuilder line = new StringBuilder(tokens[i]).append(":");
        // nearest(vector) includes the token itself, so ask for one more and skip it
        for (Neighbor n : client.nearest(row, 6)) {
          String t = vocab.token(n.id());
          if (!t.equals(tokens[i])) {
            line.append(String.format(" %s(%.2f)", t, n.similarity()));
          }
        }
        System.out.println(line);
      }
    }
  }
}
