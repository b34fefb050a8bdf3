package io.embstore.format;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.channels.NonWritableChannelException;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.EtagSource;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FSDataOutputStreamBuilder;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.StreamCapabilities;
import org.apache.hadoop.fs.UnsupportedFileSystemException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A table directory in a Hadoop {@code FileSystem}: HDFS, S3A, or any scheme Hadoop knows. Reads
 * wrap {@code FSDataInputStream} in a seekable channel (read ahead sequentially, as Arrow reads a
 * file after its footer); writes wrap {@code FSDataOutputStream} ({@code hsync} before a commit
 * where the stream supports it). The manifest is committed by an atomic rename with overwrite
 * ({@code FileContext.rename(..., OVERWRITE)}, atomic in the HDFS NameNode) or, on object stores
 * that have no rename, by one conditional PUT.
 *
 * <p>The first use of each file system in a JVM probes it with Hadoop's client retries cut to one
 * attempt and a 5 s connect timeout, so that an unreachable NameNode or a missing bucket fails in
 * seconds with one line naming the URI instead of after the default retries.
 */
final class HadoopLocation extends TableLocation {
  private static final Logger LOG = LoggerFactory.getLogger(HadoopLocation.class);
  /** Schemes of object stores: no rename, a PUT of a whole object is atomic. */
  static final Set<String> OBJECT_STORES = Set.of("s3a", "s3", "s3n", "gs", "oss", "cos", "cosn", "obs");
  /** File systems probed successfully in this JVM (scheme://authority). */
  private static final Set<String> REACHED = ConcurrentHashMap.newKeySet();
  private static final String CONDITIONAL_CREATE = "fs.option.create.conditional.overwrite";
  private static final String CONDITIONAL_ETAG = "fs.option.create.conditional.overwrite.etag";
  private static volatile Configuration defaultConf;

  private final String uri;
  private final org.apache.hadoop.fs.Path dir;
  private final Configuration conf;
  private FileSystem fs;

  private HadoopLocation(String uri, org.apache.hadoop.fs.Path dir, Configuration conf) {
    this.uri = uri;
    this.dir = dir;
    this.conf = conf;
  }

  /**
   * The location of {@code uri} with Hadoop configuration {@code conf} (null: {@link
   * #defaultConfiguration()}). Declared to return the base type, so that calling it from {@link
   * TableStorage} does not make the JVM load this class (and Hadoop's) for a local table.
   */
  static TableLocation of(String uri, Object conf) {
    String trimmed = uri.length() > 1 && uri.endsWith("/") ? uri.substring(0, uri.length() - 1) : uri;
    org.apache.hadoop.fs.Path p;
    try {
      p = new org.apache.hadoop.fs.Path(trimmed);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("Cannot open table " + uri + ": not a valid URI (" + e.getMessage() + ")", e);
    }
    return new HadoopLocation(trimmed, p, conf == null ? defaultConfiguration() : (Configuration) conf);
  }

  /** Hadoop's configuration from the class path plus {@code $HADOOP_CONF_DIR/{core,hdfs}-site.xml}. */
  static Configuration defaultConfiguration() {
    Configuration c = defaultConf;
    if (c == null) {
      c = new Configuration();
      String confDir = System.getenv("HADOOP_CONF_DIR");
      if (confDir != null && !confDir.isBlank()) {
        for (String name : List.of("core-site.xml", "hdfs-site.xml")) {
          java.nio.file.Path f = java.nio.file.Path.of(confDir, name);
          if (java.nio.file.Files.isRegularFile(f)) {
            c.addResource(new org.apache.hadoop.fs.Path(f.toUri()));
          }
        }
      }
      defaultConf = c;
    }
    return c;
  }

  @Override
  public String uri() {
    return uri;
  }

  @Override
  public boolean isLocal() {
    return false;
  }

  @Override
  public TableLocation resolve(String name) {
    return new HadoopLocation(uri + "/" + name, new org.apache.hadoop.fs.Path(dir, name), conf);
  }

  @Override
  public String describe(String name) {
    return uri + "/" + name;
  }

