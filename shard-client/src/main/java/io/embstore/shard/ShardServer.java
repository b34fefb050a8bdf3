package io.embstore.shard;

import io.embstore.format.Partitioner;
import io.embstore.format.ShardWriter;
import io.embstore.format.Table;
import io.embstore.format.TableFormat;
import io.embstore.format.TableLocation;
import io.embstore.format.TableStorage;
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

  private final TableLocation tableDir;
  private final TableStorage storage;
  private final TableManifest baseManifest;
  private final Optimizer optimizer;
  private final HostedShard[] byIndex;
  private final int[] shardIndexes;
  private final String host;
  private final boolean everyAddress;
  private final int maxIds;
  private final int maxMessageBytes;
  private final boolean auth;
  private final boolean tls;
  /** Snapshots write only below this directory, or anywhere when null. */
  private final SnapshotRoot snapshotRoot;
  /** How the write-ahead log syncs, or null without a log. */
  private final ShardLog.Sync walSync;
  /** Forces the logs every N ms with {@code --wal-sync <N>ms}; null otherwise. */
  private java.util.concurrent.ScheduledExecutorService walSyncer;
  private final BufferAllocator ownedRoot;
  private final BufferAllocator allocator;
  private final BufferAllocator flightAllocator;
  private ShardProducer producer;
  private LookupService lookups;
  private UpdateService updates;
  private final AtomicLong step;
  private final long startNanos = System.nanoTime();
  private FlightServer flight;
  private RecentRates rates;
  private volatile boolean closed;
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
    private TableLocation table;
    private Partitioner repartition;
    private TableStorage storage = TableStorage.defaults();
    private int[] shards;
    private TableManifest shape;
    private RowInitializer init;
    private Optimizer optimizer;
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
    private String snapshotDir;
    private Path wal;
    private String walSync;

    private Builder() {}

    /** Loads shards from the committed table in the local directory {@code dir} (checksums verified). */
    public Builder table(Path dir) {
      return table(TableLocation.of(dir));
    }

    /**
     * Loads shards from the committed table at {@code dir}, on any storage, streaming each shard
     * file into memory once (its checksum computed as it is read).
     */
    public Builder table(TableLocation dir) {
      this.table = dir;
      this.repartition = null;
      return this;
    }

    /**
     * Loads the table at {@code dir} re-partitioned as {@code as} (same rows, any number of shards
     * or partitioner): each hosted shard gets its rows (and optimizer state) by one scan of every
     * shard file of the table, so a checkpoint resumes onto another shard count. The server then
     * reports and snapshots the table in the new partitioning. Without a change of partitioning
     * this is {@link #table(TableLocation)}.
     */
    public Builder table(TableLocation dir, Partitioner as) {
      this.table = dir;
      this.repartition = as;
      return this;
    }

    /**
     * How snapshot directories named by clients are reached (their Hadoop configuration for
     * {@code hdfs:}, {@code s3a:}); default {@link TableStorage#defaults()}.
     */
    public Builder storage(TableStorage s) {
      this.storage = s;
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
    public Builder optimizer(Optimizer spec) {
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

    /**
     * The directory the {@code snapshot} action may write into (it or any directory below it,
     * symbolic links resolved); any other directory is refused with UNAUTHORIZED (gRPC
     * PERMISSION_DENIED) and nothing is written. Created if missing. Default: the served table's own
     * directory; a server started with {@link #initialize} and no snapshot directory writes
     * snapshots wherever it is asked.
     */
    public Builder snapshotDir(Path dir) {
      return snapshotDir(dir.toAbsolutePath().toString());
    }

    /** {@link #snapshotDir(Path)} as a table URI on any storage ({@code hdfs:}, {@code s3a:}: compared by path, no links). */
    public Builder snapshotDir(String uri) {
      this.snapshotDir = uri;
      return this;
    }

    /**
     * Logs every update batch before acknowledging it, one write-ahead log per hosted shard in
     * {@code dir/shard-NNNNN/}, and replays the logs on top of the loaded table at start (a
     * restarted server is given the same directory). See {@code docs/reliability.md}.
     */
    public Builder wal(Path dir) {
      this.wal = dir;
      return this;
    }

    /**
     * When a logged update is acknowledged: {@code always} (default: after an fsync covering it,
     * shared by the batches that arrive together), {@code <N>ms} (after the write; the log is forced
     * every N ms) or {@code none} (after the write; the operating system writes it back).
     */
    public Builder walSync(String mode) {
      this.walSync = mode;
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
      if (walSync != null && wal == null) {
        throw new IllegalArgumentException("Cannot start shard server: walSync " + walSync + " needs a write-ahead log directory (wal)");
      }
      if (walSync != null) {
        ShardLog.Sync.parse(walSync);
      }
      return new ShardServer(this);
    }
  }

  private ShardServer(Builder b) throws IOException {
    Table opened = b.table == null ? null : Table.open(b.table);
    boolean repartitioned = opened != null && b.repartition != null && !b.repartition.equals(opened.manifest().partitioner());
    TableManifest m = opened == null ? b.shape
        : repartitioned ? opened.manifest().withPartitioning(b.repartition) : opened.manifest();
    this.tableDir = b.table;
    this.storage = b.storage;
    Optimizer spec = b.optimizer;
    if (spec == null) {
      spec = m.optimizer() == null ? Optimizer.sgd(Optimizer.DEFAULT_SGD_LR) : Optimizer.fromManifest(m.optimizer());
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
    this.tls = b.tlsCert != null;
    this.walSync = b.wal == null ? null : b.walSync == null ? ShardLog.Sync.ALWAYS : ShardLog.Sync.parse(b.walSync);
    if (b.wal != null && repartitioned) {
      throw new IllegalArgumentException("Cannot start shard server: a write-ahead log (" + b.wal + ") follows the table as it is"
          + " partitioned, not re-partitioned to " + b.repartition.numShards() + " shards as it loads (reshard it first: embstore reshard)");
    }
    TableLocation root = b.snapshotDir != null ? storage.location(b.snapshotDir) : b.table;
    this.snapshotRoot = root == null ? null : SnapshotRoot.of(root);
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
      if (repartitioned) {
        HostedShard.loadRepartitioned(opened, m.partitioner(), shardIndexes, spec, allocator, byIndex);
      }
      for (int s : shardIndexes) {
        if (byIndex[s] == null) {
          byIndex[s] = opened != null
              ? HostedShard.load(opened, s, spec, allocator)
              : HostedShard.initialize(m.partitioner(), m.dim(), m.valueType(), s, b.init, spec, allocator);
        }
      }
      if (b.wal != null) {
        long replayed = 0;
        for (int s : shardIndexes) {
          ShardLog.Origin origin = opened == null ? ShardLog.Origin.INITIALIZED : ShardLog.Origin.of(m.tableVersion(), m.shard(s));
          replayed = Math.max(replayed, byIndex[s].openLog(b.wal, walSync, origin, storage));
        }
        step.addAndGet(replayed);
        if (walSync.periodic()) {
          walSyncer = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "embstore-wal-sync");
            t.setDaemon(true);
            return t;
          });
          walSyncer.scheduleWithFixedDelay(this::syncLogs, walSync.intervalMillis(), walSync.intervalMillis(), TimeUnit.MILLISECONDS);
        }
      }
      this.rates = RecentRates.start(() -> total(h -> h.lookupRows.sum()), () -> total(h -> h.lookupRequests.sum()),
          () -> total(h -> h.updateRows.sum()), () -> total(h -> h.updateRequests.sum()));
      Location location = tls ? Location.forGrpcTls(host, b.port) : Location.forGrpcInsecure(host, b.port);
      this.producer = new ShardProducer(this, flightAllocator);
      FlightServer.Builder fb = FlightServer.builder(flightAllocator, location, producer)
          .maxInboundMessageSize(maxMessageBytes);
      TokenAuthenticator tokens = auth ? new TokenAuthenticator(b.readToken, b.writeToken) : null;
      if (auth) {
        fb.headerAuthenticator(tokens);
      }
      if (tls) {
        fb.useTls(b.tlsCert, b.tlsKey);
        if (b.clientCa != null) {
          fb.useMTlsClientVerification(b.clientCa);
        }
      }
      // gRPC callbacks (deframing a request batch into the exchange's queue, the auth check, the
      // cheap actions, the fast lookups) run on the Netty event loop instead of hopping to Flight's
      // executor first: one thread hand-off less per request batch. Exchange handlers still run on
      // Flight's executor (Flight hands them to it itself), and the one slow action, snapshot, runs on
      // its own thread (ShardProducer.doAction).
      this.lookups = new LookupService(this, tokens, flightAllocator);
      this.updates = new UpdateService(this, tokens, flightAllocator);
      fb.transportHint("grpc.builderConsumer", (Consumer<io.grpc.netty.NettyServerBuilder>) nsb -> {
        nsb.directExecutor();
        // the fast lookup and update methods next to the Flight service, on the same port and TLS;
        // they check the same tokens themselves (Flight's auth middleware covers the Flight service only)
        nsb.addService(io.grpc.ServerServiceDefinition.builder(LookupMethod.SERVICE)
            .addMethod(lookups.method())
            .addMethod(updates.method())
            .build());
      });
      this.flight = fb.build();
      flight.start();
      this.inProcessUri = endpoint();
    } catch (IOException | RuntimeException e) {
      try {
        close();
      } catch (RuntimeException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
  }

  /** Forces every shard's write-ahead log ({@code --wal-sync <N>ms}); a failure leaves that log refusing updates. */
  private void syncLogs() {
    for (int s : shardIndexes) {
      ShardLog log = byIndex[s].log();
      try {
        log.sync(false);
      } catch (IOException | RuntimeException e) {
        org.slf4j.LoggerFactory.getLogger(ShardServer.class).warn("Cannot sync {}: {}", log, e.toString());
      }
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
  public Optimizer optimizer() {
    return optimizer;
  }

  /**
   * Writes the hosted shards (embeddings + optimizer state) as shard files of table version {@code
   * version} in {@code dir}; returns their manifest entries. Lookups and updates continue meanwhile
   * (see {@link HostedShard#writeTo} for the consistency of each row). The files are not committed:
   * the caller commits a manifest naming them (as {@link TableSnapshot} does).
   */
  public List<TableManifest.ShardEntry> writeShards(Path dir, long version) throws IOException {
    return writeShards(TableLocation.of(dir), version, shardIndexes);
  }

  /** {@link #writeShards(Path, long)} into a table directory on any storage. */
  public List<TableManifest.ShardEntry> writeShards(TableLocation dir, long version) throws IOException {
    return writeShards(dir, version, shardIndexes);
  }

  /** How this server reaches the directories that snapshots name. */
  TableStorage storage() {
    return storage;
  }

  /** {@link #writeShards(TableLocation, long)} for some of the hosted shards. */
  List<TableManifest.ShardEntry> writeShards(TableLocation dir, long version, int[] which) throws IOException {
    checkOpen();
    for (int s : which) {
      hosted(s, "snapshot");
    }
    if (!baseManifest.valueType().isTrainable()) {
      throw ShardErrors.invalid("Cannot snapshot the shards of " + dir + ": their rows are " + baseManifest.valueType()
          + " (a read-only serving copy never changes; its table is its snapshot)");
    }
    TableManifest m = manifest();
    List<ShardWriter> writers = new ArrayList<>();
    List<TableManifest.ShardEntry> entries = new ArrayList<>();
    try (BufferAllocator scratch = allocator.newChildAllocator("snapshot", 0, Long.MAX_VALUE)) {
      try {
        for (int s : which) {
          HostedShard shard = byIndex[s];
          String file = TableFormat.shardFileName(s, version);
          // A snapshot of this version killed before its commit may have left the file behind.
          TableWriter.removeUncommitted(dir, file, version);
          ShardWriter w = ShardWriter.create(dir, file, s, m.partitioner(), m.dim(), m.valueType(), shard.stateColumns, scratch);
          writers.add(w);
          entries.add(shard.snapshotTo(w, scratch, dir.isLocal() ? dir.localPath().toAbsolutePath().toString() : dir.uri(), version));
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

  /** RESOURCE_EXHAUSTED when a request carries more than {@code maxIdsPerRequest} ids. */
  void checkIdCount(int n, String verb) {
    if (n > maxIds) {
      throw ShardErrors.exhausted(
          "Cannot " + verb + " " + n + " ids: more than " + maxIds + " per request (maxIdsPerRequest; split the request)");
    }
  }

  /**
   * The limits of a lookup of {@code n} ids on {@code shard}, checked before its reply is allocated:
   * the id count, and the reply, held to the same message limit as a request.
   */
  void checkLookup(HostedShard shard, int n) {
    checkIdCount(n, "look up");
    long bytes = n * shard.rowBytes;
    if (bytes > maxMessageBytes) {
      throw ShardErrors.exhausted("Cannot look up " + n + " ids: the reply would be " + bytes
          + " bytes, more than " + maxMessageBytes + " (maxMessageBytes; split the request)");
    }
  }

  /** Update requests applied through the fast update method so far (tests). */
  long fastUpdateRequests() {
    return updates.applied.sum();
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

  Messages.Describe describe() {
    TableManifest m = manifest();
    Partitioner p = m.partitioner();
    List<Messages.ShardInfo> shards = new ArrayList<>();
    for (int s : shardIndexes) {
      shards.add(new Messages.ShardInfo(s, p.shardRows(s), p.minId(s), p.maxId(s), p.describeShard(s)));
    }
    return new Messages.Describe(Protocol.VERSION,
        tableDir == null ? null : tableDir.isLocal() ? tableDir.localPath().toAbsolutePath().toString() : tableDir.uri(),
        m.tableVersion(), m.rows(), m.dim(), p.name(), p.numShards(), shards, m.optimizer(), maxIds, maxMessageBytes, auth,
        LookupMethod.NAME, UpdateMethod.NAME);
  }

  /**
   * Runs a {@code snapshot} request: writes the shards it names (default: all hosted) and answers
   * their manifest entries with the optimizer and its step. INVALID_ARGUMENT for a request that
   * cannot be carried out (a version already committed, no such directory).
   */
  Messages.SnapshotReply snapshot(Messages.SnapshotRequest request) {
    TableLocation dir = confine(request.dir());
    List<TableManifest.ShardEntry> entries;
    try {
      entries = writeShards(dir, request.version(), request.shards() == null ? shardIndexes : request.shards());
    } catch (java.nio.file.FileAlreadyExistsException e) {
      throw ShardErrors.invalid("Cannot snapshot to " + dir + ": version " + request.version() + " already has a file " + e.getFile());
    } catch (java.nio.file.NoSuchFileException e) {
      throw ShardErrors.invalid("Cannot snapshot to " + dir + ": no such directory");
    } catch (IOException e) {
      throw ShardErrors.internal("Cannot snapshot to " + dir + ": " + e.getMessage(), e);
    }
    return new Messages.SnapshotReply(request.version(), entries, manifest().optimizer());
  }

  /**
   * The table location a snapshot request names, checked against the snapshot root ({@link
   * SnapshotRoot#confine}): UNAUTHORIZED outside it, INVALID_ARGUMENT when it is not a location or
   * does not exist.
   */
  TableLocation confine(String requested) {
    TableLocation dir;
    try {
      dir = storage.location(requested);
    } catch (IllegalArgumentException e) {
      throw ShardErrors.invalid("Cannot snapshot to " + requested + ": " + e.getMessage());
    }
    return snapshotRoot == null ? dir : snapshotRoot.confine(requested, dir, storage);
  }

  private long total(java.util.function.ToLongFunction<HostedShard> counter) {
    long sum = 0;
    for (int s : shardIndexes) {
      sum += counter.applyAsLong(byIndex[s]);
    }
    return sum;
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

  Messages.Stats stats() {
    long now = System.nanoTime();
    double seconds = Math.max(1e-9, (now - startNanos) / 1e9);
    long rows = 0;
    long bytes = 0;
    long lookups = 0;
    long lookupRequests = 0;
    long updates = 0;
    long updateRequests = 0;
    List<Messages.ShardStats> shards = new ArrayList<>();
    for (int s : shardIndexes) {
      HostedShard h = byIndex[s];
      long l = h.lookupRows.sum();
      long u = h.updateRows.sum();
      ShardLog log = h.log();
      shards.add(new Messages.ShardStats(s, h.rows, h.bytes(), l, u, log == null ? 0 : log.records(), log == null ? 0 : log.syncs()));
      rows += h.rows;
      bytes += h.bytes();
      lookups += l;
      lookupRequests += h.lookupRequests.sum();
      updates += u;
      updateRequests += h.updateRequests.sum();
    }
    double[] recent = rates.perSecond(new long[] {lookups, lookupRequests, updates, updateRequests}, now);
    return new Messages.Stats(seconds, rows, bytes, allocator.getAllocatedMemory(), lookups, lookupRequests, updates,
        updateRequests, inProcessRequests.sum(), rates.windowSeconds(now), recent[0], recent[1], recent[2], recent[3],
        lookups / seconds, updates / seconds, shards);
  }

  /** Stops serving (in-flight calls get a grace period of 5 s), then frees every shard. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
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
    if (walSyncer != null) {
      parts.add(walSyncer::shutdownNow);
    }
    if (flight != null) {
      parts.add(() -> {
        producer.stopExchanges();
        lookups.stop();
        updates.stop();
        flight.shutdown();
        if (!flight.awaitTermination(5, TimeUnit.SECONDS)) {
          flight.close();
        }
      });
      parts.add(flight);
      // cancelled long-lived exchanges end their handlers just after the call is done
      parts.add(() -> producer.awaitHandlers(5000));
      parts.add(() -> lookups.awaitIdle(5000));
      parts.add(() -> updates.awaitIdle(5000));
      parts.add(producer::shutdownAcks);
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
