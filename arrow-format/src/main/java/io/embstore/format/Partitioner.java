package io.embstore.format;

/**
 * Maps a token id in {@code [0, V)} to the shard that owns it and to its row position inside that
 * shard. Every id in {@code [0, V)} has exactly one row: a table is dense, so a shard's rows are in
 * ascending id order and a row's position is computed, never looked up.
 *
 * <p>This is the one implementation of the routing rule. The shard server, the routing client and
 * the Spark job all call it; none keeps its own copy. {@link #shardOf} and {@link #positionOf} are
 * O(1) and allocation-free.
 *
 * <ul>
 *   <li>{@code modulo} (default): shard = id mod P, position = id / P. Frequency-sorted
 *       vocabularies put the hot ids first, and modulo spreads them over every shard.
 *   <li>{@code range}: P contiguous blocks; the first V mod P shards have one row more than the rest,
 *       so no shard is empty when P &lt;= V.
 * </ul>
 */
public abstract class Partitioner {
  public static final String MODULO = "modulo";
  public static final String RANGE = "range";

  final long numRows;
  final int numShards;

  Partitioner(long numRows, int numShards) {
    if (numShards < 1) {
      throw new IllegalArgumentException(
          "Cannot partition: shards=" + numShards + " (must be at least 1)");
    }
    if (numRows < 1) {
      throw new IllegalArgumentException(
          "Cannot partition: rows=" + numRows + " (must be at least 1)");
    }
    if (numShards > numRows) {
      throw new IllegalArgumentException(
          "Cannot partition "
              + numRows
              + " rows into "
              + numShards
              + " shards (shards must be at most the number of rows)");
    }
    this.numRows = numRows;
    this.numShards = numShards;
  }

  /** The partitioner named {@code name} ({@value #MODULO} or {@value #RANGE}). */
  public static Partitioner of(String name, long numRows, int numShards) {
    if (MODULO.equals(name)) {
      return modulo(numRows, numShards);
    }
    if (RANGE.equals(name)) {
      return range(numRows, numShards);
    }
    throw new IllegalArgumentException(
        "Cannot partition: unknown partitioner '" + name + "' (known: modulo, range)");
  }

  public static Partitioner modulo(long numRows, int numShards) {
    return new Modulo(numRows, numShards);
  }

  public static Partitioner range(long numRows, int numShards) {
    return new Range(numRows, numShards);
  }

  public abstract String name();

  /** V: the number of ids (rows) of the whole table. */
  public final long numRows() {
    return numRows;
  }

  /** P: the number of shards. */
  public final int numShards() {
    return numShards;
  }

  /** The shard that owns {@code id}; {@code id} must be in {@code [0, V)} (see {@link #check}). */
  public abstract int shardOf(long id);

  /** The row position of {@code id} inside its shard. */
  public abstract long positionOf(long id);

  /** The id stored at {@code position} of {@code shard}. */
  public abstract long idAt(int shard, long position);

  /** The number of rows of {@code shard}. */
  public abstract long shardRows(int shard);

  /** The smallest id of {@code shard}. */
  public final long minId(int shard) {
    return idAt(shard, 0);
  }

  /** The largest id of {@code shard}. */
  public final long maxId(int shard) {
    return idAt(shard, shardRows(shard) - 1);
  }

  /** Whether {@code id} is in {@code [0, V)}. */
  public final boolean contains(long id) {
    return id >= 0 && id < numRows;
  }

  /** Throws {@link IllegalArgumentException} naming the id and the limit when it is out of range. */
  public final void check(long id) {
    if (!contains(id)) {
      throw new IllegalArgumentException(
          "Cannot route id " + id + ": outside [0, " + numRows + ")");
    }
  }

  /** A short description of the ids of {@code shard}, for error messages. */
  public final String describeShard(int shard) {
    if (this instanceof Modulo) {
      return "shard "
          + shard
          + " of "
          + numShards
          + " (ids "
          + minId(shard)
          + ".."
          + maxId(shard)
          + " with id mod "
          + numShards
          + " = "
          + shard
          + ")";
    }
    return "shard " + shard + " of " + numShards + " (ids " + minId(shard) + ".." + maxId(shard) + ")";
  }

  @Override
  public String toString() {
    return name() + "(rows=" + numRows + ", shards=" + numShards + ")";
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof Partitioner)) {
      return false;
    }
    Partitioner that = (Partitioner) o;
    return name().equals(that.name()) && numRows == that.numRows && numShards == that.numShards;
  }

  @Override
  public int hashCode() {
    return name().hashCode() * 31 + Long.hashCode(numRows) * 17 + numShards;
  }

  static final class Modulo extends Partitioner {
    Modulo(long numRows, int numShards) {
      super(numRows, numShards);
    }

    @Override
    public String name() {
      return MODULO;
    }

    @Override
    public int shardOf(long id) {
      return (int) (id % numShards);
    }

    @Override
    public long positionOf(long id) {
      return id / numShards;
    }

    @Override
    public long idAt(int shard, long position) {
      return position * numShards + shard;
    }

    @Override
    public long shardRows(int shard) {
      return (numRows - shard + numShards - 1) / numShards;
    }
  }

  static final class Range extends Partitioner {
    /** Rows of the shorter shards. */
    private final long base;
    /** Number of shards with {@code base + 1} rows; they come first. */
    private final long longShards;
    /** First id of the first short shard. */
    private final long split;

    Range(long numRows, int numShards) {
      super(numRows, numShards);
      this.base = numRows / numShards;
      this.longShards = numRows % numShards;
      this.split = longShards * (base + 1);
    }

    @Override
    public String name() {
      return RANGE;
    }

    @Override
    public int shardOf(long id) {
      if (id < split) {
        return (int) (id / (base + 1));
      }
      return (int) (longShards + (id - split) / base);
    }

    @Override
    public long positionOf(long id) {
      if (id < split) {
        return id % (base + 1);
      }
      return (id - split) % base;
    }

    @Override
    public long idAt(int shard, long position) {
      if (shard < longShards) {
        return shard * (base + 1) + position;
      }
      return split + (shard - longShards) * base + position;
    }

    @Override
    public long shardRows(int shard) {
      return shard < longShards ? base + 1 : base;
    }
  }
}
