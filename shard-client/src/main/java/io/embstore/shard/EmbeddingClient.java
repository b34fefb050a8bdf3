package io.embstore.shard;

import io.embstore.format.Partitioner;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.stream.IntStream;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.util.AutoCloseables;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.complex.FixedSizeListVector;

/**
 * Routes lookups, sparse updates and searches to the shards that own each id (the table's {@link
 * Partitioner}), one request per shard per call, all shards in parallel. Thread-safe.
 *
 * <p>Every call goes the same way: its ids are deduplicated and grouped by shard ({@link
 * RequestPlan}); each shard's part is handed to the transport that reaches that shard ({@link
 * ShardTransport}: over Arrow Flight, {@link FlightTransport}, or in process for shards of a {@link
 * ShardServer} given to {@link Builder#inProcess}, {@link InProcessTransport}); {@link FanOut} waits
 * for the parts, retries a lookup or search once when its server was UNAVAILABLE (updates are never
 * retried, so an update is applied at most once) and reports failures as a {@link ShardException}
 * naming shard and endpoint. Reply rows are copied straight into the caller's array or Arrow buffer
 * in request order. Every call has a deadline ({@link Builder#deadline}). The client counts the
 * rows it sends in process and over Flight ({@link #rowCounts}).
 */
public final class EmbeddingClient implements AutoCloseable {
  /** Threads that read replies nobody waits for (async calls), run searches and retries and take snapshots. */
  static final int THREADS = Math.max(4, 4 * Runtime.getRuntime().availableProcessors());
  /** How often the deadlines of requests on the wire are checked. */
  static final long SWEEP_MILLIS = 5;

  private volatile TableManifest manifest;
  private final TableLocation tableDir;
  private final Vocabulary vocabulary;
  private final Partitioner partitioner;
  private final int dim;
  private final BufferAllocator ownedRoot;
  private final BufferAllocator allocator;
  private final ExecutorService executor;
  private final ScheduledExecutorService timer;
  private final long deadlineNanos;
  /** Every transport, in the order built (in-process ones first). */
  private final List<ShardTransport> transports = new ArrayList<>();
  /** The transport of each shard. */
  private final ShardTransport[] byShard;
  /** Set by {@link #close}: later calls fail with a clear error instead of a rejected task. */
  private volatile boolean closed;
  /** Distinct rows sent, by call kind and path ({@link #rowCounts}); added to once per shard of a call. */
  private final LongAdder lookedUpInProcess = new LongAdder();
  private final LongAdder lookedUpOverFlight = new LongAdder();
  private final LongAdder updatedInProcess = new LongAdder();
  private final LongAdder updatedOverFlight = new LongAdder();

  /** The system property whose value {@code true} makes {@link Builder#updateExchange} default to true. */
  public static final String UPDATE_EXCHANGE_PROPERTY = "embstore.client.updateExchange";

  public static Builder builder() {
    return new Builder();
  }

  /** Configures a client; {@link #build()} connects and asks every endpoint what it hosts. */
  public static final class Builder {
    private TableLocation table;
    private TableManifest manifest;
    private List<String> endpoints = List.of();
    private List<ShardServer> inProcess = List.of();
    private BufferAllocator parent;
    private Duration deadline = Duration.ofSeconds(30);
    private String token;
    private byte[] trustedCertificates;
    private byte[] clientCertificate;
    private byte[] clientKey;
    private boolean storedRowsOnWire;
    private boolean updateExchange = Boolean.getBoolean(UPDATE_EXCHANGE_PROPERTY);

    private Builder() {}

    /** The table's manifest (and vocabulary, if it has one) from its local directory. */
    public Builder table(Path dir) {
      return table(TableLocation.of(dir));
    }

