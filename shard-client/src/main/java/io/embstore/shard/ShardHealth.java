package io.embstore.shard;

import java.io.IOException;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.Location;
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
    ShardEndpoint.Credentials credentials = new ShardEndpoint.Credentials(bearer, trustedPem, clientCertPem, clientKeyPem);
    ShardEndpoint e = ShardEndpoint.connect(endpoint, credentials, deadlineMs, allocator);
    try {
      Messages.checkHealth(e.action(Protocol.ACTION_HEALTH, new byte[0]), endpoint);
    } catch (FlightRuntimeException ex) {
      throw new IOException("Cannot check health of " + endpoint + ": " + ex.status().code()
          + (ex.getMessage() == null ? "" : " " + ex.getMessage()), ex);
    } finally {
      try {
        e.close();
      } catch (InterruptedException ie) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /**
   * Parses {@code grpc+tcp://HOST:PORT} or {@code grpc+tls://HOST:PORT}; throws
   * IllegalArgumentException naming the endpoint and the expected form otherwise.
   */
  public static Location location(String endpoint) {
    return new Location(ShardEndpoint.parse(endpoint));
  }
}
