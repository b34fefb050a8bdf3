package io.embstore.shard;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.embstore.format.Partitioner;
import io.embstore.format.Table;
import io.embstore.format.TableFormat;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.FlightClient;
import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import io.netty.handler.ssl.SslContextBuilder;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightGrpcUtils;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.Result;
import org.apache.arrow.flight.auth2.BearerCredentialWriter;
import org.apache.arrow.flight.grpc.CredentialCallOption;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.apache.arrow.util.AutoCloseables;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Routes lookups and sparse updates to the shard servers that own each id (the table's {@link
 * Partitioner}), one request per shard per call, all shards in parallel. Thread-safe.
 *
 * <p>Each call deduplicates its ids (an open-addressing map, no boxing), sends every shard one
 * request batch (several only when a shard's part exceeds the server's limits) on a long-lived
 * DoExchange stream taken from a pool per (endpoint, op, shard) ({@link ExchangePool}: opening a
 * stream per call cost several round trips), and copies the reply rows straight into the caller's
 * array or Arrow buffer in request order. Streams are pipelined: concurrent requests share a stream
 * without waiting for each other's replies, which come back in order; a blocking caller sends all
 * its shard batches from its own thread and reads its replies itself. Every call has a deadline,
 * enforced per request. Lookups are retried once, on a new stream, when a server is UNAVAILABLE;
 * updates are never retried, so an update is applied at most once. Async lookups of one shard are
 * micro-batched into one exchange message; replies nobody waits for are read on a fixed pool of
 * {@link #THREADS} threads.
 */
public final class EmbeddingClient implements AutoCloseable {
  private final TableManifest initialManifest;
  private volatile TableManifest manifest;
  private final Path tableDir;
  private final Vocabulary vocabulary;
  private final Partitioner partitioner;
  private final int dim;
  private final long rowBytes;
  /** Most ids of one async micro-batch: {@link #BATCH_IDS}, fewer for rows so wide that {@link #MAX_BATCH_BYTES} binds. */
  private final int batchIds;
  private final BufferAllocator ownedRoot;
  private final BufferAllocator allocator;
  /** Set by {@link #close}: later calls fail with a clear error instead of a rejected task. */
  private volatile boolean closed;
  private final List<Endpoint> endpoints;
  private final Endpoint[] byShard;
  private final CallOption[] options;
  /** Options of long-lived streams: the credentials, no gRPC deadline (requests enforce their own). */
  private final CallOption[] streamOptions;
  private final long deadlineNanos;
  private final ExecutorService executor;
  private final ScheduledExecutorService timer;
  private final ExchangePool[] lookupPools;
  private final ExchangePool[] updatePools;
  /** For shard s: its server when it runs in this JVM and {@link Builder#inProcessShards} is on, else null. */
  private final ShardServer[] inProcess;
  private final Batcher[] batchers;
  private final Schema lookupReply;
  private final Schema updateReply = Protocol.updateReply();
  /** The last learning rate's app metadata: a trainer sends one rate for many calls in a row. */
  private volatile LrMetadata lastLr = new LrMetadata(Float.NaN, null);

  /** One server: its Flight client and the limits it announced in {@code describe}. */
  static final class Endpoint {
    final String uri;
    final FlightClient client;
    final ManagedChannel channel;
    int maxIds = ShardServer.DEFAULT_MAX_IDS;
    int maxMessageBytes = ShardServer.DEFAULT_MAX_MESSAGE_BYTES;
    final List<Integer> shards = new ArrayList<>();

    Endpoint(String uri, FlightClient client, ManagedChannel channel) {
      this.uri = uri;
      this.client = client;
      this.channel = channel;
    }
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Configures a client; {@link #build()} connects and asks every endpoint what it hosts. */
  public static final class Builder {
    private Path table;
    private TableManifest manifest;
    private List<String> endpoints = List.of();
    private BufferAllocator parent;
    private Duration deadline = Duration.ofSeconds(30);
    private String token;
    private byte[] trustedCertificates;
    private byte[] clientCertificate;
    private byte[] clientKey;
    private boolean inProcessShards;

    private Builder() {}

    /** The table's manifest (and vocabulary, if it has one) from its directory. */
    public Builder table(Path dir) {
      this.table = dir;
      return this;
    }

    /** The manifest, e.g. of shards created in memory (alternative to {@link #table}). */
    public Builder manifest(TableManifest m) {
      this.manifest = m;
      return this;
    }

    /** Shard server endpoints ({@code grpc+tcp://HOST:PORT}); each is asked which shards it hosts. */
    public Builder endpoints(List<String> uris) {
      this.endpoints = List.copyOf(uris);
      return this;
    }

    public Builder allocator(BufferAllocator parent) {
      this.parent = parent;
      return this;
    }

    /** Deadline of every call; default 30 s. */
    public Builder deadline(Duration d) {
      this.deadline = d;
      return this;
    }

    /** Bearer token sent with every call. */
    public Builder token(String bearer) {
      this.token = bearer;
      return this;
    }

    /** PEM certificates to trust for {@code grpc+tls://} endpoints. */
    public Builder trustedCertificates(byte[] pem) {
      this.trustedCertificates = pem.clone();
      return this;
    }

    /** PEM certificate chain and PKCS#8 private key presented to servers that require client certificates (mutual TLS). */
    public Builder clientCertificate(byte[] certChainPem, byte[] privateKeyPem) {
      this.clientCertificate = certChainPem.clone();
      this.clientKey = privateKeyPem.clone();
      return this;
    }

    /**
     * Whether shards hosted by a {@link ShardServer} of this JVM (started without tokens, or with
     * this client's {@link #token} as its write token) are read and updated in place, without a Flight call: same rows, stripe locks, optimizer and counters as the
     * server's handlers (its {@code stats} count them as {@code inProcessRequests}). Default false:
     * every call goes through Flight. The Spark job turns it on for the shards of its own executor.
     */
    public Builder inProcessShards(boolean on) {
      this.inProcessShards = on;
      return this;
    }

    public EmbeddingClient build() throws IOException {
      if ((table == null) == (manifest == null)) {
        throw new IllegalArgumentException("Cannot build client: give exactly one of table(dir) or manifest(m)");
      }
      if (endpoints.isEmpty()) {
        throw new IllegalArgumentException("Cannot build client: no endpoints");
      }
      if (deadline == null || deadline.isNegative() || deadline.isZero()) {
        throw new IllegalArgumentException("Cannot build client: deadline " + deadline + " (must be positive)");
      }
      return new EmbeddingClient(this);
    }
  }

  private EmbeddingClient(Builder b) throws IOException {
    this.ownedRoot = b.parent == null ? new RootAllocator() : null;
    BufferAllocator parent = b.parent == null ? ownedRoot : b.parent;
    this.allocator = parent.newChildAllocator("embedding-client", 0, Long.MAX_VALUE);
    this.endpoints = new ArrayList<>();
    this.executor = Executors.newFixedThreadPool(THREADS, daemonThreads("embstore-client-"));
    ScheduledThreadPoolExecutor deadlines = new ScheduledThreadPoolExecutor(1, daemonThreads("embstore-client-deadlines-"));
    deadlines.setRemoveOnCancelPolicy(true);
    this.timer = deadlines;
    this.deadlineNanos = b.deadline.toNanos();
    List<CallOption> opts = new ArrayList<>();
    if (b.token != null) {
      opts.add(new CredentialCallOption(new BearerCredentialWriter(b.token)));
    }
    this.streamOptions = opts.toArray(new CallOption[0]);
    opts.add(CallOptions.timeout(b.deadline.toMillis(), TimeUnit.MILLISECONDS));
    this.options = opts.toArray(new CallOption[0]);
    ExchangePool[] lp = null;
    ExchangePool[] up = null;
    ShardServer[] ip = null;
    try {
      if (b.table != null) {
        Table t = Table.open(b.table);
        this.initialManifest = t.manifest();
        this.tableDir = b.table;
        this.vocabulary = t.vocabulary(allocator);
      } else {
        this.initialManifest = b.manifest;
        this.tableDir = null;
        this.vocabulary = null;
      }
      this.manifest = initialManifest;
      this.partitioner = initialManifest.partitioner();
      this.dim = initialManifest.dim();
      this.rowBytes = dim * 4L;
      this.batchIds = (int) Math.max(1, Math.min(BATCH_IDS, MAX_BATCH_BYTES / rowBytes));
      this.lookupReply = Protocol.lookupReply(dim);
      this.byShard = new Endpoint[partitioner.numShards()];
      lp = new ExchangePool[byShard.length];
      up = new ExchangePool[byShard.length];
      ip = new ShardServer[byShard.length];
      for (String uri : b.endpoints) {
        Endpoint e = connect(uri, b);
        endpoints.add(e);
        describe(e);
      }
      for (int s = 0; s < byShard.length; s++) {
        if (byShard[s] == null) {
          throw new IOException(
              "Cannot build client: shard " + s + " (" + partitioner.describeShard(s) + ") is hosted by no endpoint (endpoints: " + String.join(", ", b.endpoints) + ")");
        }
        Endpoint e = byShard[s];
        lp[s] = new ExchangePool(e.uri, e.client, Protocol.command(Protocol.OP_LOOKUP, s), Protocol.lookupRequest(), streamOptions, allocator, executor, e.channel::resetConnectBackoff, STREAMS_PER_SHARD);
        up[s] = new ExchangePool(e.uri, e.client, Protocol.command(Protocol.OP_UPDATE, s), Protocol.updateRequest(dim), streamOptions, allocator, executor, e.channel::resetConnectBackoff, STREAMS_PER_SHARD);
        ip[s] = b.inProcessShards ? ShardServer.runningAt(e.uri, b.token) : null;
      }
    } catch (IOException | RuntimeException e) {
      this.lookupPools = lp;
      this.updatePools = up;
      this.inProcess = ip;
      this.batchers = null;
      try {
        close();
      } catch (RuntimeException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
    this.lookupPools = lp;
    this.updatePools = up;
    this.inProcess = ip;
    this.batchers = new Batcher[byShard.length];
    for (int s = 0; s < batchers.length; s++) {
      batchers[s] = new Batcher(s);
    }
    timer.scheduleWithFixedDelay(this::expireOverdue, SWEEP_MILLIS, SWEEP_MILLIS, TimeUnit.MILLISECONDS);
  }

  /** Fails the streams whose oldest unanswered request passed its deadline (see {@link ExchangePool#expire}). */
  private void expireOverdue() {
    long now = System.nanoTime();
    for (ExchangePool[] pools : new ExchangePool[][] {lookupPools, updatePools}) {
      for (ExchangePool p : pools) {
        p.expire(now);
      }
    }
  }

  /** Threads that read replies nobody waits for (async calls), retry async lookups and take snapshots. */
  static final int THREADS = Math.max(4, 4 * Runtime.getRuntime().availableProcessors());
  /** Streams per (endpoint, op, shard) opened before concurrent requests share (pipeline on) one. */
  static final int STREAMS_PER_SHARD = 2;
  /** How often the deadlines of requests on the wire are checked. */
  static final long SWEEP_MILLIS = 5;

  private static ThreadFactory daemonThreads(String prefix) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, prefix + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  private Endpoint connect(String uri, Builder b) {
    URI u;
    try {
      u = new URI(uri);
    } catch (URISyntaxException e) {
      throw new IllegalArgumentException("Cannot use endpoint '" + uri + "': not a URI (expected grpc+tcp://HOST:PORT)", e);
    }
    if (!"grpc+tcp".equals(u.getScheme()) && !"grpc+tls".equals(u.getScheme()) && !"grpc".equals(u.getScheme())) {
      throw new IllegalArgumentException("Cannot use endpoint '" + uri + "': scheme '" + u.getScheme() + "' (expected grpc+tcp://HOST:PORT or grpc+tls://HOST:PORT)");
    }
    if (u.getHost() == null || u.getPort() < 0) {
      throw new IllegalArgumentException("Cannot use endpoint '" + uri + "': no host or port (expected grpc+tcp://HOST:PORT)");
    }
    // The client owns its gRPC channel (instead of FlightClient.builder) to reset the channel's
    // reconnect backoff before retrying a lookup: after a server restart the channel may still be
    // in backoff (growing up to minutes) and would fail every new stream fast meanwhile.
    NettyChannelBuilder cb = NettyChannelBuilder.forAddress(u.getHost(), u.getPort()).maxInboundMessageSize(Integer.MAX_VALUE);
    if ("grpc+tls".equals(u.getScheme())) {
      try {
        SslContextBuilder ssl = GrpcSslContexts.forClient();
        if (b.trustedCertificates != null) {
          ssl.trustManager(new java.io.ByteArrayInputStream(b.trustedCertificates));
        }
        if (b.clientCertificate != null) {
          ssl.keyManager(new java.io.ByteArrayInputStream(b.clientCertificate), new java.io.ByteArrayInputStream(b.clientKey));
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
    return new Endpoint(uri, FlightGrpcUtils.createFlightClient(allocator, channel), channel);
  }

  private void describe(Endpoint e) throws IOException {
    JsonNode d;
    try {
      d = action(e, Protocol.ACTION_DESCRIBE, new byte[0]);
    } catch (FlightRuntimeException ex) {
      throw new IOException("Cannot describe endpoint " + e.uri + ": " + ex.status().code() + ": " + ex.status().description(), ex);
    }
    TableManifest m = initialManifest;
    if (d.path("rows").asLong() != m.rows() || d.path("dim").asInt() != m.dim()
        || !m.partitioner().name().equals(d.path("partitioner").asText()) || d.path("numShards").asInt() != m.numShards()) {
      throw new IOException(
          "Cannot use endpoint " + e.uri + ": it serves a table of V=" + d.path("rows").asLong() + ", C=" + d.path("dim").asInt()
              + ", P=" + d.path("numShards").asInt() + " (" + d.path("partitioner").asText() + "), the manifest says V=" + m.rows()
              + ", C=" + m.dim() + ", P=" + m.numShards() + " (" + m.partitioner().name() + ")");
    }
    e.maxIds = d.path("maxIdsPerRequest").asInt(ShardServer.DEFAULT_MAX_IDS);
    e.maxMessageBytes = d.path("maxMessageBytes").asInt(ShardServer.DEFAULT_MAX_MESSAGE_BYTES);
    for (JsonNode s : d.path("shards")) {
      int index = s.path("index").asInt();
      e.shards.add(index);
      if (byShard[index] == null) {
        byShard[index] = e;
      }
    }
  }

  private JsonNode action(Endpoint e, String type, byte[] body) {
    Iterator<Result> it = e.client.doAction(new Action(type, body), options);
    if (!it.hasNext()) {
      throw ShardErrors.internal("Cannot run action " + type + " on " + e.uri + ": no result", null);
    }
    byte[] bytes = it.next().getBody();
    while (it.hasNext()) {
      it.next();
    }
    try {
      return Protocol.JSON.readTree(bytes);
    } catch (IOException ex) {
      throw ShardErrors.internal("Cannot run action " + type + " on " + e.uri + ": reply is not JSON", ex);
    }
  }

  /** The table manifest this client routes by (after {@link #snapshot}, the committed one). */
  public TableManifest manifest() {
    return manifest;
  }

  public int dim() {
    return dim;
  }

  /** The vocabulary, or null when the client was built without one. */
  public Vocabulary vocabulary() {
    return vocabulary;
  }

  /** Streams opened and dead idle streams skipped so far by the lookup and update pools of {@code shard} (for tests and benchmarks). */
  long[] streamCounts(int shard) {
    return new long[] {lookupPools[shard].opened.get(), lookupPools[shard].skipped.get(), updatePools[shard].opened.get(), updatePools[shard].skipped.get()};
  }

  /** The endpoint that serves {@code shard}. */
  public String endpointOf(int shard) {
    return byShard[shard].uri;
  }

  // ------------------------------------------------------------------ request planning

  /**
   * The deduplicated, routed form of one id list: unique ids grouped by shard, and for each unique
   * id the chain of request positions that asked for it. Primitive arrays only.
   */
  private final class Plan {
    final int n;
    final int distinct;
    final int[] firstReq;
    final int[] nextReq;
    final int[] uniqueOfReq;
    final long[] uniqueIds;
    /** Shards with work, ascending. */
    final int[] shards;
    /** For shard s: unique indexes in send order. */
    final int[][] uniquesOf;

    Plan(long[] ids, String verb) {
      ensureOpen(verb + " " + ids.length + " ids");
      n = ids.length;
      LongIntMap map = new LongIntMap(n);
      firstReq = new int[n];
      nextReq = new int[n];
      int[] lastReq = new int[n];
      uniqueOfReq = new int[n];
      long[] uniq = new long[n];
      int d = 0;
      for (int i = 0; i < n; i++) {
        long id = ids[i];
        if (!partitioner.contains(id)) {
          throw new IllegalArgumentException(
              "Cannot " + verb + " id " + id + ": outside [0, " + partitioner.numRows() + ") (request position " + i + ")");
        }
        int u = map.putIfAbsent(id, d);
        uniqueOfReq[i] = u;
        nextReq[i] = -1;
        if (u == d) {
          uniq[d] = id;
          firstReq[d] = i;
          lastReq[d] = i;
          d++;
        } else {
          nextReq[lastReq[u]] = i;
          lastReq[u] = i;
        }
      }
      distinct = d;
      uniqueIds = uniq;
      int p = partitioner.numShards();
      int[] counts = new int[p];
      int[] shardOfUnique = new int[d];
      int busy = 0;
      for (int u = 0; u < d; u++) {
        int s = partitioner.shardOf(uniq[u]);
        shardOfUnique[u] = s;
        if (counts[s]++ == 0) {
          busy++;
        }
      }
      shards = new int[busy];
      uniquesOf = new int[p][];
      int k = 0;
      for (int s = 0; s < p; s++) {
        if (counts[s] > 0) {
          shards[k++] = s;
          uniquesOf[s] = new int[counts[s]];
        }
      }
      int[] fill = new int[p];
      for (int u = 0; u < d; u++) {
        int s = shardOfUnique[u];
        uniquesOf[s][fill[s]++] = u;
      }
    }
  }

  /** Copies reply rows to the request positions that asked for them. */
  private interface Scatter {
    /** Copies reply row {@code row} (of {@code data}) to request position {@code request}. */
    void copy(ArrowBuf data, FloatBuffer view, int row, int request);
  }

  /** The shards this client reaches in process (see {@link Builder#inProcessShards}), ascending; the others go through Flight. */
  public int[] inProcessShards() {
    return java.util.stream.IntStream.range(0, inProcess.length).filter(s -> inProcess[s] != null).toArray();
  }

  // ------------------------------------------------------------------ lookup

  /** Rows of {@code ids} in request order: row i at {@code out[i*C .. i*C+C)}. Duplicates allowed. */
  public void lookup(long[] ids, float[] out) throws IOException {
    checkOut(ids.length, out.length);
    long deadline = System.nanoTime() + deadlineNanos;
    lookupBlocking(new Plan(ids, "look up"), arrayScatter(out), deadline);
  }

  /** {@link #lookup(long[], float[])} without waiting; many may be in flight. */
  public CompletableFuture<Void> lookupAsync(long[] ids, float[] out) {
    try {
      checkOut(ids.length, out.length);
      long deadline = System.nanoTime() + deadlineNanos;
      Plan plan = new Plan(ids, "look up");
      AsyncLookup call = new AsyncLookup(plan.shards.length);
      Scatter scatter = arrayScatter(out);
      for (int s : plan.shards) {
        Part part = new Part(plan, s, scatter, deadline, call);
        if (inProcess[s] != null) {
          Throwable error = lookupInProcess(plan, s, scatter).failed;
          if (error == null) {
            call.done();
          } else {
            call.fail(shardError("look up " + part.size() + " ids on", s, byShard[s], error));
          }
        } else if (plan.uniquesOf[s].length > batchIds) {
          lookupAlone(part, 0);
        } else {
          batchers[s].submit(part);
        }
      }
      return call.future;
    } catch (RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  /** Rows of {@code ids} in request order into {@code out} from byte {@code offset} (ids.length x C x 4 bytes). */
  public void lookup(long[] ids, ArrowBuf out, long offset) throws IOException {
    long need = ids.length * rowBytes;
    if (offset < 0 || offset + need > out.capacity()) {
      throw new IllegalArgumentException(
          "Cannot look up " + ids.length + " ids: the buffer holds " + out.capacity() + " bytes, need " + need + " from offset " + offset);
    }
    long deadline = System.nanoTime() + deadlineNanos;
    Scatter scatter = (data, view, row, request) -> out.setBytes(offset + request * rowBytes, data, row * rowBytes, rowBytes);
    lookupBlocking(new Plan(ids, "look up"), scatter, deadline);
  }

  /**
   * Rows of {@code ids} in request order into {@code out}, a {@code FixedSizeList<float32>[C]}
   * vector (the table's row type, as in {@code Table} and the lookup reply): its buffers are
   * (re)allocated from its own allocator for {@code ids.length} rows, every row valid, and the rows
   * are copied straight into its data buffer.
   */
  public void lookup(long[] ids, FixedSizeListVector out) throws IOException {
    if (out.getListSize() != dim || !(out.getDataVector() instanceof Float4Vector)) {
      throw new IllegalArgumentException("Cannot look up " + ids.length + " ids: the vector is " + out.getField()
          + ", expected FixedSizeList(" + dim + ") of float32 (C=" + dim + ")");
    }
    ArrowBuf data = ShardProducer.allocate(out, ids.length);
    lookup(ids, data, 0);
  }

  /** Rows of {@code tokens} (through the table's vocabulary), back to back in request order. */
  public float[] lookupTokens(String... tokens) throws IOException {
    long[] ids = tokenIds(tokens);
    float[] out = new float[Math.toIntExact(ids.length * (long) dim)];
    lookup(ids, out);
    return out;
  }

  /** The ids of {@code tokens}; throws naming the first unknown token. */
  public long[] tokenIds(String... tokens) {
    if (vocabulary == null) {
      throw new IllegalStateException("Cannot look up tokens: the table has no vocabulary (or the client was built from a manifest)");
    }
    long[] ids = new long[tokens.length];
    for (int i = 0; i < tokens.length; i++) {
      ids[i] = vocabulary.requireId(tokens[i]);
    }
    return ids;
  }

  private void checkOut(int n, int outLength) {
    if ((long) n * dim > outLength) {
      throw new IllegalArgumentException(
          "Cannot look up " + n + " ids: the output holds " + outLength + " floats, need " + (long) n * dim + " (C=" + dim + ")");
    }
  }

  private Scatter arrayScatter(float[] out) {
    int c = dim;
    return (data, view, row, request) -> view.get(row * c, out, request * c, c);
  }

  /**
   * Most bytes of rows in one request batch (a lookup's reply rows, an update's ids and gradients):
   * 2 MiB. A shard's part of a larger call goes as several even batches pipelined on one stream, so
   * a server holds a few batches per stream at a time however large the call (Flight reads five
   * request batches ahead; a lookup handler keeps at most 4 MiB of replies that gRPC has not yet
   * written): its transient memory is set by this bound and the number of streams, not by the
   * callers' batch sizes (PipelineTest.largeLookupsAndUpdatesGoInBoundedBatches; bench/README.md,
   * "Scale"). Large enough that the benchmark's B = 4096 x 512-byte rows goes unsplit (with 1 MiB
   * its lookups ran at 0.56-0.86x).
   */
  static final long MAX_BATCH_BYTES = 2L << 20;

  /** Where batch {@code k} of {@code count} even batches of {@code total} ids starts (no 2-row tail batch). */
  private static int batchStart(int total, int count, int k) {
    return (int) ((long) total * k / count);
  }

  /**
   * Most ids of one request batch to {@code e} whose request carries {@code requestBytesPerId} and
   * whose rows (reply or request) {@code rowBytesPerId} per id: within the endpoint's id and message
   * limits (which bound requests and replies alike) and {@link #MAX_BATCH_BYTES}.
   */
  private static int idsPerBatch(Endpoint e, long requestBytesPerId, long rowBytesPerId) {
    return (int) Math.max(1, Math.min(e.maxIds,
        Math.min((e.maxMessageBytes * 0.9 - 4096) / Math.max(requestBytesPerId, rowBytesPerId), MAX_BATCH_BYTES / rowBytesPerId)));
  }

  /**
   * A blocking lookup: the calling thread sends every shard's request batches (pipelined on pooled
   * streams), then waits for the replies, reading them itself when no other thread reads that
   * stream; the replies are scattered straight into the caller's output. A shard that fails with
   * UNAVAILABLE is retried once on a new stream (a pooled stream may have outlived a server restart;
   * lookups are idempotent).
   */
  private void lookupBlocking(Plan plan, Scatter scatter, long deadline) throws ShardException {
    int[] shards = plan.shards;
    ShardRequests[] sent = new ShardRequests[shards.length];
    for (int i = 0; i < shards.length; i++) {
      sent[i] = sendLookup(plan, shards[i], scatter, deadline, 0);
    }
    ShardException first = null;
    for (int i = 0; i < shards.length; i++) {
      int s = shards[i];
      Throwable error = sent[i].await();
      if (isUnavailable(error) && inProcess[s] == null) { // a stale pooled stream: one retry on a new one
        reconnect(byShard[s], deadline);
        error = sendLookup(plan, s, scatter, deadline, 1).await();
      }
      if (error != null) {
        ShardException ex = shardError("look up " + plan.uniquesOf[s].length + " ids on", s, byShard[s], error);
        if (first == null) {
          first = ex;
        } else {
          first.addSuppressed(ex);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }

  /** The request batches of one shard's part of one call, all on one stream. */
  private static final class ShardRequests {
    final ExchangePool.Pipe pipe;
    final ExchangePool.Request[] requests;
    /** A failure before anything could be sent (no stream), else null. */
    final Throwable failed;

    ShardRequests(ExchangePool.Pipe pipe, ExchangePool.Request[] requests, Throwable failed) {
      this.pipe = pipe;
      this.requests = requests;
      this.failed = failed;
    }

    /** Waits for every reply (reading them when nobody else does); returns the first failure or null. */
    Throwable await() {
      if (failed != null) {
        return failed;
      }
      Throwable error = null;
      for (ExchangePool.Request r : requests) {
        pipe.await(r);
        if (error == null && r.isCompletedExceptionally()) {
          error = causeOf(r);
        }
      }
      return error;
    }

    /** A future done when every reply came, failed with the first failure. */
    CompletableFuture<Void> whenDone() {
      if (failed != null) {
        return CompletableFuture.failedFuture(failed);
      }
      if (pipe == null) {
        return CompletableFuture.completedFuture(null); // done in process
      }
      pipe.readInBackground();
      return requests.length == 1 ? requests[0] : CompletableFuture.allOf(requests);
    }
  }

  /** The cause of a request's failure. */
  static Throwable causeOf(CompletableFuture<?> f) {
    try {
      f.join();
      return null;
    } catch (CompletionException e) {
      return e.getCause() != null ? e.getCause() : e;
    } catch (java.util.concurrent.CancellationException e) {
      return e;
    }
  }

  private static boolean isUnavailable(Throwable t) {
    return t instanceof FlightRuntimeException && ((FlightRuntimeException) t).status().code() == FlightStatusCode.UNAVAILABLE;
  }

  /** Sends one shard's unique ids of {@code plan} (one batch per chunk) on a pooled stream (a new one when {@code attempt > 0}). */
  private ShardRequests sendLookup(Plan plan, int shard, Scatter scatter, long deadline, int attempt) {
    if (inProcess[shard] != null) {
      return lookupInProcess(plan, shard, scatter);
    }
    ExchangePool pool = lookupPools[shard];
    int[] uniques = plan.uniquesOf[shard];
    int chunk = idsPerBatch(byShard[shard], 8, rowBytes);
    ExchangePool.Pipe pipe;
    try {
      pipe = attempt == 0 ? pool.take() : pool.fresh();
    } catch (RuntimeException e) {
      return new ShardRequests(null, null, e);
    }
    int count = (uniques.length + chunk - 1) / chunk;
    ExchangePool.Request[] requests = new ExchangePool.Request[count];
    for (int k = 0; k < count; k++) {
      int from = batchStart(uniques.length, count, k);
      int n = batchStart(uniques.length, count, k + 1) - from;
      ExchangePool.Request r = new ExchangePool.Request(deadline) {
        @Override
        void onReply(VectorSchemaRoot reply) {
          ArrowBuf data = lookupRows(reply, n);
          FloatBuffer view = floatView(data, n);
          for (int row = 0; row < n; row++) {
            for (int i = plan.firstReq[uniques[from + row]]; i >= 0; i = plan.nextReq[i]) {
              scatter.copy(data, view, row, i);
            }
          }
        }
      };
      requests[k] = r;
      pipe.send(r, root -> {
        BigIntVector ids = (BigIntVector) root.getVector(0);
        long address = reserve(ids, n).memoryAddress();
        for (int i = 0; i < n; i++) {
          MemoryUtil.putLong(address + 8L * i, plan.uniqueIds[uniques[from + i]]);
        }
        ids.setValueCount(n);
        root.setRowCount(n);
      }, null);
    }
    return new ShardRequests(pipe, requests, null);
  }

  /** Rows per in-process batch of a shard part of {@code n} ids: at most {@link #MAX_BATCH_BYTES} of rows, as on the wire. */
  private int inProcessBatch(int n) {
    return (int) Math.max(1, Math.min(n, MAX_BATCH_BYTES / rowBytes));
  }

  /** Done, or failed before anything was sent: what a shard part done in process returns. */
  private static final ShardRequests DONE = new ShardRequests(null, new ExchangePool.Request[0], null);

  /**
   * One shard's part of a lookup from its server in this JVM: rows copied as the server's handler
   * copies them, then scattered, in batches of at most {@link #MAX_BATCH_BYTES} of rows (the scratch
   * memory of a call is bounded as on the wire).
   */
  private ShardRequests lookupInProcess(Plan plan, int shard, Scatter scatter) {
    int[] uniques = plan.uniquesOf[shard];
    int chunk = inProcessBatch(uniques.length);
    try (ArrowBuf ids = allocator.buffer(8L * chunk); ArrowBuf rows = allocator.buffer(chunk * rowBytes)) {
      FloatBuffer view = floatView(rows, chunk);
      for (int from = 0; from < uniques.length; from += chunk) {
        int n = Math.min(chunk, uniques.length - from);
        for (int i = 0; i < n; i++) {
          ids.setLong(8L * i, plan.uniqueIds[uniques[from + i]]);
        }
        inProcess[shard].inProcess(shard, h -> {
          h.checkIds(ids, n, "look up");
          h.copyRows(ids, n, rows);
        });
        for (int row = 0; row < n; row++) {
          for (int i = plan.firstReq[uniques[from + row]]; i >= 0; i = plan.nextReq[i]) {
            scatter.copy(rows, view, row, i);
          }
        }
      }
      return DONE;
    } catch (RuntimeException | OutOfMemoryError e) {
      return new ShardRequests(null, null, e);
    }
  }

  /** The row data of a lookup reply of {@code n} rows; throws when the reply is not that. */
  private ArrowBuf lookupRows(VectorSchemaRoot reply, int n) {
    if (reply.getRowCount() != n || !Protocol.sameShape(reply.getSchema(), lookupReply)) {
      throw ShardErrors.internal("Cannot look up: reply of " + reply.getRowCount() + " rows with schema " + reply.getSchema() + ", expected " + n + " rows of " + lookupReply, null);
    }
    return ((Float4Vector) ((FixedSizeListVector) reply.getVector(0)).getDataVector()).getDataBuffer();
  }

  // ------------------------------------------------------------------ async lookups, micro-batched

  /** Most ids one micro-batch carries; an async lookup with more ids for a shard goes alone. */
  static final int BATCH_IDS = 8192;
  /** Micro-batches of one shard on the wire at once (pipelined); more lookups queue for the next batch. */
  static final int BATCHES_IN_FLIGHT = 2;

  /** The future of one async lookup: done when every shard part is. */
  private static final class AsyncLookup {
    final CompletableFuture<Void> future = new CompletableFuture<>();
    final AtomicInteger remaining;

    AsyncLookup(int parts) {
      remaining = new AtomicInteger(parts);
      if (parts == 0) {
        future.complete(null);
      }
    }

    void done() {
      if (remaining.decrementAndGet() == 0) {
        future.complete(null);
      }
    }

    void fail(Throwable e) {
      future.completeExceptionally(e);
    }
  }

  /** One shard's part of one async lookup, waiting for a micro-batch. */
  private record Part(Plan plan, int shard, Scatter scatter, long deadline, AsyncLookup call) {
    int size() {
      return plan.uniquesOf[shard].length;
    }
  }

  /** An async lookup part too large for a micro-batch: sent alone, retried once on UNAVAILABLE. */
  private void lookupAlone(Part p, int attempt) {
    sendLookup(p.plan, p.shard, p.scatter, p.deadline, attempt).whenDone().whenComplete((v, err) -> {
      Throwable cause = err instanceof CompletionException && err.getCause() != null ? err.getCause() : err;
      if (cause == null) {
        p.call.done();
      } else if (attempt == 0 && isUnavailable(cause)) {
        retryLater(() -> {
          reconnect(byShard[p.shard], p.deadline);
          lookupAlone(p, 1);
        }, p.call);
      } else {
        p.call.fail(shardError("look up " + p.size() + " ids on", p.shard, byShard[p.shard], cause));
      }
    });
  }

  /** Runs a retry on the executor (it may wait for a reconnect); fails {@code call} when the client is closing. */
  private void retryLater(Runnable retry, AsyncLookup call) {
    try {
      executor.execute(retry);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      call.fail(e);
    }
  }

  /**
   * Collects the async lookups of one shard into micro-batches: up to {@link #BATCHES_IN_FLIGHT}
   * batches are on the wire at once (pipelined on pooled streams); lookups that arrive meanwhile
   * queue, and the next batch takes all of them (up to {@code batchIds} ids) in one exchange
   * message. Many small lookups in flight thus cost neither a thread nor a message each. Batches are
   * sent by the thread that submits a lookup or completes a batch; no thread waits for a reply.
   */
  private final class Batcher {
    final int shard;
    final java.util.concurrent.ConcurrentLinkedQueue<Part> queue = new java.util.concurrent.ConcurrentLinkedQueue<>();
    final AtomicInteger inFlight = new AtomicInteger();
    final java.util.concurrent.atomic.AtomicBoolean forming = new java.util.concurrent.atomic.AtomicBoolean();

    Batcher(int shard) {
      this.shard = shard;
    }

    void submit(Part p) {
      queue.add(p);
      pump();
    }

    /** Sends queued lookups while fewer than {@link #BATCHES_IN_FLIGHT} batches are on the wire. */
    void pump() {
      while (!queue.isEmpty() && inFlight.get() < BATCHES_IN_FLIGHT) {
        if (!forming.compareAndSet(false, true)) {
          return; // the thread forming a batch re-checks the queue when done
        }
        try {
          if (inFlight.get() >= BATCHES_IN_FLIGHT) {
            continue;
          }
          List<Part> batch = new ArrayList<>();
          int ids = 0;
          for (Part p; ids < batchIds && (p = queue.peek()) != null; ) {
            if (ids > 0 && ids + p.size() > batchIds) {
              break;
            }
            queue.poll();
            batch.add(p);
            ids += p.size();
          }
          if (batch.isEmpty()) {
            continue;
          }
          inFlight.incrementAndGet();
          sendBatch(batch, ids, 0);
        } finally {
          forming.set(false);
        }
      }
    }

    /** Sends the parts' ids back to back as one batch; each part gets its rows from the reply. */
    private void sendBatch(List<Part> parts, int total, int attempt) {
      long deadline = Long.MAX_VALUE;
      for (Part p : parts) {
        deadline = Math.min(deadline, p.deadline);
      }
      long due = deadline;
      ExchangePool.Pipe pipe;
      try {
        pipe = attempt == 0 ? lookupPools[shard].take() : lookupPools[shard].fresh();
      } catch (RuntimeException e) {
        finish(parts, total, attempt, e, due);
        return;
      }
      ExchangePool.Request r = new ExchangePool.Request(deadline) {
        @Override
        void onReply(VectorSchemaRoot reply) {
          ArrowBuf data = lookupRows(reply, total);
          FloatBuffer view = floatView(data, total);
          int row = 0;
          for (Part p : parts) {
            int[] uniques = p.plan.uniquesOf[shard];
            for (int k = 0; k < uniques.length; k++, row++) {
              for (int i = p.plan.firstReq[uniques[k]]; i >= 0; i = p.plan.nextReq[i]) {
                p.scatter.copy(data, view, row, i);
              }
            }
          }
        }
      };
      r.whenComplete((v, err) -> finish(parts, total, attempt, err == null ? null : causeOf(r), due));
      pipe.send(r, root -> {
        BigIntVector ids = (BigIntVector) root.getVector(0);
        long address = reserve(ids, total).memoryAddress();
        int k = 0;
        for (Part p : parts) {
          long[] uniqueIds = p.plan.uniqueIds;
          for (int u : p.plan.uniquesOf[shard]) {
            MemoryUtil.putLong(address + 8L * k++, uniqueIds[u]);
          }
        }
        ids.setValueCount(total);
        root.setRowCount(total);
      }, null);
      pipe.readInBackground();
    }

    /** Completes a batch's parts (or retries it once on UNAVAILABLE), then sends what queued meanwhile. */
    private void finish(List<Part> parts, int total, int attempt, Throwable error, long deadline) {
      if (error != null && attempt == 0 && isUnavailable(error)) {
        try {
          executor.execute(() -> {
            reconnect(byShard[shard], deadline);
            sendBatch(parts, total, 1);
          });
          return;
        } catch (java.util.concurrent.RejectedExecutionException e) {
          error = e;
        }
      }
      inFlight.decrementAndGet();
      for (Part p : parts) {
        if (error == null) {
          p.call.done();
        } else {
          // each caller sees its own id count, with the batch's cause
          p.call.fail(shardError("look up " + p.size() + " ids on", shard, byShard[shard], error));
        }
      }
      pump();
    }
  }

  /** Makes {@code v} hold at least {@code n} non-null values (reusing its buffers when large enough); returns its data buffer. */
  private static ArrowBuf reserve(BigIntVector v, int n) {
    if (v.getValueCapacity() < n) {
      v.allocateNew(Math.max(n, Math.max(16, 2 * v.getValueCapacity())));
      v.getValidityBuffer().setOne(0, v.getValidityBuffer().capacity());
    }
    return v.getDataBuffer();
  }

  /** Makes {@code list} hold at least {@code n} non-null rows; returns its float data buffer. */
  private static ArrowBuf reserve(FixedSizeListVector list, int n) {
    if (list.getValueCapacity() < n) {
      ShardProducer.allocate(list, Math.max(n, Math.max(16, 2 * list.getValueCapacity())));
    }
    list.setValueCount(n);
    return ((Float4Vector) list.getDataVector()).getDataBuffer();
  }

  /** Longest wait for a reconnect before the one retry of a lookup. */
  static final long RECONNECT_WAIT_NANOS = 500_000_000L;

  /**
   * Before retrying a lookup on UNAVAILABLE: skips the channel's reconnect backoff and waits (up to
   * {@link #RECONNECT_WAIT_NANOS} and the deadline) until it is connected. A channel that failed
   * stays failed (fails new streams fast) until a new connection is up, so an immediate retry would
   * fail even when the server is back.
   */
  private static void reconnect(Endpoint e, long deadline) {
    e.channel.resetConnectBackoff();
    long until = Math.min(deadline, System.nanoTime() + RECONNECT_WAIT_NANOS);
    while (e.channel.getState(true) != ConnectivityState.READY && System.nanoTime() < until) {
      java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
    }
  }

  private static ShardException shardError(String what, int shard, Endpoint e, Throwable ex) {
    FlightStatusCode code = FlightStatusCode.INTERNAL;
    String why = ex.toString();
    if (ex instanceof FlightRuntimeException) {
      FlightRuntimeException f = (FlightRuntimeException) ex;
      code = f.status().code();
      why = code + ": " + f.status().description();
    }
    return new ShardException("Cannot " + what + " shard " + shard + " at " + e.uri + ": " + why, shard, e.uri, code, ex);
  }

  // ------------------------------------------------------------------ update

  /** Sparse update with the server's learning rate; see {@link #update(long[], float[], float)}. */
  public void update(long[] ids, float[] grads) throws IOException {
    updateInternal(ids, grads, Float.NaN);
  }

  /**
   * Sparse update: gradient of {@code ids[i]} at {@code grads[i*C ..]}; duplicates are summed; each
   * server applies its optimizer with {@code learningRate}. Validated in full (ids, finite values)
   * before anything is sent. Never retried: a failed call names the shard, and other shards of the
   * same call may have applied their part.
   */
  public void update(long[] ids, float[] grads, float learningRate) throws IOException {
    checkLearningRate(learningRate);
    updateInternal(ids, grads, learningRate);
  }

  /** {@link #update(long[], float[], float)} without waiting; many may be in flight (pipelined). */
  public CompletableFuture<Void> updateAsync(long[] ids, float[] grads, float learningRate) {
    try {
      checkLearningRate(learningRate);
      long deadline = System.nanoTime() + deadlineNanos;
      UpdatePlan u = new UpdatePlan(ids, grads);
      int[] shards = u.plan.shards;
      CompletableFuture<?>[] futures = new CompletableFuture<?>[shards.length];
      for (int i = 0; i < shards.length; i++) {
        int s = shards[i];
        futures[i] = sendUpdate(u, s, learningRate, deadline).whenDone().handle((v, err) -> {
          if (err != null) {
            Throwable cause = err instanceof CompletionException && err.getCause() != null ? err.getCause() : err;
            noteFailure(byShard[s], cause);
            throw new CompletionException(shardError("update " + u.plan.uniquesOf[s].length + " ids on", s, byShard[s], cause));
          }
          return null;
        });
      }
      return futures.length == 1 ? futures[0].thenApply(v -> null) : CompletableFuture.allOf(futures);
    } catch (RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  private static void checkLearningRate(float lr) {
    if (!(lr > 0) || !Float.isFinite(lr)) {
      throw new IllegalArgumentException("Cannot update: learning rate " + lr + " (must be a positive finite number)");
    }
  }

  private void updateInternal(long[] ids, float[] grads, float lr) throws IOException {
    long deadline = System.nanoTime() + deadlineNanos;
    UpdatePlan u = new UpdatePlan(ids, grads);
    int[] shards = u.plan.shards;
    ShardRequests[] sent = new ShardRequests[shards.length];
    for (int i = 0; i < shards.length; i++) {
      sent[i] = sendUpdate(u, shards[i], lr, deadline);
    }
    ShardException first = null;
    for (int i = 0; i < shards.length; i++) {
      int s = shards[i];
      Throwable error = sent[i].await();
      if (error != null) {
        noteFailure(byShard[s], error);
        ShardException ex = shardError("update " + u.plan.uniquesOf[s].length + " ids on", s, byShard[s], error);
        if (first == null) {
          first = ex;
        } else {
          first.addSuppressed(ex);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }

  /** After a failed update (never retried): a server that went away is connected anew by the next call at once. */
  private static void noteFailure(Endpoint e, Throwable error) {
    if (isUnavailable(error)) {
      e.channel.resetConnectBackoff();
    }
  }

  /** A plan plus the gradients summed per unique id. */
  private final class UpdatePlan {
    final Plan plan;
    final float[] sums;

    UpdatePlan(long[] ids, float[] grads) {
      if ((long) ids.length * dim != grads.length) {
        throw new IllegalArgumentException(
            "Cannot update " + ids.length + " ids: " + grads.length + " gradient values, need " + (long) ids.length * dim + " (C=" + dim + ")");
      }
      for (int i = 0; i < grads.length; i++) {
        if (!Float.isFinite(grads[i])) {
          throw new IllegalArgumentException(
              "Cannot update id " + ids[i / dim] + ": gradient value " + (i % dim) + " is " + grads[i] + " (gradients must be finite; nothing was sent)");
        }
      }
      plan = new Plan(ids, "update");
      if (plan.distinct == ids.length) {
        sums = grads;
      } else {
        sums = new float[Math.toIntExact((long) plan.distinct * dim)];
        for (int i = 0; i < ids.length; i++) {
          int base = plan.uniqueOfReq[i] * dim;
          int src = i * dim;
          for (int c = 0; c < dim; c++) {
            sums[base + c] += grads[src + c];
          }
        }
      }
    }
  }

  private record LrMetadata(float lr, byte[] json) {}

  /** {@code {"lr": lr}} in UTF-8 (not to be modified: it is shared). */
  private byte[] lrMetadata(float lr) {
    LrMetadata last = lastLr;
    if (Float.floatToRawIntBits(last.lr) != Float.floatToRawIntBits(lr)) {
      last = new LrMetadata(lr, ("{\"lr\":" + lr + "}").getBytes(StandardCharsets.UTF_8));
      lastLr = last;
    }
    return last.json;
  }

  /**
   * Sends one shard's part of an update (one batch per chunk) on a pooled stream; the learning rate
   * travels in each batch's app metadata ({@code {"lr": ..}}), since the stream's command is shared by
   * every request. Never retried: a failed stream fails its requests and the call fails.
   */
  private ShardRequests sendUpdate(UpdatePlan u, int shard, float lr, long deadline) {
    if (inProcess[shard] != null) {
      return updateInProcess(u, shard, lr);
    }
    Endpoint e = byShard[shard];
    int[] uniques = u.plan.uniquesOf[shard];
    long perRow = 8 + rowBytes;
    int chunk = idsPerBatch(e, perRow, perRow);
    byte[] lrJson = Float.isNaN(lr) ? null : lrMetadata(lr);
    ExchangePool.Pipe pipe;
    try {
      pipe = updatePools[shard].take();
    } catch (RuntimeException ex) {
      return new ShardRequests(null, null, ex);
    }
    int count = (uniques.length + chunk - 1) / chunk;
    ExchangePool.Request[] requests = new ExchangePool.Request[count];
    for (int k = 0; k < count; k++) {
      int from = batchStart(uniques.length, count, k);
      int n = batchStart(uniques.length, count, k + 1) - from;
      ExchangePool.Request r = new ExchangePool.Request(deadline) {
        @Override
        void onReply(VectorSchemaRoot reply) {
          if (reply.getRowCount() != 1 || !Protocol.sameShape(reply.getSchema(), updateReply)) {
            throw ShardErrors.internal("Cannot update: reply of " + reply.getRowCount() + " rows with schema " + reply.getSchema() + ", expected 1 row of " + updateReply, null);
          }
        }
      };
      requests[k] = r;
      ArrowBuf metadata = null;
      if (lrJson != null) {
        metadata = allocator.buffer(lrJson.length);
        metadata.setBytes(0, lrJson);
        metadata.writerIndex(lrJson.length);
      }
      pipe.send(r, root -> {
        BigIntVector ids = (BigIntVector) root.getVector(0);
        FixedSizeListVector gradList = (FixedSizeListVector) root.getVector(1);
        long idAddress = reserve(ids, n).memoryAddress();
        ArrowBuf data = reserve(gradList, n);
        FloatBuffer view = data.nioBuffer(0, (int) (n * rowBytes)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        for (int i = 0; i < n; i++) {
          int uq = uniques[from + i];
          MemoryUtil.putLong(idAddress + 8L * i, u.plan.uniqueIds[uq]);
          view.put(i * dim, u.sums, uq * dim, dim);
        }
        ids.setValueCount(n);
        root.setRowCount(n);
      }, metadata);
    }
    return new ShardRequests(pipe, requests, null);
  }

  /**
   * One shard's part of an update applied by its server in this JVM, as its update handler applies
   * it (ids distinct, gradients checked by {@link UpdatePlan}), in batches of at most {@link
   * #MAX_BATCH_BYTES} of gradients.
   */
  private ShardRequests updateInProcess(UpdatePlan u, int shard, float lr) {
    int[] uniques = u.plan.uniquesOf[shard];
    int chunk = inProcessBatch(uniques.length);
    ShardServer server = inProcess[shard];
    try (ArrowBuf ids = allocator.buffer(8L * chunk); ArrowBuf grads = allocator.buffer(chunk * rowBytes)) {
      FloatBuffer view = floatView(grads, chunk);
      for (int from = 0; from < uniques.length; from += chunk) {
        int n = Math.min(chunk, uniques.length - from);
        for (int i = 0; i < n; i++) {
          int uq = uniques[from + i];
          ids.setLong(8L * i, u.plan.uniqueIds[uq]);
          view.put(i * dim, u.sums, uq * dim, dim);
        }
        server.inProcess(shard, h -> {
          h.checkIds(ids, n, "update");
          // without a rate the shard's optimizer's applies, as in the server's update handler
          h.applyUpdate(ids.memoryAddress(), grads.memoryAddress(), n, Float.isNaN(lr) ? (float) h.spec.lr() : lr);
        });
      }
      return DONE;
    } catch (RuntimeException | OutOfMemoryError e) {
      return new ShardRequests(null, null, e);
    }
  }

  // ------------------------------------------------------------------ nearest

  /** Exact cosine top-k over the whole table: each shard's local top-k, merged. */
  public List<Neighbor> nearest(float[] vector, int k) throws IOException {
    return nearestExcluding(vector, k, -1);
  }

  /** The k nearest neighbours of the row of {@code id}, excluding {@code id} itself. */
  public List<Neighbor> nearest(long id, int k) throws IOException {
    float[] row = new float[dim];
    lookup(new long[] {id}, row);
    return nearestExcluding(row, k, id);
  }

  private List<Neighbor> nearestExcluding(float[] vector, int k, long exclude) throws IOException {
    ensureOpen("search");
    if (vector.length != dim) {
      throw new IllegalArgumentException("Cannot search: the query has " + vector.length + " values, the table has C=" + dim);
    }
    if (k < 1) {
      throw new IllegalArgumentException("Cannot search: k=" + k + " (must be at least 1)");
    }
    int p = partitioner.numShards();
    int[] all = new int[p];
    for (int s = 0; s < p; s++) {
      all[s] = s;
    }
    long[][] ids = new long[p][];
    float[][] sims = new float[p][];
    run(all, s -> {
      Endpoint e = byShard[s];
      ObjectNode extra = Protocol.JSON.createObjectNode().put("k", k).put("exclude", exclude);
      try (VectorSchemaRoot req = VectorSchemaRoot.create(Protocol.nearestRequest(dim), allocator);
          FlightClient.ExchangeReaderWriter rw = e.client.doExchange(Protocol.command(Protocol.OP_NEAREST, s, extra), options)) {
        ArrowBuf data = ShardProducer.allocate((FixedSizeListVector) req.getVector(0), 1);
        for (int c = 0; c < dim; c++) {
          data.setFloat(4L * c, vector[c]);
        }
        req.setRowCount(1);
        rw.getWriter().start(req);
        rw.getWriter().putNext();
        rw.getWriter().completed();
        FlightStream reader = rw.getReader();
        if (!reader.next()) {
          throw ShardErrors.internal("Cannot search: no reply", null);
        }
        VectorSchemaRoot reply = reader.getRoot();
        int n = reply.getRowCount();
        BigIntVector idv = (BigIntVector) reply.getVector(0);
        Float4Vector simv = (Float4Vector) reply.getVector(1);
        ids[s] = new long[n];
        sims[s] = new float[n];
        for (int i = 0; i < n; i++) {
          ids[s][i] = idv.get(i);
          sims[s][i] = simv.get(i);
        }
        while (reader.next()) {
          // drain
        }
      } catch (Exception ex) {
        throw shardError("search", s, e, ex);
      }
    }, true);
    HostedShard.TopK top = new HostedShard.TopK(k);
    for (int s = 0; s < p; s++) {
      for (int i = 0; i < ids[s].length; i++) {
        top.offer(ids[s][i], sims[s][i]);
      }
    }
    long[] outIds = new long[k];
    float[] outSims = new float[k];
    int n = top.drainBestFirst(outIds, outSims);
    List<Neighbor> result = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      result.add(new Neighbor(outIds[i], outSims[i]));
    }
    return result;
  }

  // ------------------------------------------------------------------ snapshot

  /**
   * Every server writes its shards (with optimizer state) as version {@code v} into {@code dir},
   * then the client commits the manifest atomically; {@code v} is one more than the client's
   * manifest version (and than the version of a table already in {@code dir}). {@code dir} must be
   * reachable by every server under the same path (one machine, or a shared file system). Returns
   * the committed manifest, which this client then routes by.
   */
  public synchronized TableManifest snapshot(Path dir) throws IOException {
    ensureOpen("snapshot to " + dir);
    Path target = dir.toAbsolutePath();
    Files.createDirectories(target);
    TableManifest base = manifest;
    long version = base.tableVersion() + 1;
    if (Files.exists(target.resolve(TableFormat.MANIFEST_FILE))) {
      version = Math.max(version, TableManifest.read(target).tableVersion() + 1);
    }
    long v = version;
    List<Endpoint> writers = new ArrayList<>();
    List<int[]> assigned = new ArrayList<>();
    for (Endpoint e : endpoints) {
      int[] mine = e.shards.stream().mapToInt(Integer::intValue).filter(s -> byShard[s] == e).toArray();
      if (mine.length > 0) {
        writers.add(e);
        assigned.add(mine);
      }
    }
    TableManifest.ShardEntry[] entries = new TableManifest.ShardEntry[partitioner.numShards()];
    long[] step = {0};
    TableManifest.Optimizer[] optimizer = new TableManifest.Optimizer[1];
    int[] which = new int[writers.size()];
    for (int i = 0; i < which.length; i++) {
      which[i] = i;
    }
    try {
      run(which, i -> {
        Endpoint e = writers.get(i);
        ObjectNode body = Protocol.JSON.createObjectNode().put("dir", target.toString()).put("version", v);
        ArrayNode shards = body.putArray("shards");
        for (int s : assigned.get(i)) {
          shards.add(s);
        }
        try {
          JsonNode reply = action(e, Protocol.ACTION_SNAPSHOT, body.toString().getBytes(StandardCharsets.UTF_8));
          synchronized (entries) {
            for (JsonNode n : reply.path("shards")) {
              TableManifest.ShardEntry entry = ShardProducer.shardEntry(n);
              entries[entry.index()] = entry;
            }
            JsonNode o = reply.path("optimizer");
            if (o.isObject()) {
              TableManifest.Optimizer opt = ShardServer.optimizerFromJson(o);
              if (optimizer[0] == null || opt.step() > step[0]) {
                optimizer[0] = opt;
                step[0] = opt.step();
              }
            }
          }
        } catch (FlightRuntimeException ex) {
          throw shardError("snapshot", assigned.get(i)[0], e, ex);
        }
      }, true);
      TableManifest.Builder b = base.toBuilder().tableVersion(v).shards(Arrays.asList(entries)).createdBy("embstore snapshot");
      b.optimizer(optimizer[0]);
      b.vocabularyFiles(copyVocabulary(base, target));
      TableManifest committed = b.build();
      TableWriter.commit(target, committed);
      manifest = committed;
      return committed;
    } catch (IOException | RuntimeException ex) {
      for (int s = 0; s < entries.length; s++) {
        Files.deleteIfExists(target.resolve(TableFormat.shardFileName(s, v)));
      }
      throw ex;
    }
  }

  /** The vocabulary files of {@code base} in {@code target}, copied there from the client's table if missing. */
  private List<TableManifest.FileEntry> copyVocabulary(TableManifest base, Path target) throws IOException {
    List<TableManifest.FileEntry> vocab = base.vocabularyFiles();
    for (TableManifest.FileEntry f : vocab) {
      Path dest = target.resolve(f.file());
      if (Files.exists(dest)) {
        continue;
      }
      if (tableDir == null) {
        return List.of(); // the client knows no file to copy: the snapshot has no vocabulary
      }
      Files.copy(tableDir.resolve(f.file()), dest, StandardCopyOption.COPY_ATTRIBUTES);
    }
    return vocab;
  }

  // ------------------------------------------------------------------ fan-out

  @FunctionalInterface
  private interface ShardTask {
    void run(int shard) throws IOException;
  }

  /** Runs {@code task} for every shard, in parallel; the calling thread takes the last one. */
  private void run(int[] shards, ShardTask task, boolean inline) throws IOException {
    if (shards.length == 0) {
      return;
    }
    if (shards.length == 1 && inline) {
      task.run(shards[0]);
      return;
    }
    CompletableFuture<?>[] futures = new CompletableFuture<?>[shards.length - 1];
    for (int i = 0; i < futures.length; i++) {
      int s = shards[i];
      futures[i] = CompletableFuture.runAsync(() -> runUnchecked(task, s), executor);
    }
    IOException first = null;
    try {
      task.run(shards[shards.length - 1]);
    } catch (IOException e) {
      first = e;
    }
    for (CompletableFuture<?> f : futures) {
      try {
        f.get();
      } catch (ExecutionException e) {
        IOException cause = unwrap(e.getCause());
        if (first == null) {
          first = cause;
        } else if (first != cause) {
          first.addSuppressed(cause);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("Interrupted while waiting for shards");
      }
    }
    if (first != null) {
      throw first;
    }
  }

  private static void runUnchecked(ShardTask task, int shard) {
    try {
      task.run(shard);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static IOException unwrap(Throwable t) {
    if (t instanceof UncheckedIOException) {
      return ((UncheckedIOException) t).getCause();
    }
    if (t instanceof IOException) {
      return (IOException) t;
    }
    if (t instanceof RuntimeException) {
      throw (RuntimeException) t;
    }
    return new IOException(t);
  }

  @Override
  public void close() {
    closed = true;
    timer.shutdownNow();
    List<AutoCloseable> parts = new ArrayList<>();
    // The streams first: their requests fail (CANCELLED) and their readers, which may run on the
    // executor, end and free the buffers; then the threads.
    for (ExchangePool[] pools : new ExchangePool[][] {lookupPools, updatePools}) {
      if (pools != null) {
        for (ExchangePool p : pools) {
          if (p != null) {
            parts.add(p);
          }
        }
      }
    }
    parts.add(() -> {
      executor.shutdownNow();
      executor.awaitTermination(5, TimeUnit.SECONDS);
    });
    for (Endpoint e : endpoints) {
      parts.add(e.client);
    }
    // Cancelled streams free the buffers of their last batches on gRPC threads just after the
    // cancel; the allocator is closed (and checks for leaks) once those have drained, 5 s at most.
    parts.add(() -> {
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (allocator.getAllocatedMemory() != 0 && System.nanoTime() < until) {
        Thread.sleep(5);
      }
    });
    parts.add(allocator);
    if (ownedRoot != null) {
      parts.add(ownedRoot);
    }
    try {
      AutoCloseables.close(parts);
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException("Cannot close embedding client: " + e.getMessage(), e);
    }
  }

  private void ensureOpen(String what) {
    if (closed) {
      throw new IllegalStateException("Cannot " + what + ": the client is closed");
    }
  }

  /** Reads an input stream fully (PEM files). */
  static byte[] readAll(InputStream in) throws IOException {
    return in.readAllBytes();
  }

  /** A little-endian float view of the first {@code n} rows of {@code data}. */
  private FloatBuffer floatView(ArrowBuf data, int n) {
    return data.nioBuffer(0, (int) (n * rowBytes)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
  }
}