    /** The table's manifest (and vocabulary, if it has one) from its directory on any storage. */
    public Builder table(TableLocation dir) {
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

    /**
     * Servers of this JVM whose shards are read and updated in place, without a Flight call: same
     * rows, stripe locks, optimizer and counters as the servers' handlers (their {@code stats} count
     * these calls as {@code inProcessRequests}). They take precedence over an endpoint that hosts the
     * same shard; an endpoint that is one of these servers is not connected to. The Spark job passes
     * the servers of its own executor.
     */
    public Builder inProcess(List<ShardServer> servers) {
      this.inProcess = List.copyOf(servers);
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

    /** Bearer token sent with every call over Flight. */
    public Builder token(String bearer) {
      this.token = bearer;
      return this;
    }

    /** PEM certificates to trust for {@code grpc+tls://} endpoints. */
    public Builder trustedCertificates(byte[] pem) {
      this.trustedCertificates = pem.clone();
      return this;
    }

    /**
     * Asks the servers for rows in the table's stored type (2 bytes a value for a float16 or
     * bfloat16 table, C + 8 bytes a row for int8) and decodes them here: exactly for 16-bit rows,
     * as code * scale + bias for int8, the same float32 the server would send (half, or a little
     * over a quarter, of the bytes on the wire). No effect on a float32 table, nor on in-process
     * shards.
     */
    public Builder storedRowsOnWire(boolean v) {
      this.storedRowsOnWire = v;
      return this;
    }

    /**
     * Sends updates on the servers' Flight {@code update} exchange instead of their fast update
     * method ({@code docs/protocol.md}, "Fast updates"): same results, more CPU on both sides; for
     * protocol tests and comparisons. Default false, or true when the system property {@value
     * #UPDATE_EXCHANGE_PROPERTY} is {@code true} (for benchmarks of code that builds its own
     * clients, such as the training job). No effect on in-process shards.
     */
    public Builder updateExchange(boolean v) {
      this.updateExchange = v;
      return this;
    }

    /** PEM certificate chain and PKCS#8 private key presented to servers that require client certificates (mutual TLS). */
    public Builder clientCertificate(byte[] certChainPem, byte[] privateKeyPem) {
      this.clientCertificate = certChainPem.clone();
      this.clientKey = privateKeyPem.clone();
      return this;
    }

    public EmbeddingClient build() throws IOException {
      if ((table == null) == (manifest == null)) {
        throw new IllegalArgumentException("Cannot build client: give exactly one of table(dir) or manifest(m)");
      }
      if (endpoints.isEmpty() && inProcess.isEmpty()) {
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
    this.executor = Executors.newFixedThreadPool(THREADS, daemonThreads("embstore-client-"));
    ScheduledThreadPoolExecutor deadlines = new ScheduledThreadPoolExecutor(1, daemonThreads("embstore-client-deadlines-"));
    deadlines.setRemoveOnCancelPolicy(true);
    this.timer = deadlines;
    this.deadlineNanos = b.deadline.toNanos();
    TableManifest m = b.manifest;
    Vocabulary vocab = null;
    ShardTransport[] routes = null;
    try {
      if (b.table != null) {
        Table t = Table.open(b.table);
        m = t.manifest();
        vocab = t.vocabulary(allocator);
      }
      routes = new ShardTransport[m.numShards()];
      Set<String> local = new LinkedHashSet<>();
      for (ShardServer server : b.inProcess) {
        local.add(server.endpoint());
        route(new InProcessTransport(server, allocator), m, routes);
      }
      ShardEndpoint.Credentials credentials =
          new ShardEndpoint.Credentials(b.token, b.trustedCertificates, b.clientCertificate, b.clientKey);
      for (String uri : b.endpoints) {
        if (!local.contains(uri)) {
          ShardEndpoint e = ShardEndpoint.connect(uri, credentials, b.deadline.toMillis(), allocator);
          route(new FlightTransport(e, b.token, m.numShards(), m.dim(),
              b.storedRowsOnWire ? m.valueType() : io.embstore.format.ValueType.FLOAT32, b.updateExchange, allocator, executor),
              m, routes);
        }
      }
      for (int s = 0; s < routes.length; s++) {
        if (routes[s] == null) {
          List<String> all = new ArrayList<>(local);
          all.addAll(b.endpoints);
          throw new IOException("Cannot build client: shard " + s + " (" + m.partitioner().describeShard(s)
              + ") is hosted by no endpoint (endpoints: " + String.join(", ", new LinkedHashSet<>(all)) + ")");
        }
      }
    } catch (IOException | RuntimeException e) {
      this.manifest = m;
      this.tableDir = null;
      this.vocabulary = vocab;
      this.partitioner = null;
      this.dim = 0;
      this.byShard = routes;
      try {
        close();
      } catch (RuntimeException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
    this.manifest = m;
    this.tableDir = b.table;
    this.vocabulary = vocab;
    this.partitioner = m.partitioner();
    this.dim = m.dim();
    this.byShard = routes;
    timer.scheduleWithFixedDelay(this::expireOverdue, SWEEP_MILLIS, SWEEP_MILLIS, TimeUnit.MILLISECONDS);
  }

  /**
   * Asks {@code t} what it hosts, checks that it serves the table of {@code m}, and routes to it the
   * shards that no transport added before serves.
   */
  private void route(ShardTransport t, TableManifest m, ShardTransport[] routes) throws IOException {
    transports.add(t);
    Messages.Describe d = t.describe();
    if (d.rows() != m.rows() || d.dim() != m.dim() || !m.partitioner().name().equals(d.partitioner()) || d.numShards() != m.numShards()) {
      throw new IOException("Cannot use endpoint " + t.endpoint() + ": it serves a table of V=" + d.rows() + ", C=" + d.dim()
          + ", P=" + d.numShards() + " (" + d.partitioner() + "), the manifest says V=" + m.rows() + ", C=" + m.dim()
          + ", P=" + m.numShards() + " (" + m.partitioner().name() + ")");
    }
    for (Messages.ShardInfo s : d.shards()) {
      if (routes[s.index()] == null) {
        routes[s.index()] = t;
      }
    }
  }

  private static ThreadFactory daemonThreads(String prefix) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, prefix + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  /** Fails the requests on the wire whose deadline passed. */
  private void expireOverdue() {
    long now = System.nanoTime();
    for (ShardTransport t : transports) {
      t.expire(now);
    }
  }

  /** The table manifest this client routes by (after a {@link TableSnapshot}, the committed one). */
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

  /** The endpoint that serves {@code shard}. */
  public String endpointOf(int shard) {
    return byShard[shard].endpoint();
  }

  /** The shards this client reaches in process (see {@link Builder#inProcess}), ascending; the others go through Flight. */
  public int[] inProcessShards() {
    return IntStream.range(0, byShard.length).filter(s -> byShard[s] instanceof InProcessTransport).toArray();
  }

  /**
   * The rows this client has sent since it was built, by path: the distinct ids of each shard's
   * part of every lookup and update (a call's duplicates are sent once), counted as the part is
   * handed to its shard's transport, whether or not the shard then answers; a lookup retried after
   * UNAVAILABLE counts once. Searches move no rows and are not counted. Cheap: one add per shard of
   * a call.
   */
  public RowCounts rowCounts() {
    return new RowCounts(lookedUpInProcess.sum(), lookedUpOverFlight.sum(), updatedInProcess.sum(), updatedOverFlight.sum());
  }

  /**
   * Rows a client sent ({@link #rowCounts}): looked up and updated, in process ({@link
   * Builder#inProcess}) and over Arrow Flight.
   */
  public record RowCounts(long lookedUpInProcess, long lookedUpOverFlight, long updatedInProcess, long updatedOverFlight) {
    /** Rows looked up or updated in process. */
    public long inProcess() {
      return lookedUpInProcess + updatedInProcess;
    }

    /** Rows looked up or updated over Arrow Flight. */
    public long overFlight() {
      return lookedUpOverFlight + updatedOverFlight;
    }

    /** The counts since {@code earlier} (a snapshot of the same client). */
    public RowCounts minus(RowCounts earlier) {
      return new RowCounts(lookedUpInProcess - earlier.lookedUpInProcess, lookedUpOverFlight - earlier.lookedUpOverFlight,
          updatedInProcess - earlier.updatedInProcess, updatedOverFlight - earlier.updatedOverFlight);
    }
  }

  /** Adds {@code plan}'s rows per shard to the counters of its path. */
  private void count(RequestPlan plan, LongAdder inProcess, LongAdder overFlight) {
    long local = 0;
    long remote = 0;
    for (int s : plan.shards) {
      if (byShard[s] instanceof InProcessTransport) {
        local += plan.size(s);
      } else {
        remote += plan.size(s);
      }
    }
    if (local > 0) {
      inProcess.add(local);
    }
    if (remote > 0) {
      overFlight.add(remote);
    }
  }

  /** Streams opened and dead idle streams skipped so far for {@code shard}'s lookups and updates (tests). */
  long[] streamCounts(int shard) {
    return byShard[shard] instanceof FlightTransport f ? f.streamCounts(shard) : new long[4];
  }

  private RequestPlan plan(long[] ids, int n, String verb) {
    ensureOpen(verb + " " + n + " ids");
    return new RequestPlan(ids, n, partitioner, verb);
  }

  private RequestPlan plan(long[] ids, String verb) {
    return plan(ids, ids.length, verb);
  }

  /** IllegalArgumentException unless {@code 0 <= n <= ids.length}. */
  private static void checkCount(int n, long[] ids, String verb) {
    if (n < 0 || n > ids.length) {
      throw new IllegalArgumentException("Cannot " + verb + " " + n + " ids: the id array holds " + ids.length);
    }
  }

  private long deadline() {
    return System.nanoTime() + deadlineNanos;
  }

  // ------------------------------------------------------------------ lookup

  /** Rows of {@code ids} in request order: row i at {@code out[i*C .. i*C+C)}. Duplicates allowed. */
  public void lookup(long[] ids, float[] out) throws IOException {
    checkOut(ids.length, out.length);
    lookup(plan(ids, "look up"), arrayScatter(out));
  }

  /** {@link #lookup(long[], float[])} without waiting; many may be in flight. */
  public CompletableFuture<Void> lookupAsync(long[] ids, float[] out) {
    return lookupAsync(ids, ids.length, out);
  }

  /**
   * {@link #lookupAsync(long[], float[])} of the first {@code n} ids of {@code ids}, rows into {@code
   * out[0 .. n*C)}: callers that reuse larger arrays pass them as they are, nothing is copied.
   */
  public CompletableFuture<Void> lookupAsync(long[] ids, int n, float[] out) {
    try {
      checkCount(n, ids, "look up");
      checkOut(n, out.length);
      RequestPlan plan = plan(ids, n, "look up");
      RequestPlan.Scatter scatter = arrayScatter(out);
      long deadline = deadline();
      count(plan, lookedUpInProcess, lookedUpOverFlight);
      return FanOut.async(plan.shards, byShard, (s, attempt) -> byShard[s].lookup(plan, s, scatter, deadline, attempt, true),
          true, deadline, s -> "look up " + plan.size(s) + " ids on", executor);
    } catch (RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  /** Rows of {@code ids} in request order into {@code out} from byte {@code offset} (ids.length x C x 4 bytes). */
  public void lookup(long[] ids, ArrowBuf out, long offset) throws IOException {
    long rowBytes = dim * 4L;
    long need = ids.length * rowBytes;
    if (offset < 0 || offset + need > out.capacity()) {
      throw new IllegalArgumentException(
          "Cannot look up " + ids.length + " ids: the buffer holds " + out.capacity() + " bytes, need " + need + " from offset " + offset);
    }
    int rowLength = (int) rowBytes;
    lookup(plan(ids, "look up"), (bytes, floats, row, request) -> out.setBytes(offset + request * rowBytes, bytes, row * rowLength, rowLength));
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
    lookup(ids, Vectors.allocateRows(out, ids.length), 0);
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

  private RequestPlan.Scatter arrayScatter(float[] out) {
    return new RequestPlan.ArrayScatter(out, dim);
  }

  /** A blocking lookup: this thread sends every shard's part, then waits for (and reads) the replies. */
  private void lookup(RequestPlan plan, RequestPlan.Scatter scatter) throws ShardException {
    long deadline = deadline();
    count(plan, lookedUpInProcess, lookedUpOverFlight);
    FanOut.await(plan.shards, byShard, (s, attempt) -> byShard[s].lookup(plan, s, scatter, deadline, attempt, false),
        true, deadline, s -> "look up " + plan.size(s) + " ids on");
  }

  // ------------------------------------------------------------------ update

  /** Sparse update with the server's learning rate; see {@link #update(long[], float[], float)}. */
  public void update(long[] ids, float[] grads) throws IOException {
    update(ids, grads, Float.NaN, false);
  }

  /**
   * Sparse update: gradient of {@code ids[i]} at {@code grads[i*C ..]}; duplicates are summed; each
   * server applies its optimizer with {@code learningRate}. Validated in full (ids, finite values)
   * before anything is sent. Never retried: a failed call names the shard, and other shards of the
   * same call may have applied their part.
   */
  public void update(long[] ids, float[] grads, float learningRate) throws IOException {
    checkLearningRate(learningRate);
    update(ids, grads, learningRate, false);
  }

  /** {@link #update(long[], float[], float)} without waiting; many may be in flight (pipelined). */
  public CompletableFuture<Void> updateAsync(long[] ids, float[] grads, float learningRate) {
    try {
      checkLearningRate(learningRate);
      return update(ids, grads, learningRate, true);
    } catch (IOException | RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  /**
   * {@link #updateAsync(long[], float[], float)} of the first {@code n} ids of {@code ids} with the
   * gradients {@code grads[0 .. n*C)}: callers that reuse larger arrays pass them as they are,
   * nothing is copied.
   */
  public CompletableFuture<Void> updateAsync(long[] ids, int n, float[] grads, float learningRate) {
    try {
      checkLearningRate(learningRate);
      checkCount(n, ids, "update");
      if ((long) n * dim > grads.length) {
        throw new IllegalArgumentException(
            "Cannot update " + n + " ids: " + grads.length + " gradient values, need " + (long) n * dim + " (C=" + dim + ")");
      }
      return update(ids, n, grads, learningRate, true);
    } catch (IOException | RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  /** Validates, plans and sends an update; waits for it unless {@code async} (then returns its future, else null). */
  private CompletableFuture<Void> update(long[] ids, float[] grads, float lr, boolean async) throws IOException {
    if ((long) ids.length * dim != grads.length) {
      throw new IllegalArgumentException(
          "Cannot update " + ids.length + " ids: " + grads.length + " gradient values, need " + (long) ids.length * dim + " (C=" + dim + ")");
    }
    return update(ids, ids.length, grads, lr, async);
  }

  /** {@link #update(long[], float[], float, boolean)} of the first {@code n} ids and {@code n*C} gradient values. */
  private CompletableFuture<Void> update(long[] ids, int n, float[] grads, float lr, boolean async) throws IOException {
    int values = n * dim;
    for (int i = 0; i < values; i++) {
      if (!Float.isFinite(grads[i])) {
        throw new IllegalArgumentException(
            "Cannot update id " + ids[i / dim] + ": gradient value " + (i % dim) + " is " + grads[i] + " (gradients must be finite; nothing was sent)");
      }
    }
    RequestPlan plan = plan(ids, n, "update");
    float[] sums = plan.sumGradients(grads, dim);
    long deadline = deadline();
    count(plan, updatedInProcess, updatedOverFlight);
    FanOut.Send send = (s, attempt) -> byShard[s].update(plan, sums, s, lr, deadline);
    FanOut.What what = s -> "update " + plan.size(s) + " ids on";
    if (async) {
      return FanOut.async(plan.shards, byShard, send, false, deadline, what, executor);
    }
    FanOut.await(plan.shards, byShard, send, false, deadline, what);
    return null;
  }

  private static void checkLearningRate(float lr) {
    if (!(lr > 0) || !Float.isFinite(lr)) {
      throw new IllegalArgumentException("Cannot update: learning rate " + lr + " (must be a positive finite number)");
    }
  }

  // ------------------------------------------------------------------ nearest

  /** Exact cosine top-k over the whole table: each shard's local top-k, merged. */
  public List<Neighbor> nearest(float[] vector, int k) throws IOException {
    return nearest(vector, k, -1);
  }

  /** The k nearest neighbours of the row of {@code id}, excluding {@code id} itself. */
  public List<Neighbor> nearest(long id, int k) throws IOException {
    float[] row = new float[dim];
    lookup(new long[] {id}, row);
    return nearest(row, k, id);
  }

  private List<Neighbor> nearest(float[] vector, int k, long exclude) throws IOException {
    ensureOpen("search");
    if (vector.length != dim) {
      throw new IllegalArgumentException("Cannot search: the query has " + vector.length + " values, the table has C=" + dim);
    }
    if (k < 1) {
      throw new IllegalArgumentException("Cannot search: k=" + k + " (must be at least 1)");
    }
    TopK top = new TopK(k);
    long deadline = deadline();
    int[] all = IntStream.range(0, byShard.length).toArray();
    FanOut.await(all, byShard, (s, attempt) -> byShard[s].nearest(s, vector, k, exclude, deadline, top), true, deadline,
        s -> "search");
    long[] ids = new long[k];
    float[] sims = new float[k];
    int n = top.drainBestFirst(ids, sims);
    List<Neighbor> result = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      result.add(new Neighbor(ids[i], sims[i]));
    }
    return result;
  }

  // ------------------------------------------------------------------ for TableSnapshot

  /** The transports that serve shards, each with the shards routed to it (ascending). */
  List<Routed> routes() {
    List<Routed> out = new ArrayList<>();
    for (ShardTransport t : transports) {
      int[] mine = IntStream.range(0, byShard.length).filter(s -> byShard[s] == t).toArray();
      if (mine.length > 0) {
        out.add(new Routed(t, mine));
      }
    }
    return out;
  }

  /** A transport and the shards the client routes to it. */
  record Routed(ShardTransport transport, int[] shards) {}

  /** The table directory the client was built from, or null. */
  TableLocation tableDir() {
    return tableDir;
  }

  /** Routes by {@code m} from now on (a snapshot committed it). */
  void committed(TableManifest m) {
    manifest = m;
  }

  ExecutorService executor() {
    return executor;
  }

  void ensureOpen(String what) {
    if (closed) {
      throw new IllegalStateException("Cannot " + what + ": the client is closed");
    }
  }

  @Override
  public void close() {
    closed = true;
    timer.shutdownNow();
    List<AutoCloseable> parts = new ArrayList<>();
    // The streams first: their requests fail (CANCELLED) and their readers, which may run on the
    // executor, end and free the buffers; then the threads; then the channels.
    parts.addAll(transports);
    parts.add(() -> {
      executor.shutdownNow();
      executor.awaitTermination(5, TimeUnit.SECONDS);
    });
    for (ShardTransport t : transports) {
      if (t instanceof FlightTransport f) {
        parts.add(f::closeEndpoint);
      }
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

  @Override
  public String toString() {
    return "EmbeddingClient" + Arrays.toString(transports.stream().map(ShardTransport::endpoint).toArray());
  }
}
