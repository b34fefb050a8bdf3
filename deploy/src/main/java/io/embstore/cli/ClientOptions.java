package io.embstore.cli;

import io.embstore.shard.EmbeddingClient;
import java.io.IOException;
import io.embstore.format.TableLocation;
import java.util.List;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Options shared by the commands that talk to shard servers. */
final class ClientOptions {
  @Option(names = "--table", required = true, paramLabel = "TABLE",
      description = "The table (manifest and vocabulary): a directory, or a URI (file:, hdfs://NAMENODE/DIR, s3a://BUCKET/DIR).")
  String table;

  @Option(names = "--endpoints", required = true, split = ",", description = "Shard servers, grpc+tcp://HOST:PORT[,...].")
  List<String> endpoints;

  @Option(names = "--auth-token", description = "Bearer token (or env EMBSTORE_TOKEN).")
  String authToken;

  @Mixin TlsClientOptions tls;

  @Option(names = "--deadline-ms", defaultValue = "30000", description = "Deadline per call in ms (default: ${DEFAULT-VALUE}).")
  long deadlineMs;

  EmbeddingClient connect(String token) throws IOException {
    return connect(token, false);
  }

  /** {@link #connect(String)}; {@code storedRows}: lookups ask for rows as stored ({@link EmbeddingClient.Builder#storedRowsOnWire}). */
  EmbeddingClient connect(String token, boolean storedRows) throws IOException {
    EmbeddingClient.Builder b = EmbeddingClient.builder().table(TableLocation.of(table)).endpoints(endpoints)
        .deadline(java.time.Duration.ofMillis(deadlineMs)).storedRowsOnWire(storedRows);
    String t = token != null ? token : authToken != null ? authToken : System.getenv("EMBSTORE_TOKEN");
    if (t != null) {
      b.token(t);
    }
    tls.check("connect");
    if (tls.trusted() != null) {
      b.trustedCertificates(tls.trusted());
    }
    if (tls.certificate() != null) {
      b.clientCertificate(tls.certificate(), tls.key());
    }
    return b.build();
  }
}
