package io.embstore.spark.ml;

import io.embstore.format.Partitioner;
import io.embstore.format.Tokenizer;
import io.embstore.format.Vocabulary;
import io.embstore.shard.EmbeddingClient;
import java.io.IOException;
import java.io.Serializable;
import java.util.Arrays;
import java.util.Iterator;
import java.util.NoSuchElementException;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.JoinedRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.catalyst.util.GenericArrayData;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.Platform;

/**
 * One partition of a lookup: reads the input rows in batches (at most {@code batchRows} rows and
 * about {@value #BATCH_ROW_BYTES} bytes of looked-up rows), turns the input column of each into ids
 * (ids as they are, tokens through the table's vocabulary, text through the table's tokenizer),
 * looks every valid id of the batch up in one call of the routing client (which deduplicates them
 * and sends each shard one request, all shards in parallel) into one float array, and appends the
 * output column to each row, in input order. Nulls stay null; an out-of-range id or an unknown
 * token follows {@code handleInvalid}: {@code error} fails the task naming the value, {@code skip}
 * drops the row, {@code keep} gives null (for an element of an array, a null element).
 *
 * <p>Rows stay Spark's internal rows: the input rows are copied once into the batch, each output
 * value is built from the float array with one bulk copy ({@link UnsafeArrayData}), and one
 * reused projection writes the output row.
 */
final class LookupPartition implements FlatMapFunction<Iterator<InternalRow>, InternalRow>, Serializable {
  private static final long serialVersionUID = 1L;
  /** Bytes of looked-up rows a batch aims at (a longer single row still makes one batch). */
  static final int BATCH_ROW_BYTES = 32 << 20;
  private static final long NULL = -1;
  private static final long INVALID = -2;

  /** What the input column's values (or elements) are. */
  enum Kind {
    ID,
    TOKEN,
    TEXT
  }

  /** What the output column holds per input value. */
  enum Output {
    /** {@code ml.linalg.Vector} (dense, double). */
    VECTOR,
    /** {@code array<float>}. */
    FLOATS,
    /** The mean of the rows of an array or a text as one vector, {@code Word2VecModel.transform}'s average. */
    MEAN
  }

  private final RowSource source;
  private final int ordinal;
  private final String column;
  private final Kind kind;
  private final boolean intIds;
  private final boolean array;
  private final String handleInvalid;
  private final Output output;
  private final int batchRows;
  private final StructType outputSchema;
  /** The driver's hold on the hosting the rows come from (null for running servers); tasks do not need it. */
  transient Hostings.Lease lease;

  LookupPartition(RowSource source, int ordinal, String column, Kind kind, boolean intIds, boolean array,
      String handleInvalid, Output output, int batchRows, StructType outputSchema) {
    this.source = source;
    this.ordinal = ordinal;
    this.column = column;
    this.kind = kind;
    this.intIds = intIds;
    this.array = array;
    this.handleInvalid = handleInvalid;
    this.output = output;
    this.batchRows = batchRows;
    this.outputSchema = outputSchema;
  }

  @Override
  public Iterator<InternalRow> call(Iterator<InternalRow> input) throws IOException {
    return new Batches(input);
  }

  /** The output rows of one partition, computed a batch at a time. */
  private final class Batches implements Iterator<InternalRow> {
    private final Iterator<InternalRow> input;
    private final EmbeddingClient client;
    private final Partitioner partitioner;
    private final Vocabulary vocabulary;
    private final Tokenizer tokenizer;
    private final int dim;
    private final int maxIds;
    private final UnsafeProjection projection = UnsafeProjection.create(outputSchema);
    private final JoinedRow joined = new JoinedRow();
    private final GenericInternalRow extra = new GenericInternalRow(1);
    private final InternalRow[] rows;
    /** Per row: its first slot, its number of slots (-1: a null value), whether it is dropped. */
    private final int[] first;
    private final int[] count;
    private final boolean[] dropped;
    /** Per slot: the id, {@link #NULL} or {@link #INVALID}; then its index among the looked-up ids. */
    private long[] slots = new long[1024];
    private int[] slotRow = new int[1024];
    private long[] query = new long[1024];
    private float[] values = new float[0];
    private final double[] scratch;
    private int size;
    private int next;
    private int used;

    Batches(Iterator<InternalRow> input) throws IOException {
      this.input = input;
      this.client = source.client();
      this.partitioner = source.manifest().partitioner();
      this.vocabulary = kind == Kind.TOKEN ? source.vocabulary() : null;
      this.tokenizer = kind == Kind.TEXT ? source.tokenizer() : null;
      this.dim = source.manifest().dim();
      this.maxIds = Math.max(1, BATCH_ROW_BYTES / (dim * 4));
      this.rows = new InternalRow[batchRows];
      this.first = new int[batchRows];
      this.count = new int[batchRows];
      this.dropped = new boolean[batchRows];
      this.scratch = new double[dim];
    }

