package io.embstore.shard;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.embstore.format.Partitioner;
import io.embstore.format.ShardWriter;
import io.embstore.format.Table;
import io.embstore.format.TableFormat;
import io.embstore.format.TableWriter;
import io.embstore.format.TableManifest;
import java.io.File;
import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Consumer;
import org.apache.arrow.flight.FlightServer;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.util.AutoCloseables;

/**
 * Hosts shards of one table in off-heap Arrow memory and serves them over Arrow Flight (the
 * protocol of {@code docs/protocol.md}). Each shard is one contiguous buffer of rows x C float32
 * plus one buffer per optimizer state column, from a child allocator named {@code shard-N} of the
 * server's allocator {@code shard-server}; {@link #close()} stops the Flight server and frees them.
 */
public final class ShardServer implements AutoCloseable {
  /** Default largest request: 1 Mi ids. */
  public static final int DEFAULT_MAX_IDS = 1 << 20;
  /** Default largest gRPC message a server accepts: 256 MiB. */
  public static final int DEFAULT_MAX_MESSAGE_BYTES = 256 << 20;

  private final Path tableDir;
  private final TableManifest baseManifest;
  private final OptimizerSpec optimizer;
  private final HostedShard[] byIndex;
  private final int[] shardIndexes;
  private final String host;
  private final boolean everyAddress;
  private final int maxIds;
  private final int maxMessageBytes;
  private final boolean auth;
  /** The write token's bytes (null without one): what an in-process client must present. */
  private final byte[] writeToken;
  /** Snapshots write only below this directory (null: anywhere). */
  private final Path snapshotRoot;
  private final boolean tls;
  private final BufferAllocator ownedRoot;
  private final BufferAllocator allocator;
  private final BufferAllocator flightAllocator;
  private ShardProducer producer;
  private final AtomicLong step;
  private final long startNanos = System.nanoTime();
  private FlightServer flight;
  private RecentRates rates;
  private volatile boolean closed;
  /**
   * Shard servers of this JVM by endpoint, for clients built with {@link
   * EmbeddingClient.Builder#inProcessShards}: a server with tokens only for a client that carries its
   * write token ({@link #runningAt}).
   */
  private static final ConcurrentMap<String, ShardServer> IN_PROCESS = new ConcurrentHashMap<>();
  /** In-process calls hold the read lock; {@link #close} takes the write lock before freeing any shard. */
  private final ReentrantReadWriteLock inProcessGuard = new ReentrantReadWriteLock();
  private boolean inProcessClosed;
  /** {@link #endpoint} once started (it cannot be asked of a closed Flight server). */
  private String inProcessUri;
  private final LongAdder inProcessRequests = new LongAdder();

  public static Builder builder() {
    return new Builder();
  }

  /** Configures and starts a server; see the setters. */
  public static final class Builder {
    private Path table;
    private int[] shards;
    private TableManifest shape;
    private RowInitializer init;
    private OptimizerSpec optimizer;
    private String host = "127.0.0.1";
    private int port;
    private BufferAllocator parent;
    private String readToken;
    private String writeToken;
    private int maxIds = DEFAULT_MAX_IDS;
    private int maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
    private File tlsCert;
    private File tlsKey;
    private File clientCa;
    private Path snapshotRoot;

    private Builder() {}

    /** Loads shards from the committed table in {@code dir} (checksums verified). */
    public Builder table(Path dir) {
      this.table = dir;
      return this;
    }

    /** The shards to host; default all. */
    public Builder shards(int... shardIndexes) {
      this.shards = shardIndexes.clone();
      return this;
    }

    /**
     * Hosts shards created in memory: the row of id {@code id} is filled by {@code init}; {@code
     * shape} gives rows, dim, partitioner, number of shards and optimizer (its shard list entries
     * are ignored).
     */
    public Builder initialize(TableManifest shape, RowInitializer init) {
      this.shape = shape;
      this.init = init;
      return this;
    }

