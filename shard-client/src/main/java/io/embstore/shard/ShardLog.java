package io.embstore.shard;

import io.embstore.format.Checksums;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.CRC32C;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The write-ahead log of one hosted shard ({@code serve --wal DIR}): every update batch the shard
 * applies is appended here first, with the ids and the summed gradients it applies and its learning
 * rate, so that replaying the log through the same {@link Optimizer} in the same order gives the
 * same rows and optimizer state bit for bit. {@code docs/reliability.md} says what an
 * acknowledgement means for each {@link Sync} mode.
 *
 * <p>Files, in {@code DIR/shard-NNNNN/}: {@code lock} (held while a server hosts the shard) and
 * segments {@code wal-<first sequence number, 20 digits>.log}. Update records are numbered from 0
 * (the sequence number); a segment holds the records from its first number on. Every value is
 * little-endian. A segment is a series of records:
 *
 * <pre>
 * record  := u32 bodyLength | u32 crc32c(body) | u32 crc32c(the 8 bytes before) | body
 * body    := u8 type | ...
 * SEGMENT (type 1, first record of every segment): u32 format (1) | u32 shard | u32 dim | u64 rows
 *           | u64 first sequence number | str optimizer name | str optimizer parameters except lr
 * BASE    (type 2): a table the records apply on top of: u64 table version | u64 file bytes
 *           | u32 file crc32c | u64 chunkRows | u32 k | u64[k] seq | str file | str directory
 * UPDATE  (type 3): u64 seq | u32 float32 bits of lr | u32 n | i64[n] ids | f32[n * dim] gradients
 * str     := u16 length | UTF-8 bytes
 * </pre>
 *
 * <p>A BASE says: the shard file {@code file} (identified by its name, length and CRC-32C; an empty
 * name is the initial rows of a server started with {@code initialize}) holds, in its rows at
 * positions {@code [i * chunkRows, (i + 1) * chunkRows)}, exactly the updates numbered below {@code
 * seq[i]}. The first segment starts with the BASE of the table the log was started on (one chunk).
 * A snapshot copies a shard chunk by chunk while updates go on, so its rows reflect different
 * numbers of updates; it records the number at each chunk copy, and appends that BASE once its file
 * is written. The snapshot also starts a new segment at its first chunk, so the segments before
 * hold only updates every chunk reflects: once a manifest naming that file is seen committed (at
 * the next snapshot, or at a restart from it) those segments are deleted.
 *
 * <p>Replay at start: the newest BASE whose file is the loaded shard's is the one to replay on
 * top of; each update record from its first number on is applied to the rows whose chunk does not
 * reflect it yet. A log with no BASE matching the loaded table refuses to start (the table is not
 * the one the log follows). Damage: a record whose checksum fails, or that is cut short, at the end
 * of the last segment (nothing valid after it) is a torn write of an update that was never
 * acknowledged: it is cut off with a warning. Damage followed by a valid record, damage in an
 * earlier segment, or a checksum-valid record that does not fit (wrong shard, sequence gap)
 * refuses to start, naming the file and the offset.
 *
 * <p>Concurrency: the caller serialises {@link #append}, {@link #rotate}, {@link #appendBase} and
 * {@link #nextSeq} with the shard's sequencer lock, in the order it applies updates; {@link
 * #awaitDurable} and {@link #sync} are called without it. Group commit: a caller that needs its
 * record on disk either finds an fsync under way that covers it, waits for it, or becomes the one
 * that forces the file for every record appended so far.
 */
final class ShardLog implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ShardLog.class);

  static final int FORMAT = 1;
  static final byte SEGMENT = 1;
  static final byte BASE = 2;
  static final byte UPDATE = 3;
  static final int HEADER = 12;
  /** Largest record body read back: larger is damage (an update batch is bounded by the gRPC message limit). */
  static final long MAX_BODY = Integer.MAX_VALUE;
  private static final Pattern SEGMENT_NAME = Pattern.compile("wal-(\\d{20})\\.log");

  /**
   * When an acknowledged update is on disk. {@code always}: the update is acknowledged after an
   * fsync that covers its record (group commit). {@code <N>ms}: after its record is written to the
   * operating system; a background task forces the log every N ms. {@code none}: after the write;
   * the operating system writes it back when it chooses.
   */
  record Sync(String name, long intervalMillis) {
    static final Sync ALWAYS = new Sync("always", 0);
    static final Sync NONE = new Sync("none", 0);
    private static final Pattern MILLIS = Pattern.compile("([1-9][0-9]{0,5})ms");

    /** {@code always}, {@code none} or {@code <N>ms} (1 to 999999); IllegalArgumentException naming the value otherwise. */
    static Sync parse(String s) {
      if ("always".equals(s)) {
        return ALWAYS;
      }
      if ("none".equals(s)) {
        return NONE;
      }
      Matcher m = s == null ? null : MILLIS.matcher(s);
      if (m == null || !m.matches()) {
        throw new IllegalArgumentException("Cannot use write-ahead log sync '" + s + "': expected always, none or <N>ms (N from 1 to 999999, e.g. 10ms)");
      }
      return new Sync(s, Long.parseLong(m.group(1)));
    }

    boolean periodic() {
      return intervalMillis > 0;
    }

    @Override
    public String toString() {
      return name;
    }
  }

  /** A shard file a log applies on top of: name, length and CRC-32C (an empty name: the initial rows). */
  record Origin(long version, String file, long bytes, int crc32c) {
    static final Origin INITIALIZED = new Origin(0, "", 0, 0);

    static Origin of(long version, TableManifest.ShardEntry e) {
      return new Origin(version, e.file(), e.bytes(), e.crc32c());
    }

    boolean sameFile(Origin o) {
      return file.equals(o.file) && bytes == o.bytes && crc32c == o.crc32c;
    }

    @Override
    public String toString() {
      return file.isEmpty() ? "the initial rows" : file + " (table version " + version + ", " + bytes + " bytes, crc32c " + Checksums.hex(crc32c) + ")";
    }
  }

  /** A BASE record: {@code origin}'s rows of chunk i reflect exactly the updates numbered below {@code seqs[i]}. */
  record Base(Origin origin, String dir, long chunkRows, long[] seqs) {
    /** Whether the row at {@code position} already reflects update {@code seq}. */
    boolean reflects(long position, long seq) {
      return seq < seqs[(int) (position / chunkRows)];
    }

    long first() {
      return seqs[0];
    }
  }

  /** Applies one logged update to the rows {@code base} does not reflect yet (at start, nothing else running). */
  interface Replayer {
    void apply(long seq, long idAddress, long gradAddress, int n, float lr, Base base) throws IOException;
  }

  private final Path dir;
  private final int shard;
  private final long rows;
  private final int dim;
  private final String optimizerName;
  private final String optimizerParams;
  final Sync sync;
  private final FileChannel lockChannel;
  private final FileLock lock;
  private final CRC32C crc = new CRC32C();
  private final ByteBuffer head = ByteBuffer.allocate(HEADER + 17).order(ByteOrder.LITTLE_ENDIAN);
  private final ByteBuffer[] gather = new ByteBuffer[3];

  /** Segments by first sequence number, the current (last) one included. */
  private final TreeMap<Long, Path> segments = new TreeMap<>();
  /** The BASE replayed on (or the newest seen committed) and every later one, oldest first. */
  private final List<Base> bases = new ArrayList<>();
  private volatile FileChannel channel;
  private Path current;
  /** Bytes of whole records in the current segment. */
  private long segmentBytes;
  private long nextSeq;
  private long replayed;
  /** Update records appended and fsyncs made since open (for {@code stats}). */
  private final java.util.concurrent.atomic.LongAdder records = new java.util.concurrent.atomic.LongAdder();
  private final java.util.concurrent.atomic.LongAdder syncs = new java.util.concurrent.atomic.LongAdder();

  private final Object monitor = new Object();
  /** Bytes appended since open, over all segments; what a ticket counts. */
  private volatile long written;
  /** Bytes known on disk. */
  private long durable;
  private boolean syncing;
  /** Set when an fsync or a repair failed: the log takes no more records. */
  private IOException broken;
  /** Callbacks of {@link #whenDurable}, by ticket. */
  private final java.util.PriorityQueue<Waiter> waiters = new java.util.PriorityQueue<>();
  /** With {@code always}: forces the file whenever a {@link #whenDurable} callback waits. */
  private Thread syncer;
  private boolean closing;

  private record Waiter(long ticket, Runnable done) implements Comparable<Waiter> {
    @Override
    public int compareTo(Waiter o) {
      return Long.compare(ticket, o.ticket);
    }
  }

  /** Reads the manifests that tell whether a snapshot a base record names was committed (any storage). */
  private io.embstore.format.TableStorage storage = io.embstore.format.TableStorage.defaults();

  private ShardLog(Path dir, int shard, long rows, int dim, Optimizer optimizer, Sync sync, FileChannel lockChannel, FileLock lock) {
    this.dir = dir;
    this.shard = shard;
    this.rows = rows;
    this.dim = dim;
    this.optimizerName = optimizer.name();
    this.optimizerParams = paramsWithoutLr(optimizer);
    this.sync = sync;
    this.lockChannel = lockChannel;
    this.lock = lock;
  }

  private static String paramsWithoutLr(Optimizer o) {
    Map<String, Double> p = new TreeMap<>(o.params());
    p.remove("lr");
    return p.toString();
  }

  /** {@code DIR/shard-NNNNN}. */
  static Path shardDir(Path walDir, int shard) {
    return walDir.resolve(String.format("shard-%05d", shard));
  }

  /**
   * Opens (or starts) the log of {@code shard} in {@code walDir}, replays it on top of {@code
   * loaded} through {@code replayer}, cuts a torn tail, deletes segments the loaded table makes
   * unnecessary and starts a new segment. IOException naming the file (and offset) when the log is
   * damaged, in use, or follows another table.
   */
  static ShardLog open(Path walDir, int shard, long rows, int dim, Optimizer optimizer, Origin loaded, Sync sync,
      io.embstore.format.TableStorage storage, BufferAllocator allocator, Replayer replayer) throws IOException {
    Path dir = shardDir(walDir, shard);
    Files.createDirectories(dir);
    FileChannel lockChannel = FileChannel.open(dir.resolve("lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
    FileLock lock;
    try {
      lock = lockChannel.tryLock();
    } catch (OverlappingFileLockException e) {
      lock = null;
    } catch (IOException | RuntimeException e) {
      lockChannel.close();
      throw e;
    }
    if (lock == null) {
      lockChannel.close();
      throw new IOException("Cannot open write-ahead log " + dir + ": in use by another server (one log directory per hosted shard)");
    }
    ShardLog log = new ShardLog(dir, shard, rows, dim, optimizer, sync, lockChannel, lock);
    log.storage = storage;
    try (BufferAllocator scratch = allocator.newChildAllocator("wal-replay-" + shard, 0, Long.MAX_VALUE)) {
      log.recover(loaded, scratch, replayer);
    } catch (IOException | RuntimeException e) {
      log.closeQuietly(e);
      throw e;
    }
    if (sync == Sync.ALWAYS) {
      log.syncer = new Thread(log::syncWhileWaited, "embstore-wal-sync-" + shard);
      log.syncer.setDaemon(true);
      log.syncer.start();
    }
    return log;
  }

  private void recover(Origin loaded, BufferAllocator scratch, Replayer replayer) throws IOException {
    listSegments();
    List<Base> found = new ArrayList<>();
    long expected = -1;
    try (Reader r = new Reader(scratch)) {
      for (Map.Entry<Long, Path> e : new ArrayList<>(segments.entrySet())) {
        boolean last = e.getKey().equals(segments.lastKey());
        expected = r.scan(e.getValue(), e.getKey(), expected, last, found, null, null);
      }
      if (segments.isEmpty()) {
        Base initial = new Base(loaded, "", Math.max(1, rows), new long[] {0});
        nextSeq = 0;
        startSegment(0);
        appendBase(initial);
        sync(true);
        bases.add(initial);
        LOG.info("Started write-ahead log {} on {}", dir, loaded);
        return;
      }
      Base match = null;
      for (int i = found.size() - 1; i >= 0 && match == null; i--) {
        if (found.get(i).origin().sameFile(loaded)) {
          match = found.get(i);
        }
      }
      if (match == null) {
        throw new IOException("Cannot open write-ahead log " + dir + ": it follows " + describe(found) + ", not the loaded "
            + loaded + " (serve the table version it follows, or move the log away to start without its updates)");
      }
      nextSeq = expected;
      long[] count = new long[1];
      Base base = match;
      for (Map.Entry<Long, Path> e : new ArrayList<>(segments.tailMap(match.first(), true).entrySet())) {
        r.scan(e.getValue(), e.getKey(), -1, e.getKey().equals(segments.lastKey()), null, base, (seq, ids, grads, n, lr, b) -> {
          count[0]++;
          replayer.apply(seq, ids, grads, n, lr, b);
        });
      }
      replayed = count[0];
      dropSegmentsBefore(match);
      bases.addAll(found.subList(found.indexOf(match), found.size()));
    }
    if (segments.lastKey() == nextSeq) {
      continueSegment(segments.lastEntry().getValue()); // no update since it started (it may hold a base)
    } else {
      startSegment(nextSeq);
    }
    LOG.info("Replayed write-ahead log {} on {}: {} update records (numbers {} to {})", dir, loaded, replayed,
        nextSeq - replayed, nextSeq - 1);
  }

  private static String describe(List<Base> found) {
    if (found.isEmpty()) {
      return "no table (it has no base record)";
    }
    StringBuilder s = new StringBuilder();
    for (int i = 0; i < found.size(); i++) {
      s.append(i == 0 ? "" : i == found.size() - 1 ? " or " : ", ").append(found.get(i).origin());
    }
    return s.toString();
  }

  private void listSegments() throws IOException {
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "wal-*.log")) {
      for (Path f : files) {
        Matcher m = SEGMENT_NAME.matcher(f.getFileName().toString());
        if (m.matches()) {
          segments.put(Long.parseLong(m.group(1)), f);
        }
      }
    }
  }

  /** Deletes the segments before {@code base}'s first: every chunk of its file reflects their updates. Returns how many. */
  private int dropSegmentsBefore(Base base) throws IOException {
    List<Long> old = new ArrayList<>(segments.headMap(base.first(), false).keySet());
    for (Long first : old) {
      Files.deleteIfExists(segments.remove(first));
    }
    if (!old.isEmpty()) {
      forceDirectory();
    }
    return old.size();
  }

  // ------------------------------------------------------------------ appending (under the shard's sequencer)

  /** The sequence number the next update record gets: updates below it are applied. */
  long nextSeq() {
    return nextSeq;
  }

  /** Update records appended since open. */
  long records() {
    return records.sum();
  }

  /** fsyncs of appended records since open (one may cover many records: group commit). */
  long syncs() {
    return syncs.sum();
  }

  /** Update records replayed at open. */
  long replayed() {
    return replayed;
  }

  /** The log's directory (for messages). */
  Path dir() {
    return dir;
  }

  /**
   * Appends an update of {@code n} rows (ids and gradients at these addresses, float32 rows of
   * {@code dim}); returns the ticket to pass to {@link #awaitDurable}. A failed write leaves the log
   * as it was (the partial record is cut off) and throws; the update must then not be applied.
   */
  long append(long idAddress, long gradAddress, int n, float lr) throws IOException {
    checkUsable();
    if (n == 0) {
      return written;
    }
    long idBytes = 8L * n;
    long gradBytes = 4L * n * dim;
    long body = 17 + idBytes + gradBytes;
    if (body > MAX_BODY || idBytes > Integer.MAX_VALUE || gradBytes > Integer.MAX_VALUE) {
      throw new IOException("Cannot log an update of " + n + " rows of " + dim + " values: " + body + " bytes is more than one record holds (" + MAX_BODY + ")");
    }
    ByteBuffer ids = MemoryUtil.directBuffer(idAddress, (int) idBytes);
    ByteBuffer grads = MemoryUtil.directBuffer(gradAddress, (int) gradBytes);
    head.clear();
    head.position(HEADER);
    head.put(UPDATE).putLong(nextSeq).putInt(Float.floatToRawIntBits(lr)).putInt(n);
    crc.reset();
    crc.update(head.array(), HEADER, 17);
    crc.update(ids.duplicate());
    crc.update(grads.duplicate());
    putHeader(head, (int) body, (int) crc.getValue());
    head.position(0).limit(HEADER + 17);
    gather[0] = head;
    gather[1] = ids;
    gather[2] = grads;
    write(gather, HEADER + body);
    nextSeq++;
    records.increment();
    return written;
  }

  /** Appends a BASE record (a snapshot's, once its file is written); make it durable with {@link #sync}. */
  void appendBase(Base base) throws IOException {
    checkUsable();
    byte[] file = utf8(base.origin().file());
    byte[] where = utf8(base.dir());
    ByteBuffer b = ByteBuffer.allocate(HEADER + 1 + 8 + 8 + 4 + 8 + 4 + 8 * base.seqs().length + 2 + file.length + 2 + where.length)
        .order(ByteOrder.LITTLE_ENDIAN);
    b.position(HEADER);
    b.put(BASE).putLong(base.origin().version()).putLong(base.origin().bytes()).putInt(base.origin().crc32c())
        .putLong(base.chunkRows()).putInt(base.seqs().length);
    for (long s : base.seqs()) {
      b.putLong(s);
    }
    b.putShort((short) file.length).put(file).putShort((short) where.length).put(where);
    writeSmall(b);
  }

  /** A snapshot's BASE was appended and synced: remember it for {@link #confirmCommitted}. */
  void baseWritten(Base base) {
    bases.add(base);
  }

  /**
   * Starts a new segment at {@link #nextSeq}: the current one is forced and kept. Called by a
   * snapshot just before it copies its first chunk. Nothing to do when the current segment has no
   * update yet (it already starts there).
   */
  void rotate() throws IOException {
    checkUsable();
    if (segments.lastKey() == nextSeq) {
      return;
    }
    lead();
    try {
      channel.force(false);
      synchronized (monitor) {
        durable = written;
      }
      FileChannel old = channel;
      Path oldPath = current;
      startSegment(nextSeq);
      old.close();
      LOG.debug("Write-ahead log {}: sealed {}, now {}", dir, oldPath.getFileName(), current.getFileName());
    } finally {
      unlead(null);
    }
  }

  private void startSegment(long first) throws IOException {
    Path file = dir.resolve(String.format("wal-%020d.log", first));
    FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
    try {
      byte[] name = utf8(optimizerName);
      byte[] params = utf8(optimizerParams);
      ByteBuffer b = ByteBuffer.allocate(HEADER + 1 + 4 + 4 + 4 + 8 + 8 + 2 + name.length + 2 + params.length).order(ByteOrder.LITTLE_ENDIAN);
      b.position(HEADER);
      b.put(SEGMENT).putInt(FORMAT).putInt(shard).putInt(dim).putLong(rows).putLong(first)
          .putShort((short) name.length).put(name).putShort((short) params.length).put(params);
      int body = b.position() - HEADER;
      crc.reset();
      crc.update(b.array(), HEADER, body);
      putHeader(b, body, (int) crc.getValue());
      b.position(0);
      while (b.hasRemaining()) {
        ch.write(b);
      }
      ch.force(false);
    } catch (IOException | RuntimeException e) {
      ch.close();
      Files.deleteIfExists(file);
      throw e;
    }
    channel = ch;
    current = file;
    segmentBytes = ch.position();
    segments.put(first, file);
    forceDirectory();
    synchronized (monitor) {
      written += segmentBytes;
      durable = written;
    }
  }

  /** Appends to {@code file}, the last segment, whole (its torn tail already cut). */
  private void continueSegment(Path file) throws IOException {
    FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE);
    try {
      ch.force(false);
      ch.position(ch.size());
    } catch (IOException | RuntimeException e) {
      ch.close();
      throw e;
    }
    channel = ch;
    current = file;
    segmentBytes = ch.position();
    synchronized (monitor) {
      written += segmentBytes;
      durable = written;
    }
  }

  private void forceDirectory() throws IOException {
    try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
      d.force(true);
    }
  }

  private static void putHeader(ByteBuffer b, int bodyLength, int bodyCrc) {
    b.putInt(0, bodyLength);
    b.putInt(4, bodyCrc);
    CRC32C h = new CRC32C();
    h.update(b.array(), 0, 8);
    b.putInt(8, (int) h.getValue());
  }

  private void writeSmall(ByteBuffer b) throws IOException {
    int body = b.position() - HEADER;
    crc.reset();
    crc.update(b.array(), HEADER, body);
    putHeader(b, body, (int) crc.getValue());
    b.flip();
    write(new ByteBuffer[] {b}, b.remaining());
  }

  /** Writes a whole record at the end of the current segment; on failure cuts what was written of it. */
  private void write(ByteBuffer[] parts, long total) throws IOException {
    FileChannel ch = channel;
    try {
      long done = 0;
      while (done < total) {
        done += ch.write(parts);
      }
    } catch (IOException e) {
      try {
        ch.truncate(segmentBytes);
        ch.position(segmentBytes);
      } catch (IOException repair) {
        e.addSuppressed(repair);
        synchronized (monitor) {
          broken = new IOException("cannot cut a partly written record off " + current + " at offset " + segmentBytes + ": " + repair.getMessage(), repair);
        }
      }
      throw e;
    }
    segmentBytes += total;
    written += total;
  }

  private void checkUsable() throws IOException {
    synchronized (monitor) {
      if (broken != null) {
        throw new IOException("write-ahead log " + dir + " is unusable since an earlier failure (" + broken.getMessage() + "); restart the server", broken);
      }
    }
  }

  // ------------------------------------------------------------------ durability (without the sequencer)

  /** Returns once the record ending at {@code ticket} is as durable as the sync mode promises: on disk for {@code always}. */
  void awaitDurable(long ticket) throws IOException {
    if (sync == Sync.ALWAYS) {
      syncTo(ticket);
    }
  }

  /** Forces everything appended so far ({@code always}: only when something is not yet on disk). */
  void sync(boolean force) throws IOException {
    long target = written;
    if (force || target > durableNow()) {
      syncTo(target);
    }
  }

  private long durableNow() {
    synchronized (monitor) {
      return durable;
    }
  }

  private void syncTo(long target) throws IOException {
    synchronized (monitor) {
      while (true) {
        if (broken != null) {
          throw new IOException("write-ahead log " + dir + " is unusable since an earlier failure (" + broken.getMessage() + "); restart the server", broken);
        }
        if (durable >= target) {
          return;
        }
        if (!syncing) {
          syncing = true;
          break;
        }
        waitOnMonitor();
      }
    }
    IOException failure = forceAndUnlead();
    if (failure != null) {
      throw failure;
    }
  }

  /**
   * As the one leading: forces the file for every record appended so far, records them durable,
   * gives up the lead (running the callbacks this completes); returns the failure, or null.
   */
  private IOException forceAndUnlead() {
    IOException failure = null;
    long covered = written;
    try {
      channel.force(false);
      syncs.increment();
    } catch (IOException e) {
      failure = new IOException("fsync of " + current + " failed: " + e.getMessage(), e);
    }
    synchronized (monitor) {
      if (failure == null) {
        durable = Math.max(durable, covered);
      }
    }
    unlead(failure);
    return failure;
  }

  /** Waits until no fsync runs and makes the caller the one that runs the next. */
  private void lead() throws IOException {
    synchronized (monitor) {
      while (syncing) {
        waitOnMonitor();
      }
      syncing = true;
    }
  }

  private void unlead(IOException failure) {
    List<Runnable> ready = new ArrayList<>();
    synchronized (monitor) {
      syncing = false;
      if (failure != null && broken == null) {
        broken = failure;
      }
      while (!waiters.isEmpty() && (broken != null || closing || waiters.peek().ticket() <= durable)) {
        ready.add(waiters.poll().done());
      }
      monitor.notifyAll();
    }
    for (Runnable r : ready) {
      r.run();
    }
  }

  /** Whether the record ending at {@code ticket} is on disk. */
  boolean isDurable(long ticket) {
    synchronized (monitor) {
      return durable >= ticket;
    }
  }

  /** The failure that made the log unusable, or null. */
  IOException failure() {
    synchronized (monitor) {
      return broken;
    }
  }

  /**
   * Runs {@code done} once the record ending at {@code ticket} is on disk, or the log failed or is
   * closing (the callback tells them apart with {@link #isDurable} and {@link #failure}): at once
   * when that is already so, else on the thread that completes the fsync, which must not block in
   * it. For {@code always} logs: their syncer thread forces the file while callbacks wait, so
   * batches that arrive during one fsync share the next (group commit without a waiting caller).
   */
  void whenDurable(long ticket, Runnable done) {
    boolean now;
    synchronized (monitor) {
      now = durable >= ticket || broken != null || closing;
      if (!now) {
        waiters.add(new Waiter(ticket, done));
        monitor.notifyAll();
      }
    }
    if (now) {
      done.run();
    }
  }

  /** The {@code always} syncer: forces the file whenever a callback waits for a record not yet on disk. */
  private void syncWhileWaited() {
    while (true) {
      synchronized (monitor) {
        while (!closing && broken == null && (syncing || waiters.isEmpty())) {
          try {
            monitor.wait();
          } catch (InterruptedException e) {
            return;
          }
        }
        if (closing || broken != null) {
          return;
        }
        syncing = true;
      }
      forceAndUnlead();
    }
  }

  private void waitOnMonitor() throws InterruptedIOException {
    try {
      monitor.wait();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while waiting for write-ahead log " + dir + " to sync");
    }
  }

  // ------------------------------------------------------------------ truncation

  /**
   * Deletes the segments that a committed snapshot makes unnecessary: for the newest BASE written
   * by a snapshot whose directory's manifest now names its file, the segments before it. Called by
   * the next snapshot (the client commits the manifest after the snapshot returns).
   */
  void confirmCommitted() throws IOException {
    for (int i = bases.size() - 1; i > 0; i--) {
      Base b = bases.get(i);
      if (committed(b)) {
        int dropped = dropSegmentsBefore(b);
        LOG.info("Write-ahead log {}: {} is committed; deleted {} segments before update {}", dir, b.origin(), dropped, b.first());
        bases.subList(0, i).clear();
        return;
      }
    }
  }

  private boolean committed(Base b) {
    if (b.dir().isEmpty()) {
      return false;
    }
    try {
      TableManifest m = TableManifest.read(storage.location(b.dir()));
      return shard < m.numShards() && Origin.of(m.tableVersion(), m.shard(shard)).sameFile(b.origin());
    } catch (IOException | RuntimeException e) {
      return false; // no manifest there (yet), or not readable: not known to be committed
    }
  }

  /** The BASE replayed on (or the newest seen committed) and every later one, oldest first (for tests). */
  List<Base> bases() {
    return new ArrayList<>(bases);
  }

  /** Segment files, oldest first (for tests and messages). */
  List<Path> segmentFiles() {
    return new ArrayList<>(segments.values());
  }

  // ------------------------------------------------------------------ close

  /** Forces what was appended (unless the log is broken), closes the segment and releases the lock. */
  @Override
  public void close() throws IOException {
    stopSyncer();
    IOException failure = null;
    try {
      if (channel != null && channel.isOpen() && broken == null) {
        sync(false);
      }
    } catch (IOException e) {
      failure = e;
    }
    try {
      if (channel != null) {
        channel.close();
      }
    } catch (IOException e) {
      failure = failure == null ? e : failure;
    }
    try {
      lock.release();
    } catch (IOException e) {
      failure = failure == null ? e : failure;
    }
    lockChannel.close();
    if (failure != null) {
      throw failure;
    }
  }

  /** Stops the syncer thread; callbacks still waiting run (they see the log closing). */
  private void stopSyncer() {
    List<Runnable> left = new ArrayList<>();
    synchronized (monitor) {
      closing = true;
      monitor.notifyAll();
    }
    if (syncer != null) {
      try {
        syncer.join(10_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    synchronized (monitor) {
      while (!waiters.isEmpty()) {
        left.add(waiters.poll().done());
      }
    }
    for (Runnable r : left) {
      r.run();
    }
  }

  private void closeQuietly(Throwable primary) {
    try {
      if (channel != null) {
        channel.close();
      }
      lock.release();
      lockChannel.close();
    } catch (IOException e) {
      primary.addSuppressed(e);
    }
  }

  private static byte[] utf8(String s) {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    if (b.length > 0xffff) {
      throw new IllegalArgumentException("Cannot log a string of " + b.length + " bytes (at most 65535): " + s.substring(0, 80) + "...");
    }
    return b;
  }

  // ------------------------------------------------------------------ reading

  /** Reads segments record by record into an off-heap buffer of the replay's allocator. */
  private final class Reader implements AutoCloseable {
    private final BufferAllocator allocator;
    private final ByteBuffer header = ByteBuffer.allocate(HEADER).order(ByteOrder.LITTLE_ENDIAN);
    private final CRC32C check = new CRC32C();
    private ArrowBuf buf;

    Reader(BufferAllocator allocator) {
      this.allocator = allocator;
    }

    /**
     * Reads one segment: checks every record; collects BASE records into {@code bases} (when not
     * null) and hands update records at or after {@code base}'s first number to {@code updates}
     * (when not null). {@code expected}: the first update number this segment must have (-1: any).
     * Cuts a torn tail of the last segment (deleting the segment when nothing of it is whole).
     * Returns the number after its last update record.
     */
    long scan(Path file, long first, long expected, boolean last, List<Base> collect, Base base, Replayer updates) throws IOException {
      if (expected >= 0 && first != expected) {
        throw damaged(file, 0, "it starts at update " + first + ", but the segment before ends at update " + (expected - 1));
      }
      long next = first;
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
        long size = ch.size();
        long pos = 0;
        while (pos < size) {
          long torn = -1;
          String why = null;
          int length = 0;
          if (size - pos < HEADER) {
            torn = pos;
            why = "a record header cut short";
          } else {
            header.clear();
            readFully(ch, header, pos);
            length = header.getInt(0);
            int bodyCrc = header.getInt(4);
            check.reset();
            check.update(header.array(), 0, 8);
            if ((int) check.getValue() != header.getInt(8)) {
              why = "record header checksum mismatch";
            } else if (length < 1) {
              why = "record length " + Integer.toUnsignedString(length);
            } else if (pos + HEADER + length > size) {
              torn = pos;
              why = "a record of " + length + " bytes cut short at the end of the file";
            } else {
              ensure(length);
              ByteBuffer body = buf.nioBuffer(0, length);
              readFully(ch, body, pos + HEADER);
              check.reset();
              check.update(buf.nioBuffer(0, length));
              if ((int) check.getValue() != bodyCrc) {
                why = "record checksum mismatch";
              }
            }
          }
          if (why != null) {
            long after = torn >= 0 ? -1 : nextValidRecord(ch, pos + 1, size);
            if (!last || after >= 0) {
              throw damaged(file, pos, why + (after >= 0 ? "; a valid record follows at offset " + after : "; in a sealed segment"));
            }
            cutTail(ch, file, pos, size, why);
            if (pos == 0) {
              ch.close();
              Files.delete(file);
              segments.remove(first);
              forceDirectory();
              LOG.warn("Write-ahead log {}: deleted {}: it held no whole record ({})", dir, file, why);
            }
            return next;
          }
          byte type = buf.getByte(0);
          if (pos == 0) {
            checkSegment(file, first, length);
          } else if (type == BASE) {
            if (collect != null) {
              collect.add(readBase(file, pos, length));
            }
          } else if (type == UPDATE) {
            long seq = buf.getLong(1);
            int n = buf.getInt(13);
            if (seq != next) {
              throw damaged(file, pos, "update number " + seq + " where " + next + " was expected");
            }
            if (n < 1 || 17L + (long) n * (8 + 4L * dim) != length) {
              throw damaged(file, pos, "an update of " + n + " rows in " + length + " bytes (dim " + dim + ")");
            }
            if (updates != null && seq >= base.first()) {
              try {
                updates.apply(seq, buf.memoryAddress() + 17, buf.memoryAddress() + 17 + 8L * n, n, Float.intBitsToFloat(buf.getInt(9)), base);
              } catch (IOException e) {
                throw new IOException("Cannot replay write-ahead log " + file + " at offset " + pos + ": " + e.getMessage(), e);
              }
            }
            next++;
          } else if (type == SEGMENT) {
            throw damaged(file, pos, "a segment header after the first record");
          } else {
            throw damaged(file, pos, "unknown record type " + type);
          }
          pos += HEADER + length;
        }
      }
      return next;
    }

    private void checkSegment(Path file, long first, int length) throws IOException {
      ByteBuffer b = buf.nioBuffer(0, length).order(ByteOrder.LITTLE_ENDIAN);
      if (b.get() != SEGMENT) {
        throw damaged(file, 0, "the first record is not a segment header");
      }
      int format = b.getInt();
      int s = b.getInt();
      int d = b.getInt();
      long r = b.getLong();
      long f = b.getLong();
      String name = str(b);
      String params = str(b);
      if (format != FORMAT) {
        throw damaged(file, 0, "log format " + format + " (this server reads format " + FORMAT + ")");
      }
      if (s != shard || d != dim || r != rows || f != first) {
        throw damaged(file, 0, "it is the log of shard " + s + " (" + r + " rows of dim " + d + ", from update " + f
            + "), not of shard " + shard + " (" + rows + " rows of dim " + dim + ", from update " + first + ")");
      }
      if (!name.equals(optimizerName) || !params.equals(optimizerParams)) {
        throw new IOException("Cannot open write-ahead log " + file + ": written for optimizer " + name + " " + params
            + ", but the server uses " + optimizerName + " " + optimizerParams
            + " (replayed with another optimizer its updates would not give the rows it acknowledged)");
      }
    }

    private Base readBase(Path file, long pos, int length) throws IOException {
      ByteBuffer b = buf.nioBuffer(0, length).order(ByteOrder.LITTLE_ENDIAN);
      try {
        b.get();
        long version = b.getLong();
        long bytes = b.getLong();
        int fileCrc = b.getInt();
        long chunkRows = b.getLong();
        int k = b.getInt();
        if (chunkRows < 1 || k < 1 || k > length / 8 || (rows > 0 && (rows + chunkRows - 1) / chunkRows > k)) {
          throw damaged(file, pos, "a base record with " + k + " chunks of " + chunkRows + " rows for " + rows + " rows");
        }
        long[] seqs = new long[k];
        for (int i = 0; i < k; i++) {
          seqs[i] = b.getLong();
        }
        String name = str(b);
        String where = str(b);
        return new Base(new Origin(version, name, bytes, fileCrc), where, chunkRows, seqs);
      } catch (java.nio.BufferUnderflowException e) {
        throw damaged(file, pos, "a base record shorter than its contents");
      }
    }

    private String str(ByteBuffer b) {
      int n = Short.toUnsignedInt(b.getShort());
      byte[] s = new byte[n];
      b.get(s);
      return new String(s, StandardCharsets.UTF_8);
    }

    /** The offset of the first whole, valid record at or after {@code from}, or -1. */
    private long nextValidRecord(FileChannel ch, long from, long size) throws IOException {
      if (size - from < HEADER) {
        return -1;
      }
      MappedByteBuffer m = ch.map(FileChannel.MapMode.READ_ONLY, from, Math.min(size - from, Integer.MAX_VALUE - 1));
      m.order(ByteOrder.LITTLE_ENDIAN);
      CRC32C c = new CRC32C();
      int limit = m.capacity() - HEADER;
      for (int o = 0; o <= limit; o++) {
        c.reset();
        c.update(m.slice(o, 8));
        if ((int) c.getValue() != m.getInt(o + 8)) {
          continue;
        }
        int length = m.getInt(o);
        if (length < 1 || (long) o + HEADER + length > m.capacity()) {
          continue;
        }
        c.reset();
        c.update(m.slice(o + HEADER, length));
        if ((int) c.getValue() == m.getInt(o + 4)) {
          return from + o;
        }
      }
      return -1;
    }

    private void cutTail(FileChannel ch, Path file, long pos, long size, String why) throws IOException {
      ch.truncate(pos);
      ch.force(true);
      LOG.warn("Write-ahead log {}: cut {} bytes off the end at offset {} ({}: an update that was never acknowledged)",
          file, size - pos, pos, why);
    }

    private void ensure(int length) {
      if (buf == null || buf.capacity() < length) {
        if (buf != null) {
          buf.close();
        }
        buf = allocator.buffer(Math.max(length, 64 * 1024));
      }
    }

    private void readFully(FileChannel ch, ByteBuffer into, long at) throws IOException {
      long p = at;
      while (into.hasRemaining()) {
        int n = ch.read(into, p);
        if (n < 0) {
          throw new IOException("Cannot read " + into.remaining() + " more bytes at offset " + p);
        }
        p += n;
      }
    }

    private IOException damaged(Path file, long offset, String why) {
      return new IOException("Cannot open write-ahead log " + file + ": damaged at offset " + offset + " (" + why
          + "); its updates cannot be replayed past it (move the log away to start without them)");
    }

    @Override
    public void close() {
      if (buf != null) {
        buf.close();
      }
    }
  }

  @Override
  public String toString() {
    return "write-ahead log " + dir + " (sync " + sync + ", next update " + nextSeq + ", segments " + Arrays.toString(segments.keySet().toArray()) + ")";
  }
}