    @Override
    public boolean hasNext() {
      while (true) {
        while (next < size && dropped[next]) {
          next++;
        }
        if (next < size) {
          return true;
        }
        if (!input.hasNext()) {
          return false;
        }
        try {
          fill();
        } catch (IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      }
    }

    @Override
    public InternalRow next() {
      if (!hasNext()) {
        throw new NoSuchElementException();
      }
      int r = next++;
      extra.update(0, value(r));
      return projection.apply(joined.apply(rows[r], extra));
    }

    /** Reads the next batch of input rows and looks their ids up. */
    private void fill() throws IOException {
      size = 0;
      next = 0;
      used = 0;
      while (size < batchRows && used < maxIds && input.hasNext()) {
        InternalRow row = input.next().copy();
        int r = size++;
        rows[r] = row;
        dropped[r] = false;
        first[r] = used;
        if (row.isNullAt(ordinal)) {
          count[r] = -1;
          continue;
        }
        if (kind == Kind.TEXT) {
          String text = row.getUTF8String(ordinal).toString();
          long[] ids = tokenizer.encode(text);
          for (int i = 0; i < ids.length; i++) {
            add(ids[i] == Tokenizer.UNKNOWN ? invalid(r, "word '" + Tokenizer.splitWords(text)[i] + "'") : ids[i]);
          }
        } else if (array) {
          ArrayData a = row.getArray(ordinal);
          for (int i = 0; i < a.numElements(); i++) {
            add(a.isNullAt(i) ? NULL : id(r, a, i));
          }
        } else {
          add(id(r, row));
        }
        count[r] = used - first[r];
      }
      int q = 0;
      for (int s = 0; s < used; s++) {
        if (slots[s] >= 0) {
          if (q == query.length) {
            query = Arrays.copyOf(query, q * 2);
          }
          query[q++] = slots[s];
        }
      }
      if (values.length < q * dim) {
        values = new float[q * dim];
      }
      if (q > 0) {
        client.lookup(q == query.length ? query : Arrays.copyOf(query, q), values);
      }
      // The looked-up rows lie in slot order: slot s (when valid) is query row slotRow[s].
      int k = 0;
      for (int s = 0; s < used; s++) {
        slotRow[s] = slots[s] >= 0 ? k++ : -1;
      }
    }

    private void add(long id) {
      if (used == slots.length) {
        slots = Arrays.copyOf(slots, used * 2);
        slotRow = Arrays.copyOf(slotRow, used * 2);
      }
      slots[used++] = id;
    }

    private long id(int r, InternalRow row) {
      if (kind == Kind.TOKEN) {
        return token(r, row.getUTF8String(ordinal).toString());
      }
      return checkId(r, intIds ? row.getInt(ordinal) : row.getLong(ordinal));
    }

    private long id(int r, ArrayData a, int i) {
      if (kind == Kind.TOKEN) {
        return token(r, a.getUTF8String(i).toString());
      }
      return checkId(r, intIds ? a.getInt(i) : a.getLong(i));
    }

    private long checkId(int r, long id) {
      return partitioner.contains(id) ? id : invalid(r, "id " + id + " (outside [0, " + partitioner.numRows() + "))");
    }

    private long token(int r, String token) {
      int id = vocabulary.id(token);
      return id >= 0 ? id : invalid(r, "token '" + token + "' (not in the vocabulary of " + vocabulary.size() + " tokens)");
    }

    /** Applies handleInvalid to an invalid value of row {@code r}: throws, drops the row or keeps a null. */
    private long invalid(int r, String what) {
      if (output == Output.MEAN) {
        return INVALID; // the mean ignores it, as Word2VecModel ignores words outside its vocabulary
      }
      switch (handleInvalid) {
        case "skip":
          dropped[r] = true;
          return INVALID;
        case "keep":
          return INVALID;
        default:
          throw new IllegalArgumentException("Cannot look up " + what + " of column " + column
              + " (handleInvalid=error; set handleInvalid to skip to drop such rows or keep to give them null)");
      }
    }

    /** The output value of row {@code r}. */
    private Object value(int r) {
      if (count[r] < 0) {
        return null;
      }
      int from = first[r];
      int n = count[r];
      if (output == Output.MEAN) {
        return mean(from, n);
      }
      if (!array && kind != Kind.TEXT) {
        return element(from);
      }
      Object[] elements = new Object[n];
      for (int i = 0; i < n; i++) {
        elements[i] = element(from + i);
      }
      return new GenericArrayData(elements);
    }

    private Object element(int slot) {
      int row = slotRow[slot];
      if (row < 0) {
        return null;
      }
      if (output == Output.FLOATS) {
        return UnsafeArrayData.fromPrimitiveArray(values, Platform.FLOAT_ARRAY_OFFSET + 4 * row * dim, dim, 4);
      }
      for (int c = 0; c < dim; c++) {
        scratch[c] = values[row * dim + c];
      }
      return VectorRows.dense(scratch);
    }

    /**
     * The sum of the valid rows of slots [from, from + n) divided by n (every token counts, as in
     * Word2VecModel.transform); no token at all gives the empty sparse vector.
     */
    private Object mean(int from, int n) {
      if (n == 0) {
        return VectorRows.emptySparse(dim);
      }
      Arrays.fill(scratch, 0);
      for (int s = from; s < from + n; s++) {
        int row = slotRow[s];
        if (row >= 0) {
          for (int c = 0; c < dim; c++) {
            scratch[c] += values[row * dim + c];
          }
        }
      }
      for (int c = 0; c < dim; c++) {
        scratch[c] /= n;
      }
      return VectorRows.dense(scratch);
    }
  }
}