  private org.apache.hadoop.fs.Path path(String name) {
    return new org.apache.hadoop.fs.Path(dir, name);
  }

  /** The file system, after the first-use probe. */
  private synchronized FileSystem fs() throws IOException {
    if (fs == null) {
      probe();
      try {
        fs = dir.getFileSystem(conf);
      } catch (IOException e) {
        throw cannot("reach", uri, e);
      }
    }
    return fs;
  }

  /**
   * Looks the directory up once per file system and JVM with Hadoop's retries cut short (one
   * connection attempt, 5 s connect timeout; S3A: one attempt): an unreachable NameNode, an unknown
   * scheme or a missing bucket fails here, in seconds.
   */
  private void probe() throws IOException {
    URI fsUri = dir.toUri();
    String key = fsUri.getScheme() + "://" + fsUri.getAuthority();
    if (REACHED.contains(key)) {
      return;
    }
    Configuration quick = new Configuration(conf);
    quick.setInt("ipc.client.connect.max.retries", 0);
    quick.setInt("ipc.client.connect.max.retries.on.timeouts", 0);
    quick.setInt("ipc.client.connect.timeout", 5000);
    quick.setInt("ipc.client.rpc-timeout.ms", 20000);
    quick.setBoolean("dfs.client.retry.policy.enabled", false);
    quick.setInt("fs.s3a.attempts.maximum", 1);
    quick.setInt("fs.s3a.retry.limit", 1);
    quick.set("fs.s3a.retry.interval", "100ms");
    quick.set("fs.s3a.connection.establish.timeout", "5s");
    try (FileSystem probe = FileSystem.newInstance(fsUri, quick)) {
      probe.exists(dir);
    } catch (UnsupportedFileSystemException e) {
      String scheme = fsUri.getScheme() == null ? "" : fsUri.getScheme().toLowerCase(Locale.ROOT);
      throw new IOException("Cannot open table " + uri + ": unknown storage scheme '" + scheme
          + "' (known: plain paths, file:, hdfs:, s3a: with hadoop-aws on the class path, and the schemes of the Hadoop configuration)", e);
    } catch (IOException | RuntimeException e) {
      throw cannot("reach", uri, e);
    } catch (NoClassDefFoundError e) {
      throw new IOException("Cannot open table " + uri + ": the " + fsUri.getScheme() + " file system misses classes ("
          + e.getMessage() + "; for s3a: hadoop-aws and the AWS SDK must be on the class path)", e);
    }
    REACHED.add(key);
  }

  /** One line naming the URI and the first line of the cause (Hadoop's messages may run on). */
  static IOException cannot(String verb, String what, Throwable e) {
    return new IOException("Cannot " + verb + " " + what + ": " + firstLine(e), e);
  }

  static String firstLine(Throwable e) {
    Throwable t = e;
    String m = t.getMessage();
    // S3A and the IPC client wrap the telling exception: take the innermost message.
    while ((m == null || m.isBlank()) && t.getCause() != null) {
      t = t.getCause();
      m = t.getMessage();
    }
    if (m == null || m.isBlank()) {
      return e.getClass().getSimpleName();
    }
    int nl = m.indexOf('\n');
    m = nl >= 0 ? m.substring(0, nl) : m;
    int more = m.indexOf("; For more details see");
    return (more >= 0 ? m.substring(0, more) : m).strip();
  }

  /** Hadoop's not-found and already-exists exceptions as java.nio's, which the format code expects. */
  private IOException translate(IOException e, String name) {
    String file = describe(name);
    if (e instanceof FileNotFoundException) {
      NoSuchFileException n = new NoSuchFileException(file, null, firstLine(e));
      n.initCause(e);
      return n;
    }
    if (e instanceof org.apache.hadoop.fs.FileAlreadyExistsException) {
      java.nio.file.FileAlreadyExistsException x = new java.nio.file.FileAlreadyExistsException(file, null, firstLine(e));
      x.initCause(e);
      return x;
    }
    if (e instanceof java.nio.file.FileSystemException || e instanceof TableFormatException) {
      return e;
    }
    String m = firstLine(e);
    return m.contains(file) || m.contains(dir.toUri().getPath()) ? e : cannot("use", file, e);
  }

