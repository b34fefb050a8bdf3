package io.embstore.shard;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.Result;
import org.apache.arrow.flight.auth2.BearerCredentialWriter;
import org.apache.arrow.flight.grpc.CredentialCallOption;
import org.apache.arrow.memory.BufferAllocator;

/**
 * The Flight {@code health} action of one shard server, asked on a connection of its own: for
 * readiness probes ({@code embstore health}) and for the training driver, which tells a lost shard
 * server from a failed task this way. Needs no table, unlike {@link EmbeddingClient}.
 */
public final class ShardHealth {
  private ShardHealth() {}

  /**
   * Returns normally when the server at {@code endpoint} answers {@code "status":"ok"} within
   * {@code deadlineMs}; throws an {@link IOException} naming the endpoint and the reason otherwise.
   *
   * @param bearer the bearer token, or null
   */
  public static void check(BufferAllocator allocator, String endpoint, long deadlineMs, String bearer) throws IOException {
    check(allocator, endpoint, deadlineMs, bearer, null, null, null);
  }

  /**
   * As {@link #check(BufferAllocator, String, long, String)}, for {@code grpc+tls://} endpoints with
   * {@code trustedPem} certificates to trust (null: the JVM's) and a client certificate chain and
   * PKCS#8 key for servers that require one (both null: none).
   */
  public static void check(BufferAllocator allocator, String endpoint, long deadlineMs, String bearer,
      byte[] trustedPem, byte[] clientCertPem, byte[] clientKeyPem) throws IOException {
    if (deadlineMs < 1) {
      throw new IllegalArgumentException("Cannot check health of " + endpoint + ": deadline " + deadlineMs + " ms (must be at least 1)");
    }
    Location location = location(endpoint);
    List<CallOption> options = new ArrayList<>();
    options.add(CallOptions.timeout(deadlineMs, TimeUnit.MILLISECONDS));
    if (bearer != null) {
      options.add(new CredentialCallOption(new BearerCredentialWriter(bearer)));
    }
    FlightClient.Builder builder = FlightClient.builder(allocator, location);
    if (trustedPem != null) {
      builder.trustedCertificates(new ByteArrayInputStream(trustedPem));
    }
    if (clientCertPem != null) {
      builder.clientCertificate(new ByteArrayInputStream(clientCertPem), new ByteArrayInputStream(clientKeyPem));
    }
    try (FlightClient client = builder.build()) {
      Iterator<Result> results = client.doAction(new Action("health"), options.toArray(new CallOption[0]));
      if (!results.hasNext()) {
        throw new IOException("Cannot check health of " + endpoint + ": empty answer");
      }
      String body = new String(results.next().getBody(), StandardCharsets.UTF_8);
      while (results.hasNext()) {
        results.next();
      }
      if (!body.replace(" ", "").contains("\"status\":\"ok\"")) {
        throw new IOException("Cannot check health of " + endpoint + ": answer " + body + " (expected status ok)");
      }
    } catch (FlightRuntimeException e) {
      throw new IOException("Cannot check health of " + endpoint + ": " + e.status().code()
          + (e.getMessage() == null ? "" : " " + e.getMessage()), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("Cannot check health of " + endpoint + ": interrupted", e);
    }
  }

  /** Parses {@code grpc+tcp://HOST:PORT} or {@code grpc+tls://HOST:PORT}. */
  public static Location location(String endpoint) {
    try {
      URI uri = new URI(endpoint);
      if (uri.getScheme() == null || uri.getHost() == null || uri.getPort() < 0) {
        throw new IllegalArgumentException(
            "Cannot use endpoint: " + endpoint + " (expected grpc+tcp://HOST:PORT or grpc+tls://HOST:PORT)");
      }
      return new Location(uri);
    } catch (URISyntaxException e) {
      throw new IllegalArgumentException(
          "Cannot use endpoint: " + endpoint + " (expected grpc+tcp://HOST:PORT or grpc+tls://HOST:PORT)", e);
    }
  }
}