    /** The optimizer for updates; default the table's, else SGD with lr 0.025. */
    public Builder optimizer(OptimizerSpec spec) {
      this.optimizer = spec;
      return this;
    }

    public Builder host(String host) {
      this.host = host;
      return this;
    }

    /** Port to bind; 0 (default) picks a free one. */
    public Builder port(int port) {
      this.port = port;
      return this;
    }

    /** The allocator the server makes its children from; default a root allocator it owns. */
    public Builder allocator(BufferAllocator parent) {
      this.parent = parent;
      return this;
    }

    /** Enables bearer auth: this token may look up, search and describe. */
    public Builder readToken(String token) {
      this.readToken = token;
      return this;
    }

    /**
     * The {@code snapshot} action writes only into {@code dir} or directories below it (compared as
     * absolute, normalised paths); a snapshot elsewhere is refused with PERMISSION_DENIED. Default:
     * anywhere the process may write.
     */
    public Builder snapshotRoot(Path dir) {
      this.snapshotRoot = dir;
      return this;
    }

    /** Enables bearer auth: this token may do everything, including updates and snapshots. */
    public Builder writeToken(String token) {
      this.writeToken = token;
      return this;
    }

    /** Largest number of ids in one request batch; more is RESOURCE_EXHAUSTED. */
    public Builder maxIdsPerRequest(int n) {
      this.maxIds = n;
      return this;
    }

    /** Largest gRPC message accepted (bytes); larger is RESOURCE_EXHAUSTED. */
    public Builder maxMessageBytes(int n) {
      this.maxMessageBytes = n;
      return this;
    }

    /** Serves TLS with this PEM certificate chain and PEM private key. */
    public Builder tls(File certChain, File privateKey) {
      this.tlsCert = certChain;
      this.tlsKey = privateKey;
      return this;
    }

    /**
     * Mutual TLS: with {@link #tls}, accept only clients that present a certificate signed by a CA
     * in this PEM file; others fail the handshake (UNAVAILABLE at the client).
     */
    public Builder clientCa(File caPem) {
      this.clientCa = caPem;
      return this;
    }

    public ShardServer start() throws IOException {
      if ((table == null) == (shape == null)) {
        throw new IllegalArgumentException("Cannot start shard server: give exactly one of table(dir) or initialize(shape, init)");
      }
      if (maxIds < 1) {
        throw new IllegalArgumentException("Cannot start shard server: maxIdsPerRequest=" + maxIds + " (must be at least 1)");
      }
      if (maxMessageBytes < 1024) {
        throw new IllegalArgumentException("Cannot start shard server: maxMessageBytes=" + maxMessageBytes + " (must be at least 1024)");
      }
      if ((readToken != null && readToken.isEmpty()) || (writeToken != null && writeToken.isEmpty())) {
        throw new IllegalArgumentException("Cannot start shard server: empty token (omit it to disable auth)");
      }
      if ((tlsCert == null) != (tlsKey == null)) {
        throw new IllegalArgumentException("Cannot start shard server: TLS needs both a certificate chain and a key");
      }
      if (clientCa != null && tlsCert == null) {
        throw new IllegalArgumentException("Cannot start shard server: client certificates (" + clientCa + ") need TLS (a certificate chain and a key)");
      }
      return new ShardServer(this);
    }
  }