  @Override
  public boolean exists() throws IOException {
    try {
      return fs().exists(dir);
    } catch (IOException e) {
      throw translate(e, "");
    }
  }

  @Override
  public boolean isEmptyDirectory() throws IOException {
    try {
      FileStatus st = fs().getFileStatus(dir);
      return st.isDirectory() && fs().listStatus(dir).length == 0;
    } catch (FileNotFoundException e) {
      return false;
    } catch (IOException e) {
      throw translate(e, "");
    }
  }

  @Override
  public boolean isFile() throws IOException {
    try {
      return fs().getFileStatus(dir).isFile();
    } catch (FileNotFoundException e) {
      return false;
    } catch (IOException e) {
      throw translate(e, "");
    }
  }

  @Override
  public boolean exists(String name) throws IOException {
    try {
      return fs().exists(path(name));
    } catch (IOException e) {
      throw translate(e, name);
    }
  }

  @Override
  public long size(String name) throws IOException {
    try {
      return fs().getFileStatus(path(name)).getLen();
    } catch (IOException e) {
      throw translate(e, name);
    }
  }

  @Override
  public List<String> list() throws IOException {
    List<String> names = new ArrayList<>();
    try {
      for (FileStatus st : fs().listStatus(dir)) {
        names.add(st.getPath().getName());
      }
    } catch (FileNotFoundException e) {
      return names;
    } catch (IOException e) {
      throw translate(e, "");
    }
    return names;
  }

  @Override
  public void createDirectories() throws IOException {
    try {
      fs().mkdirs(dir);
    } catch (IOException e) {
      throw cannot("create", uri, e);
    }
  }

  @Override
  public boolean deleteIfExists(String name) throws IOException {
    try {
      return fs().delete(path(name), false);
    } catch (FileNotFoundException e) {
      return false;
    } catch (IOException e) {
      throw translate(e, name);
    }
  }

  @Override
  public void deleteDirectoryIfEmpty() throws IOException {
    if (isEmptyDirectory()) {
      try {
        fs().delete(dir, false);
      } catch (IOException e) {
        throw translate(e, "");
      }
    }
  }

  @Override
  public SeekableByteChannel openRead(String name) throws IOException {
    return open(name);
  }

  @Override
  public SeekableByteChannel openSequential(String name) throws IOException {
    return open(name);
  }

  /**
   * Opens with the sequential read policy: Arrow reads the footer first and then the record
   * batches in order, which object stores serve best as one ranged GET to the end of the file
   * after the footer's; HDFS streams block by block either way.
   */
  private SeekableByteChannel open(String name) throws IOException {
    try {
      FileStatus st = fs().getFileStatus(path(name));
      FSDataInputStream in = awaitOpen(fs().openFile(path(name))
          .withFileStatus(st)
          .opt("fs.option.openfile.read.policy", "sequential")
          .build());
      return new ReadChannel(in, st.getLen());
    } catch (IOException e) {
      throw translate(e, name);
    }
  }

  private static FSDataInputStream awaitOpen(java.util.concurrent.CompletableFuture<FSDataInputStream> f)
      throws IOException {
    try {
      return f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while opening");
    } catch (ExecutionException e) {
      if (e.getCause() instanceof IOException io) {
        throw io;
      }
      throw new IOException(e.getCause());
    }
  }

