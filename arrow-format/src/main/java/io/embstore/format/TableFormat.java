package io.embstore.format;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The embstore table format, version 2. This javadoc is the specification; {@code docs/format.md}
 * explains it with examples. Version 2 differs from version 1 only in the manifest's {@code
 * vocabulary} member (a list of files instead of one file); readers accept both.
 *
 * <h2>A table is a directory</h2>
 *
 * <pre>
 * TABLE_DIR/
 *   manifest.json                      the commit point: the only file that says what the table is
 *   shard-00000-v000001.arrow          P shard files, Arrow IPC file format, one per shard
 *   ...
 *   shard-00003-v000001.arrow
 *   vocab-v000001.arrow                optional vocabulary, Arrow IPC file format: one file,
 *   vocab-00000-v000001.arrow          or pieces, each holding a contiguous range of ids
 *   vocab-00001-v000001.arrow          (written in parallel, e.g. by a training job's executors)
 * </pre>
 *
 * <p>File names carry the table version that wrote them, so a new version (an import, a snapshot of
 * a shard server, a training checkpoint) never overwrites a file the current manifest refers to.
 *
 * <h2>manifest.json</h2>
 *
 * A UTF-8 JSON object with these members, in this order:
 *
 * <ul>
 *   <li>{@code format}: {@value #TABLE_FORMAT_NAME}; {@code formatVersion}: an integer in {@code
 *       [VERSION_MIN, VERSION_CURRENT]}; readers fail with {@link TableFormatException.TooOld} or
 *       {@link TableFormatException.TooNew} outside it.
 *   <li>{@code tableVersion}: 1 for a new table, +1 for every committed version.
 *   <li>{@code rows} (V, at least 1), {@code dim} (C, 1..{@value #MAX_DIM}), {@code valueType}
 *       (the {@link ValueType} of the embeddings: {@code float32}, {@code float16} or {@code
 *       bfloat16}; a reader refuses a type it does not know), {@code partitioner} ({@code modulo} or {@code range}, see {@link
 *       Partitioner}), {@code numShards} (P, 1..min(V, {@value #MAX_SHARDS})).
 *   <li>{@code shards}: P objects in shard order: {@code index}, {@code file}, {@code rows}, {@code
 *       minId}, {@code maxId}, {@code bytes} (file length) and {@code crc32c} (CRC-32C of the whole
 *       file, 8 lower-case hex digits). Rows and id range must equal what the partitioner gives.
 *   <li>{@code vocabulary}: null, or {@code rows} (= V) and {@code files}: a non-empty list in id
 *       order of {@code file}, {@code firstId} (0 for the first file, then the previous file's
 *       {@code firstId + rows}), {@code rows} (at least 1), {@code bytes} and {@code crc32c}; the
 *       files' rows add up to V. Format version 1 has one file instead: {@code vocabulary} is
 *       {@code file}, {@code rows} (= V), {@code bytes}, {@code crc32c}; a manifest read as version 1
 *       is written back as version 1, a new table version of it as version 2.
 *   <li>{@code optimizer}: null, or {@code name}, {@code params} (name to number), {@code
 *       stateColumns} (a list of {@code name} and {@code width}: extra shard columns) and {@code
 *       step} (updates applied so far).
 *   <li>{@code created}: {@code by} (the command or job), {@code at} (ISO-8601 UTC), {@code
 *       embstoreVersion}; {@code properties}: free-form string map (e.g. training progress; {@code
 *       tokenizer}: the {@link Tokenizer} whose ids the rows are).
 *   <li>{@code checksum}: always the last member: {@code "crc32c:XXXXXXXX"}, the CRC-32C of every
 *       byte of the file before the line that holds it (the two characters {@code ",\n"} that end the
 *       previous member included).
 * </ul>
 *
 * <h2>Shard files</h2>
 *
 * Arrow IPC file format (magic {@code ARROW1}, footer), any number of record batches (writers use
 * about {@value #TARGET_BATCH_BYTES} bytes of rows per batch). Schema:
 *
 * <ul>
 *   <li>{@code id}: int64, non-null, the ids of the shard in ascending order: exactly {@code
 *       partitioner.idAt(shard, 0..rows-1)}.
 *   <li>{@code embedding}: FixedSizeList[C] of the manifest's value type, non-null: row i is the
 *       embedding of id i. Items: {@code float32} FloatingPoint(SINGLE); {@code float16}
 *       FloatingPoint(HALF); {@code bfloat16} Int(16, unsigned) holding the bfloat16 bits, the
 *       field tagged with metadata {@value #META_DTYPE} = {@code bfloat16} (see {@link ValueType}).
 *       For {@code int8} the column is instead FixedSizeBinary[C + 8], non-null, tagged with field
 *       metadata {@value #META_DTYPE} = {@code int8}: C uint8 codes, then float32 scale and float32
 *       bias, little-endian (FBGEMM's fused row-wise layout, see {@link Int8Rows}).
 *   <li>optional optimizer state columns, each FixedSizeList&lt;float32&gt;[width], non-null, named
 *       and sized as the manifest's {@code optimizer.stateColumns}.
 * </ul>
 *
 * Schema metadata: {@value #META_FORMAT} = {@value #SHARD_FORMAT_NAME}, {@value #META_VERSION},
 * {@value #META_DIM}, {@value #META_SHARD}, {@value #META_NUM_SHARDS}, {@value #META_PARTITIONER},
 * {@value #META_ROWS} (V of the table), and for 16-bit and int8 tables {@value #META_VALUE_TYPE} (the
 * value type; float32 shards do not have it, as before 16-bit tables). Values are little-endian (Arrow IPC's native order on all
 * supported platforms).
 *
 * <h2>Vocabulary file</h2>
 *
 * Arrow IPC file, schema {@code id} int64 non-null (the file's ids in order: {@code firstId ..
 * firstId + rows - 1}), {@code token} utf8 non-null, non-empty, {@code count} int64 non-null (0 when
 * unknown), metadata {@value #META_FORMAT} = {@value #VOCAB_FORMAT_NAME} and {@value #META_VERSION}.
 * Tokens are unique across all files of the vocabulary. Names: {@code vocab-v<version>.arrow} for a
 * vocabulary of one file, {@code vocab-<piece>-v<version>.arrow} for pieces (piece numbers need not
 * be contiguous).
 *
 * <h2>Commit protocol</h2>
 *
 * Writers write every shard and vocabulary file first (under new names) and make them durable,
 * then commit the manifest atomically, then delete files no longer referenced. How the manifest is
 * committed depends on the storage ({@link TableLocation#commitManifest}): on a local disk {@code
 * manifest.json.tmp-*} is forced and renamed over {@code manifest.json} and the directory forced;
 * on HDFS the temporary manifest is {@code hsync}ed and renamed with overwrite; on object stores
 * (S3) {@code manifest.json} is one conditional PUT. A crash at any point leaves the previous
 * manifest (and every file it names) or, for a new table, no manifest at all: a directory without
 * {@code manifest.json} is not a table. A commit never replaces a manifest of the same or a newer
 * table version. One writer per table at a time.
 */
public final class TableFormat {
  public static final String TABLE_FORMAT_NAME = "embstore-table";
  public static final String SHARD_FORMAT_NAME = "embstore-shard";
  public static final String VOCAB_FORMAT_NAME = "embstore-vocab";
  public static final int VERSION_MIN = 1;
  public static final int VERSION_CURRENT = 2;

  public static final String MANIFEST_FILE = "manifest.json";
  public static final String VALUE_TYPE_FLOAT32 = "float32";
  public static final String VALUE_TYPE_FLOAT16 = "float16";
  public static final String VALUE_TYPE_BFLOAT16 = "bfloat16";
  public static final String VALUE_TYPE_INT8 = "int8";

  public static final String ID_COLUMN = "id";
  public static final String EMBEDDING_COLUMN = "embedding";
  public static final String TOKEN_COLUMN = "token";
  public static final String COUNT_COLUMN = "count";

  public static final String META_FORMAT = "embstore.format";
  public static final String META_VERSION = "embstore.format.version";
  public static final String META_DIM = "embstore.dim";
  public static final String META_SHARD = "embstore.shard";
  public static final String META_NUM_SHARDS = "embstore.shards";
  public static final String META_PARTITIONER = "embstore.partitioner";
  public static final String META_ROWS = "embstore.rows";
  /** Schema metadata of 16-bit and int8 shards: the manifest's {@code valueType} (absent: float32). */
  public static final String META_VALUE_TYPE = "embstore.valueType";
  /** Field metadata of a bfloat16 {@code embedding} column (its items are uint16 bits) or an int8 one (binary rows). */
  public static final String META_DTYPE = "embstore.dtype";

  /** Largest embedding dimension C. */
  public static final int MAX_DIM = 65536;
  /** Largest number of shards P. */
  public static final int MAX_SHARDS = 65536;
  /** Writers aim for record batches of about this many bytes of embedding data. */
  public static final int TARGET_BATCH_BYTES = 8 << 20;
  /** Writers never put more rows than this in one record batch. */
  public static final int MAX_BATCH_ROWS = 64 * 1024;

  private TableFormat() {}

  /** Rows per record batch that writers use for float32 rows of dimension {@code dim} and state widths. */
  public static int batchRows(int dim, int stateWidth) {
    return batchRows(dim, ValueType.FLOAT32, stateWidth);
  }

  /** Rows per record batch that writers use for rows of {@code dim} values of {@code type} and state widths. */
  public static int batchRows(int dim, ValueType type, int stateWidth) {
    long bytesPerRow = 8L + type.rowBytes(dim) + 4L * stateWidth;
    return (int) Math.max(1, Math.min(MAX_BATCH_ROWS, TARGET_BATCH_BYTES / bytesPerRow));
  }

  public static String shardFileName(int shard, long tableVersion) {
    return String.format(Locale.ROOT, "shard-%05d-v%06d.arrow", shard, tableVersion);
  }

  public static String vocabFileName(long tableVersion) {
    return String.format(Locale.ROOT, "vocab-v%06d.arrow", tableVersion);
  }

  /** The name of piece {@code piece} of a vocabulary written in pieces by table version {@code tableVersion}. */
  public static String vocabPieceFileName(int piece, long tableVersion) {
    return String.format(Locale.ROOT, "vocab-%05d-v%06d.arrow", piece, tableVersion);
  }

  /** Whether {@code name} is a data file a table writer may have written (for clean-up). */
  static boolean isDataFileName(String name) {
    return name.matches("shard-\\d{5}-v\\d{6,}\\.arrow") || name.matches("vocab-(\\d{5}-)?v\\d{6,}\\.arrow");
  }

  /** The shard schema of a float32 table; see {@link #shardSchema(int, ValueType, int, Partitioner, List)}. */
  public static Schema shardSchema(
      int dim, int shard, Partitioner partitioner, List<TableManifest.StateColumn> stateColumns) {
    return shardSchema(dim, ValueType.FLOAT32, shard, partitioner, stateColumns);
  }

  /** The shard schema for dimension {@code dim}, value type {@code type}, shard {@code shard} and optional state columns. */
  public static Schema shardSchema(
      int dim, ValueType type, int shard, Partitioner partitioner, List<TableManifest.StateColumn> stateColumns) {
    List<Field> fields = new ArrayList<>();
    fields.add(new Field(ID_COLUMN, FieldType.notNullable(new ArrowType.Int(64, true)), null));
    fields.add(type.embeddingField(dim));
    for (TableManifest.StateColumn column : stateColumns) {
      fields.add(floatList(column.name(), column.width()));
    }
    Map<String, String> meta = new HashMap<>();
    meta.put(META_FORMAT, SHARD_FORMAT_NAME);
    meta.put(META_VERSION, Integer.toString(VERSION_CURRENT));
    meta.put(META_DIM, Integer.toString(dim));
    meta.put(META_SHARD, Integer.toString(shard));
    meta.put(META_NUM_SHARDS, Integer.toString(partitioner.numShards()));
    meta.put(META_PARTITIONER, partitioner.name());
    meta.put(META_ROWS, Long.toString(partitioner.numRows()));
    if (type.isCompact()) {
      // float32 shards stay byte for byte what builds before 16-bit tables wrote.
      meta.put(META_VALUE_TYPE, type.label());
    }
    return new Schema(fields, meta);
  }

  /** The vocabulary schema. */
  public static Schema vocabSchema() {
    List<Field> fields = new ArrayList<>();
    fields.add(new Field(ID_COLUMN, FieldType.notNullable(new ArrowType.Int(64, true)), null));
    fields.add(new Field(TOKEN_COLUMN, FieldType.notNullable(ArrowType.Utf8.INSTANCE), null));
    fields.add(new Field(COUNT_COLUMN, FieldType.notNullable(new ArrowType.Int(64, true)), null));
    Map<String, String> meta = new HashMap<>();
    meta.put(META_FORMAT, VOCAB_FORMAT_NAME);
    meta.put(META_VERSION, Integer.toString(VERSION_CURRENT));
    return new Schema(fields, meta);
  }

  static Field floatList(String name, int width) {
    Field item =
        new Field(
            "item",
            FieldType.notNullable(new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)),
            null);
    return new Field(name, FieldType.notNullable(new ArrowType.FixedSizeList(width)), List.of(item));
  }

  /**
   * Checks a format version read from {@code file}.
   *
   * @throws TableFormatException.TooOld or {@link TableFormatException.TooNew} outside the range
   */
  static void checkVersion(String file, int version) throws TableFormatException {
    if (version < VERSION_MIN) {
      throw new TableFormatException.TooOld(file, version, VERSION_MIN);
    }
    if (version > VERSION_CURRENT) {
      throw new TableFormatException.TooNew(file, version, VERSION_CURRENT);
    }
  }
}