  private ShardServer(Builder b) throws IOException {
    Table opened = b.table == null ? null : Table.open(b.table);
    TableManifest m = opened == null ? b.shape : opened.manifest();
    this.tableDir = b.table;
    OptimizerSpec spec = b.optimizer;
    if (spec == null) {
      spec = m.optimizer() == null ? OptimizerSpec.sgd(0.025) : OptimizerSpec.fromManifest(m.optimizer());
    }
    this.optimizer = spec;
    long initialStep = m.optimizer() != null && m.optimizer().name().equals(spec.name()) ? m.optimizer().step() : 0;
    this.step = new AtomicLong(initialStep);
    this.baseManifest = m;
    this.host = b.host;
    this.everyAddress = isWildcard(b.host);
    this.maxIds = b.maxIds;
    this.maxMessageBytes = b.maxMessageBytes;
    this.auth = b.readToken != null || b.writeToken != null;
    this.writeToken = b.writeToken == null ? null : b.writeToken.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    this.snapshotRoot = b.snapshotRoot == null ? null : b.snapshotRoot.toAbsolutePath().normalize();
    this.tls = b.tlsCert != null;
    int p = m.numShards();
    int[] wanted = b.shards == null ? range(p) : b.shards;
    boolean[] seen = new boolean[p];
    for (int s : wanted) {
      if (s < 0 || s >= p) {
        throw new IllegalArgumentException("Cannot host shard " + s + ": the table has shards 0.." + (p - 1));
      }
      if (seen[s]) {
        throw new IllegalArgumentException("Cannot host shard " + s + ": listed twice");
      }
      seen[s] = true;
    }
    this.shardIndexes = wanted.clone();
    Arrays.sort(shardIndexes);
    this.byIndex = new HostedShard[p];
    this.ownedRoot = b.parent == null ? new RootAllocator() : null;
    BufferAllocator parent = b.parent == null ? ownedRoot : b.parent;
    this.allocator = parent.newChildAllocator("shard-server", 0, Long.MAX_VALUE);
    this.flightAllocator = allocator.newChildAllocator("flight", 0, Long.MAX_VALUE);
    try {
      for (int s : shardIndexes) {
        byIndex[s] = opened != null
            ? HostedShard.load(opened, s, spec, allocator)
            : HostedShard.initialize(m.partitioner(), m.dim(), s, b.init, spec, allocator);
      }
      this.rates = RecentRates.start(() -> total(h -> h.lookupRows.sum()), () -> total(h -> h.lookupRequests.sum()),
          () -> total(h -> h.updateRows.sum()), () -> total(h -> h.updateRequests.sum()));
      Location location = tls ? Location.forGrpcTls(host, b.port) : Location.forGrpcInsecure(host, b.port);
      this.producer = new ShardProducer(this, flightAllocator);
      FlightServer.Builder fb = FlightServer.builder(flightAllocator, location, producer)
          .maxInboundMessageSize(maxMessageBytes);
      if (auth) {
        fb.headerAuthenticator(new TokenAuthenticator(b.readToken, b.writeToken));
      }
      if (tls) {
        fb.useTls(b.tlsCert, b.tlsKey);
        if (b.clientCa != null) {
          fb.useMTlsClientVerification(b.clientCa);
        }
      }
      // gRPC callbacks (deframing a request batch into the exchange's queue, the auth check, the
      // cheap actions) run on the Netty event loop instead of hopping to Flight's executor first:
      // one thread hand-off less per request batch. Exchange handlers still run on Flight's executor
      // (Flight hands them to it itself), and the one slow action, snapshot, runs on its own thread
      // (ShardProducer.doAction).
      fb.transportHint("grpc.builderConsumer", (Consumer<io.grpc.netty.NettyServerBuilder>) io.grpc.netty.NettyServerBuilder::directExecutor);
      this.flight = fb.build();
      flight.start();
      this.inProcessUri = endpoint();
      IN_PROCESS.put(inProcessUri, this);
    } catch (IOException | RuntimeException e) {
      try {
        close();
      } catch (RuntimeException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
  }

  private static int[] range(int n) {
    int[] r = new int[n];
    for (int i = 0; i < n; i++) {
      r[i] = i;
    }
    return r;
  }

  /**
   * {@code grpc+tcp://HOST:PORT} (or {@code grpc+tls://} with TLS), one a client can dial: bound to a
   * wildcard address ({@code 0.0.0.0} or {@code ::}), which names no server, it names the loopback
   * address {@code 127.0.0.1} instead, the one address certain to reach the server from this
   * machine (see {@link #listensOnEveryAddress}).
   */
  public String endpoint() {
    return (tls ? "grpc+tls://" : "grpc+tcp://") + hostPort(everyAddress ? "127.0.0.1" : host);
  }

  /** {@code HOST:PORT} where the server listens, as bound ({@code [::]:PORT} for IPv6 addresses). */
  public String listenAddress() {
    return hostPort(host);
  }

  private String hostPort(String h) {
    return (h.contains(":") ? "[" + h + "]" : h) + ":" + port();
  }

  /** Whether the server was bound to a wildcard address: clients elsewhere reach it by this machine's own. */
  public boolean listensOnEveryAddress() {
    return everyAddress;
  }

  /** The address the server was bound to, as given ({@code 127.0.0.1} by default). */
  public String bindAddress() {
    return host;
  }

  /** Whether {@code host} is a wildcard address (a host that does not resolve fails to bind just after). */
  private static boolean isWildcard(String host) {
    try {
      return InetAddress.getByName(host).isAnyLocalAddress();
    } catch (UnknownHostException e) {
      return false;
    }
  }

  public int port() {
    return flight.getPort();
  }

  /** Hosted shard indexes, ascending. */
  public int[] shards() {
    return shardIndexes.clone();
  }

  /**
   * The table this server hosts: its manifest (or the initialize shape) with the optimizer in use
   * and the number of updates applied as its step.
   */
  public TableManifest manifest() {
    return baseManifest.toBuilder().optimizer(optimizer.toManifest(baseManifest.dim(), step())).build();
  }

  /** The optimizer applied to updates. */
  public OptimizerSpec optimizer() {
    return optimizer;
  }

  /**
   * Writes the hosted shards (embeddings + optimizer state) as shard files of table version {@code
   * version} in {@code dir}; returns their manifest entries. Lookups and updates continue meanwhile
   * (see {@link HostedShard#writeTo} for the consistency of each row). The files are not committed:
   * the caller commits a manifest naming them (as {@link EmbeddingClient#snapshot} does).
   */
  public List<TableManifest.ShardEntry> writeShards(Path dir, long version) throws IOException {
    return writeShards(dir, version, shardIndexes);
  }

  /** {@link #writeShards(Path, long)} for some of the hosted shards. */
  List<TableManifest.ShardEntry> writeShards(Path dir, long version, int[] which) throws IOException {
    checkOpen();
    if (snapshotRoot != null && !dir.toAbsolutePath().normalize().startsWith(snapshotRoot)) {
      throw ShardErrors.unauthorized("Cannot snapshot to " + dir + ": outside " + snapshotRoot
          + " (this server writes snapshots only below it)");
    }
    for (int s : which) {
      hosted(s, "snapshot");
    }
    TableManifest m = manifest();
    List<ShardWriter> writers = new ArrayList<>();
    List<TableManifest.ShardEntry> entries = new ArrayList<>();
    try (BufferAllocator scratch = allocator.newChildAllocator("snapshot", 0, Long.MAX_VALUE)) {
      try {
        for (int s : which) {
          HostedShard shard = byIndex[s];
          Path file = dir.resolve(TableFormat.shardFileName(s, version));
          // A snapshot of this version killed before its commit may have left the file behind.
          TableWriter.removeUncommitted(dir, file, version);
          ShardWriter w = ShardWriter.create(file, s, m.partitioner(), m.dim(), shard.stateColumns, scratch);
          writers.add(w);
          shard.writeTo(w, scratch);
          entries.add(w.finish());
        }
      } finally {
        IOException failure = null;
        for (ShardWriter w : writers) {
          try {
            w.close();
          } catch (IOException e) {
            failure = e;
          }
        }
        if (failure != null && entries.size() == writers.size()) {
          throw failure;
        }
      }
    }
    return entries;
  }

  // ------------------------------------------------------------------ package-private for the producer

  HostedShard hosted(int shard, String verb) {
    if (shard < 0 || shard >= byIndex.length || byIndex[shard] == null) {
      throw ShardErrors.notFound(
          "Cannot " + verb + " shard " + shard + ": not hosted by this server (hosts " + Arrays.toString(shardIndexes) + " of " + byIndex.length + ")");
    }
    return byIndex[shard];
  }

  int maxIdsPerRequest() {
    return maxIds;
  }

  int maxMessageBytes() {
    return maxMessageBytes;
  }

  boolean authEnabled() {
    return auth;
  }

  /**
   * Updates applied so far: the table's step at load plus the largest number of update batches
   * any hosted shard has applied (every update call of a client sends each touched shard one).
   */
  long step() {
    long most = 0;
    for (int s : shardIndexes) {
      most = Math.max(most, byIndex[s].updateRequests.sum());
    }
    return step.get() + most;
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("Cannot use shard server " + (flight == null ? "" : endpoint()) + ": closed");
    }
  }

  ObjectNode describe() {
    TableManifest m = manifest();
    Partitioner p = m.partitioner();
    ObjectNode n = Protocol.JSON.createObjectNode();
    n.put("protocolVersion", Protocol.VERSION);
    n.put("table", tableDir == null ? null : tableDir.toAbsolutePath().toString());
    n.put("tableVersion", m.tableVersion());
    n.put("rows", m.rows());
    n.put("dim", m.dim());
    n.put("partitioner", p.name());
    n.put("numShards", p.numShards());
    ArrayNode shards = n.putArray("shards");
    for (int s : shardIndexes) {
      shards.addObject()
          .put("index", s)
          .put("rows", p.shardRows(s))
          .put("minId", p.minId(s))
          .put("maxId", p.maxId(s))
          .put("description", p.describeShard(s));
    }
    n.set("optimizer", optimizerJson(m.optimizer()));
    n.put("maxIdsPerRequest", maxIds);
    n.put("maxMessageBytes", maxMessageBytes);
    n.put("auth", auth);
    return n;
  }

  static ObjectNode optimizerJson(TableManifest.Optimizer o) {
    ObjectNode n = Protocol.JSON.createObjectNode();
    n.put("name", o.name());
    ObjectNode params = n.putObject("params");
    o.params().forEach(params::put);
    ArrayNode cols = n.putArray("stateColumns");
    for (TableManifest.StateColumn c : o.stateColumns()) {
      cols.addObject().put("name", c.name()).put("width", c.width());
    }
    n.put("step", o.step());
    return n;
  }

  static TableManifest.Optimizer optimizerFromJson(com.fasterxml.jackson.databind.JsonNode n) {
    java.util.Map<String, Double> params = new java.util.LinkedHashMap<>();
    n.path("params").fields().forEachRemaining(e -> params.put(e.getKey(), e.getValue().asDouble()));
    List<TableManifest.StateColumn> cols = new ArrayList<>();
    for (com.fasterxml.jackson.databind.JsonNode c : n.path("stateColumns")) {
      cols.add(new TableManifest.StateColumn(c.path("name").asText(), c.path("width").asInt()));
    }
    return new TableManifest.Optimizer(n.path("name").asText(), params, cols, n.path("step").asLong());
  }

  private long total(java.util.function.ToLongFunction<HostedShard> counter) {
    long sum = 0;
    for (int s : shardIndexes) {
      sum += counter.applyAsLong(byIndex[s]);
    }
    return sum;
  }

  /**
   * The open server of this JVM whose {@link #endpoint} is {@code uri}, or null; a server with
   * tokens only when {@code bearer} is its write token (compared in constant time), so that an
   * in-process client has no more access than it would have through Flight.
   */
  static ShardServer runningAt(String uri, String bearer) {
    ShardServer s = IN_PROCESS.get(uri);
    if (s == null || !s.auth) {
      return s;
    }
    return s.writeToken != null && bearer != null
        && java.security.MessageDigest.isEqual(s.writeToken, bearer.getBytes(java.nio.charset.StandardCharsets.UTF_8)) ? s : null;
  }

  /**
   * Runs {@code work} on hosted shard {@code shard} from a client in this JVM, with no Flight call:
   * the same shard memory, stripe locks and counters as the server's own handlers. Fails with
   * UNAVAILABLE (as a call to a stopped server would) once {@link #close} has begun; close waits for
   * calls under way before it frees a shard.
   */
  void inProcess(int shard, Consumer<HostedShard> work) {
    if (!inProcessGuard.readLock().tryLock()) {
      throw ShardErrors.unavailable("Cannot use shard server " + inProcessUri + " in process: it is closing");
    }
    try {
      if (inProcessClosed) {
        throw ShardErrors.unavailable("Cannot use shard server " + inProcessUri + " in process: closed");
      }
      HostedShard h = shard >= 0 && shard < byIndex.length ? byIndex[shard] : null;
      if (h == null) {
        throw ShardErrors.notFound("Cannot use shard " + shard + ": not hosted by " + inProcessUri);
      }
      inProcessRequests.increment();
      work.accept(h);
    } finally {
      inProcessGuard.readLock().unlock();
    }
  }

  ObjectNode stats() {
    long now = System.nanoTime();
    double seconds = Math.max(1e-9, (now - startNanos) / 1e9);
    long rows = 0;
    long bytes = 0;
    long lookups = 0;
    long lookupRequests = 0;
    long updates = 0;
    long updateRequests = 0;
    ObjectNode n = Protocol.JSON.createObjectNode();
    ArrayNode shards = n.putArray("shards");
    for (int s : shardIndexes) {
      HostedShard h = byIndex[s];
      long l = h.lookupRows.sum();
      long u = h.updateRows.sum();
      shards.addObject().put("index", s).put("rows", h.rows).put("bytes", h.bytes())
          .put("lookupRows", l).put("updateRows", u);
      rows += h.rows;
      bytes += h.bytes();
      lookups += l;
      lookupRequests += h.lookupRequests.sum();
      updates += u;
      updateRequests += h.updateRequests.sum();
    }
    double[] recent = rates.perSecond(new long[] {lookups, lookupRequests, updates, updateRequests}, now);
    n.put("uptimeSeconds", seconds);
    n.put("rows", rows);
    n.put("bytes", bytes);
    n.put("allocatedBytes", allocator.getAllocatedMemory());
    n.put("lookupRows", lookups);
    n.put("lookupRequests", lookupRequests);
    n.put("updateRows", updates);
    n.put("updateRequests", updateRequests);
    n.put("inProcessRequests", inProcessRequests.sum());
    n.put("rateWindowSeconds", rates.windowSeconds(now));
    n.put("lookupRowsPerSecond", recent[0]);
    n.put("lookupRequestsPerSecond", recent[1]);
    n.put("updateRowsPerSecond", recent[2]);
    n.put("updateRequestsPerSecond", recent[3]);
    n.put("lookupRowsPerSecondSinceStart", lookups / seconds);
    n.put("updateRowsPerSecondSinceStart", updates / seconds);
    return n;
  }

  /** Stops serving (in-flight calls get a grace period of 5 s), then frees every shard. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (inProcessUri != null) {
      IN_PROCESS.remove(inProcessUri, this);
    }
    inProcessGuard.writeLock().lock();
    try {
      inProcessClosed = true;
    } finally {
      inProcessGuard.writeLock().unlock();
    }
    List<AutoCloseable> parts = new ArrayList<>();
    if (rates != null) {
      parts.add(rates);
    }
    if (flight != null) {
      parts.add(() -> {
        producer.stopExchanges();
        flight.shutdown();
        if (!flight.awaitTermination(5, TimeUnit.SECONDS)) {
          flight.close();
        }
      });
      parts.add(flight);
      // cancelled long-lived exchanges end their handlers just after the call is done
      parts.add(() -> producer.awaitHandlers(5000));
    }
    for (HostedShard s : byIndex) {
      if (s != null) {
        parts.add(s);
      }
    }
    parts.add(flightAllocator);
    parts.add(allocator);
    if (ownedRoot != null) {
      parts.add(ownedRoot);
    }
    try {
      AutoCloseables.close(parts);
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException("Cannot close shard server: " + e.getMessage(), e);
    }
  }
}