  @Override
  public byte[] readAllBytes(String name) throws IOException {
    try (SeekableByteChannel ch = open(name)) {
      ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(ch.size()));
      while (b.hasRemaining() && ch.read(b) >= 0) {
        // reads until full
      }
      if (b.hasRemaining()) {
        throw new IOException("Cannot read " + describe(name) + ": it ended after " + b.position() + " of " + b.capacity() + " bytes");
      }
      return b.array();
    }
  }

  @Override
  public Output create(String name) throws IOException {
    try {
      return new WriteChannel(fs().create(path(name), false));
    } catch (IOException e) {
      throw translate(e, name);
    }
  }

  @Override
  public void commitManifest(byte[] bytes, long version) throws IOException {
    FileSystem f = fs();
    String scheme = f.getScheme() == null ? "" : f.getScheme().toLowerCase(Locale.ROOT);
    if (OBJECT_STORES.contains(scheme)) {
      putManifest(bytes, version);
    } else {
      renameManifest(bytes, version);
    }
  }

  /**
   * File systems with a rename: a temporary manifest, {@code hsync}ed and closed, renamed over the
   * manifest with {@code Options.Rename.OVERWRITE} (one atomic NameNode operation on HDFS).
   */
  private void renameManifest(byte[] bytes, long version) throws IOException {
    checkNewer(version);
    String tmpName = TableFormat.MANIFEST_FILE + ".tmp-" + UUID.randomUUID();
    org.apache.hadoop.fs.Path tmp = path(tmpName);
    try {
      try (Output out = create(tmpName)) {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        while (b.hasRemaining()) {
          out.write(b);
        }
        out.sync();
      }
      FileContext fc;
      try {
        fc = FileContext.getFileContext(fs().getUri(), conf);
      } catch (UnsupportedFileSystemException e) {
        // No AbstractFileSystem for this scheme: no rename with overwrite to be had.
        LOG.warn("{}: no atomic rename with overwrite for scheme {}; writing the manifest in place", uri, fs().getScheme());
        fs().delete(tmp, false);
        writeInPlace(bytes, null);
        return;
      }
      fc.rename(tmp, path(TableFormat.MANIFEST_FILE), Options.Rename.OVERWRITE);
    } catch (IOException e) {
      throw e instanceof java.nio.file.FileSystemException ? e : cannot("commit", describe(TableFormat.MANIFEST_FILE), e);
    } finally {
      try {
        fs().delete(tmp, false);
      } catch (IOException e) {
        LOG.debug("Cannot delete {}: {}", tmp, e.toString());
      }
    }
  }

  /**
   * Object stores: one PUT of the whole manifest, which readers see entirely or not at all. Where
   * the store takes conditional writes (S3 and S3A 3.4.2+), the PUT carries {@code If-None-Match: *}
   * for a new table and {@code If-Match: <etag>} of the manifest read just before otherwise, so
   * the check that no newer version is committed and the PUT are one atomic step: a second writer's
   * commit fails (HTTP 412) instead of silently replacing the other's.
   */
  private void putManifest(byte[] bytes, long version) throws IOException {
    org.apache.hadoop.fs.Path manifest = path(TableFormat.MANIFEST_FILE);
    FileStatus st;
    try {
      st = fs().getFileStatus(manifest);
    } catch (FileNotFoundException e) {
      st = null;
    }
    if (st != null) {
      long committed;
      try (FSDataInputStream in = awaitOpen(fs().openFile(manifest).withFileStatus(st).build())) {
        byte[] b = new byte[Math.toIntExact(st.getLen())];
        in.readFully(0, b);
        committed = TableManifest.parse(b, describe(TableFormat.MANIFEST_FILE)).tableVersion();
      }
      if (committed >= version) {
        throw new java.nio.file.FileAlreadyExistsException(describe(TableFormat.MANIFEST_FILE), null,
            "Cannot commit table version " + version + " of " + uri + ": version " + committed + " is already committed (another writer?)");
      }
    }
    writeInPlace(bytes, st);
  }

  /** One PUT of the manifest, conditional on {@code replacing}'s etag, or on absence when null. */
  void writeInPlace(byte[] bytes, FileStatus replacing) throws IOException {
    org.apache.hadoop.fs.Path manifest = path(TableFormat.MANIFEST_FILE);
    boolean conditional = conf.getBoolean("fs.s3a.create.conditional.enabled", true)
        && OBJECT_STORES.contains(String.valueOf(fs().getScheme()).toLowerCase(Locale.ROOT));
    FSDataOutputStreamBuilder<?, ?> b = fs().createFile(manifest).overwrite(true);
    if (conditional) {
      if (replacing == null) {
        b.must(CONDITIONAL_CREATE, true);
      } else if (replacing instanceof EtagSource e && e.getEtag() != null && !e.getEtag().isEmpty()) {
        b.must(CONDITIONAL_ETAG, e.getEtag());
      }
    }
    try (FSDataOutputStream out = b.build()) {
      out.write(bytes);
    } catch (IOException e) {
      String m = String.valueOf(e.getMessage());
      if (e instanceof org.apache.hadoop.fs.FileAlreadyExistsException || m.contains("412") || m.contains("PreconditionFailed")) {
        java.nio.file.FileAlreadyExistsException x = new java.nio.file.FileAlreadyExistsException(describe(TableFormat.MANIFEST_FILE), null,
            "Cannot commit " + uri + ": the manifest changed since it was read (another writer committed first)");
        x.initCause(e);
        throw x;
      }
      throw cannot("commit", describe(TableFormat.MANIFEST_FILE), e);
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof HadoopLocation h && h.dir.equals(dir);
  }

  @Override
  public int hashCode() {
    return dir.hashCode();
  }

  /**
   * {@code FSDataInputStream} as a seekable channel: a read at the stream's position continues the
   * stream (HDFS and S3A read ahead), any other position seeks first. Direct buffers are filled by
   * the stream itself where it can ({@code ByteBufferReadable}: HDFS), else through a heap array.
   */
  static final class ReadChannel implements SeekableByteChannel {
    private final FSDataInputStream in;
    private final long size;
    private long position;
    private long streamPosition;
    private boolean byteBuffers;
    private byte[] scratch;
    private boolean open = true;

    ReadChannel(FSDataInputStream in, long size) {
      this.in = in;
      this.size = size;
      this.byteBuffers = in.hasCapability(StreamCapabilities.READBYTEBUFFER);
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
      if (position >= size) {
        return -1;
      }
      if (!dst.hasRemaining()) {
        return 0;
      }
      if (streamPosition != position) {
        in.seek(position);
        streamPosition = position;
      }
      int n = -1;
      if (byteBuffers) {
        try {
          n = in.read(dst);
        } catch (UnsupportedOperationException e) {
          byteBuffers = false;
        }
      }
      if (!byteBuffers) {
        if (scratch == null) {
          scratch = new byte[1 << 20];
        }
        n = in.read(scratch, 0, Math.min(scratch.length, dst.remaining()));
        if (n > 0) {
          dst.put(scratch, 0, n);
        }
      }
      if (n > 0) {
        position += n;
        streamPosition += n;
      }
      return n;
    }

    @Override
    public int write(ByteBuffer src) {
      throw new NonWritableChannelException();
    }

    @Override
    public long position() {
      return position;
    }

    @Override
    public SeekableByteChannel position(long newPosition) {
      position = newPosition;
      return this;
    }

    @Override
    public long size() {
      return size;
    }

    @Override
    public SeekableByteChannel truncate(long s) {
      throw new NonWritableChannelException();
    }

    @Override
    public boolean isOpen() {
      return open;
    }

    @Override
    public void close() throws IOException {
      open = false;
      in.close();
    }
  }

  /** {@code FSDataOutputStream} as a channel; {@link #sync} is {@code hsync} where the stream has it. */
  static final class WriteChannel implements Output {
    private final FSDataOutputStream out;
    private byte[] scratch;
    private boolean open = true;

    WriteChannel(FSDataOutputStream out) {
      this.out = out;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = src.remaining();
      if (src.hasArray()) {
        out.write(src.array(), src.arrayOffset() + src.position(), n);
        src.position(src.limit());
        return n;
      }
      if (scratch == null) {
        scratch = new byte[1 << 20];
      }
      while (src.hasRemaining()) {
        int k = Math.min(scratch.length, src.remaining());
        src.get(scratch, 0, k);
        out.write(scratch, 0, k);
      }
      return n;
    }

    @Override
    public void sync() throws IOException {
      if (out.hasCapability(StreamCapabilities.HSYNC)) {
        out.hsync();
      } else if (out.hasCapability("hflush")) {
        out.hflush();
      }
    }

    @Override
    public boolean isOpen() {
      return open;
    }

    @Override
    public void close() throws IOException {
      if (open) {
        open = false;
        out.close();
      }
    }
  }
}
