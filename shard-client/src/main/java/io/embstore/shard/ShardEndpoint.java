package io.embstore.shard;

import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import io.netty.handler.ssl.SslContextBuilder;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightGrpcUtils;
import org.apache.arrow.flight.Result;
import org.apache.arrow.flight.auth2.BearerCredentialWriter;
import org.apache.arrow.flight.grpc.CredentialCallOption;
import org.apache.arrow.memory.BufferAllocator;

/**
 * One shard server as a client reaches it: its URI ({@code grpc+tcp://HOST:PORT} or {@code
 * grpc+tls://HOST:PORT}), a gRPC channel built for it (TLS and client certificates from {@link
 * Credentials}), the Flight client over that channel, and the call options that carry the bearer
 * token. Shared by the routing client's Flight transport and the health probe.
 *
 * <p>The endpoint owns its channel (instead of {@code FlightClient.builder}) so that a retry can
 * reset the channel's reconnect backoff ({@link #reconnect}): after a server restart the channel may
 * still be in backoff (growing up to minutes) and would fail every new stream fast meanwhile.
 */
final class ShardEndpoint implements AutoCloseable {
  /** Longest wait for a reconnect before a retry. */
  static final long RECONNECT_WAIT_NANOS = 500_000_000L;

  /** A bearer token and TLS material (PEM); any may be null. */
  record Credentials(String bearer, byte[] trustedCertificates, byte[] clientCertificate, byte[] clientKey) {
    static final Credentials NONE = new Credentials(null, null, null, null);
  }

  final String uri;
  final ManagedChannel channel;
  final FlightClient client;
  /** Options of long-lived streams: the credentials, no gRPC deadline (requests enforce their own). */
  final CallOption[] streamOptions;
  private final CallOption[] callOptions;

  /** Options of unary calls and searches: the credentials and the call deadline. */
  CallOption[] callOptions() {
    return callOptions;
  }

  private ShardEndpoint(String uri, ManagedChannel channel, FlightClient client, CallOption[] streamOptions,
      CallOption[] callOptions) {
    this.uri = uri;
    this.channel = channel;
    this.client = client;
    this.streamOptions = streamOptions;
    this.callOptions = callOptions;
  }

  /** Checks the syntax of {@code uri}; throws IllegalArgumentException naming it and the expected form. */
  static URI parse(String uri) {
    URI u;
    try {
      u = new URI(uri);
    } catch (URISyntaxException e) {
      throw new IllegalArgumentException("Cannot use endpoint '" + uri + "': not a URI (expected grpc+tcp://HOST:PORT)", e);
    }
    if (!"grpc+tcp".equals(u.getScheme()) && !"grpc+tls".equals(u.getScheme()) && !"grpc".equals(u.getScheme())) {
      throw new IllegalArgumentException("Cannot use endpoint '" + uri + "': scheme '" + u.getScheme()
          + "' (expected grpc+tcp://HOST:PORT or grpc+tls://HOST:PORT)");
    }
    if (u.getHost() == null || u.getPort() < 0) {
      throw new IllegalArgumentException("Cannot use endpoint '" + uri + "': no host or port (expected grpc+tcp://HOST:PORT)");
    }
    return u;
  }

  /**
   * Builds the channel and Flight client for {@code uri} (connecting lazily); {@code callDeadlineMs}
   * bounds each unary call (actions).
   */
  static ShardEndpoint connect(String uri, Credentials credentials, long callDeadlineMs, BufferAllocator allocator) {
    URI u = parse(uri);
    NettyChannelBuilder cb = NettyChannelBuilder.forAddress(u.getHost(), u.getPort()).maxInboundMessageSize(Integer.MAX_VALUE);
    if ("grpc+tls".equals(u.getScheme())) {
      try {
        SslContextBuilder ssl = GrpcSslContexts.forClient();
        if (credentials.trustedCertificates() != null) {
          ssl.trustManager(new ByteArrayInputStream(credentials.trustedCertificates()));
        }
        if (credentials.clientCertificate() != null) {
          ssl.keyManager(new ByteArrayInputStream(credentials.clientCertificate()), new ByteArrayInputStream(credentials.clientKey()));
        }
        cb.useTransportSecurity().sslContext(ssl.build());
      } catch (javax.net.ssl.SSLException | IllegalArgumentException e) {
        throw new IllegalArgumentException("Cannot use endpoint '" + uri + "': TLS setup failed: " + e.getMessage(), e);
      }
    } else {
      cb.usePlaintext();
    }
    // Replies are handed from the Netty event loop straight to the stream's queue (Flight's reader
    // only enqueues them) instead of via gRPC's default executor: one thread hand-off less per reply.
    cb.directExecutor();
    ManagedChannel channel = cb.build();
    List<CallOption> opts = new ArrayList<>();
    if (credentials.bearer() != null) {
      opts.add(new CredentialCallOption(new BearerCredentialWriter(credentials.bearer())));
    }
    CallOption[] stream = opts.toArray(new CallOption[0]);
    opts.add(CallOptions.timeout(callDeadlineMs, TimeUnit.MILLISECONDS));
    try {
      return new ShardEndpoint(uri, channel, FlightGrpcUtils.createFlightClient(allocator, channel), stream,
          opts.toArray(new CallOption[0]));
    } catch (RuntimeException e) {
      channel.shutdownNow();
      throw e;
    }
  }

  /** Runs action {@code type} with {@code body}; returns the body of its one result (FlightRuntimeException on failure). */
  byte[] action(String type, byte[] body) {
    Iterator<Result> it = client.doAction(new Action(type, body), callOptions);
    if (!it.hasNext()) {
      throw ShardErrors.internal("Cannot run action " + type + " on " + uri + ": no result", null);
    }
    byte[] bytes = it.next().getBody();
    while (it.hasNext()) {
      it.next();
    }
    return bytes;
  }

  /**
   * Before a retry: skips the channel's reconnect backoff and waits (up to {@link
   * #RECONNECT_WAIT_NANOS} and the deadline) until it is connected. A channel that failed stays
   * failed (fails new streams fast) until a new connection is up, so an immediate retry would fail
   * even when the server is back.
   */
  void reconnect(long deadline) {
    channel.resetConnectBackoff();
    long until = Math.min(deadline, System.nanoTime() + RECONNECT_WAIT_NANOS);
    while (channel.getState(true) != ConnectivityState.READY && System.nanoTime() < until) {
      LockSupport.parkNanos(1_000_000);
    }
  }

  /** Closes the Flight client, which shuts the channel down. */
  @Override
  public void close() throws InterruptedException {
    client.close();
  }
}
