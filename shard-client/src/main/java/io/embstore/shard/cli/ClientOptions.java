package io.embstore.shard.cli;

import io.embstore.shard.EmbeddingClient;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine.Option;

/** Options shared by the commands that talk to shard servers. */
final class ClientOptions {
  @Option(names = "--table", required = true, description = "Table directory (manifest and vocabulary).")
  Path table;

  @Option(names = "--endpoints", required = true, split = ",", description = "Shard servers, grpc+tcp://HOST:PORT[,...].")
  List<String> endpoints;

  @Option(names = "--auth-token", description = "Bearer token (or env EMBSTORE_TOKEN).")
  String authToken;

  @Option(names = "--tls-ca", description = "PEM certificates to trust for grpc+tls:// endpoints (default: the JVM's).")
  Path tlsCa;

  @Option(names = "--tls-cert", description = "PEM client certificate chain, for servers that require one (with --tls-key).")
  Path tlsCert;

  @Option(names = "--tls-key", description = "PKCS#8 PEM private key of --tls-cert.")
  Path tlsKey;

  @Option(names = "--deadline-ms", defaultValue = "30000", description = "Deadline per call in ms (default: ${DEFAULT-VALUE}).")
  long deadlineMs;

  EmbeddingClient connect(String token) throws IOException {
    EmbeddingClient.Builder b = EmbeddingClient.builder().table(table).endpoints(endpoints)
        .deadline(java.time.Duration.ofMillis(deadlineMs));
    String t = token != null ? token : authToken != null ? authToken : System.getenv("EMBSTORE_TOKEN");
    if (t != null) {
      b.token(t);
    }
    if ((tlsCert == null) != (tlsKey == null)) {
      throw new IllegalArgumentException("Cannot connect: --tls-cert and --tls-key go together");
    }
    if (tlsCa != null) {
      b.trustedCertificates(Files.readAllBytes(tlsCa));
    }
    if (tlsCert != null) {
      b.clientCertificate(Files.readAllBytes(tlsCert), Files.readAllBytes(tlsKey));
    }
    return b.build();
  }
}
