package io.embstore.format;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * The manifest of one table version: what {@code manifest.json} holds (see {@link TableFormat} for
 * the layout). Immutable; build with {@link #builder()} or {@link #toBuilder()}, read with {@link
 * #read(Path)}. Validation happens in one place, {@link #validate}, on build and on read.
 */
public final class TableManifest {
  static final ObjectMapper JSON =
      new ObjectMapper()
          .enable(SerializationFeature.INDENT_OUTPUT)
          // Bytes after the closing brace are damage, not something to ignore.
          .enable(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
  private static final String CHECKSUM_PREFIX = ",\n  \"checksum\" : \"crc32c:";

  private final int formatVersion;
  private final long tableVersion;
  private final long rows;
  private final int dim;
  private final ValueType valueType;
  private final String partitionerName;
  private final List<ShardEntry> shards;
  private final List<FileEntry> vocabulary;
  private final Optimizer optimizer;
  private final Map<String, String> created;
  private final Map<String, String> properties;
  private final Partitioner partitioner;

  private TableManifest(Builder b) {
    this.formatVersion = b.formatVersion;
    this.tableVersion = b.tableVersion;
    this.rows = b.rows;
    this.dim = b.dim;
    this.valueType = ValueType.of(b.valueType);
    this.partitionerName = b.partitioner;
    this.shards = List.copyOf(b.shards);
    this.vocabulary = List.copyOf(b.vocabulary);
    this.optimizer = b.optimizer;
    this.created = Collections.unmodifiableMap(new LinkedHashMap<>(b.created));
    this.properties = Collections.unmodifiableMap(new LinkedHashMap<>(b.properties));
    this.partitioner = Partitioner.of(partitionerName, rows, shards.size());
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * A builder with every member of this manifest, in the current format version: a table's next
   * version is written as {@link TableFormat#VERSION_CURRENT} whatever version it was read as.
   */
  public Builder toBuilder() {
    Builder b = new Builder();
    b.tableVersion = tableVersion;
    b.rows = rows;
    b.dim = dim;
    b.valueType = valueType.label();
    b.partitioner = partitionerName;
    b.shards = new ArrayList<>(shards);
    b.vocabulary = new ArrayList<>(vocabulary);
    b.optimizer = optimizer;
    b.created = new LinkedHashMap<>(created);
    b.properties = new LinkedHashMap<>(properties);
    return b;
  }

  public int formatVersion() {
    return formatVersion;
  }

  public long tableVersion() {
    return tableVersion;
  }

  /** V. */
  public long rows() {
    return rows;
  }

  /** C. */
  public int dim() {
    return dim;
  }

  /** The type of the embedding values (optimizer state is always float32). */
  public ValueType valueType() {
    return valueType;
  }

  /** P. */
  public int numShards() {
    return shards.size();
  }

  public Partitioner partitioner() {
    return partitioner;
  }

  public List<ShardEntry> shards() {
    return shards;
  }

  public ShardEntry shard(int index) {
    return shards.get(index);
  }

  /**
   * The vocabulary's files in id order (empty without a vocabulary): file i holds the ids from the
   * sum of the rows of the files before it, {@link #vocabularyFirstId}. One file, unless the
   * vocabulary was written in pieces (by the executors of a training job).
   */
  public List<FileEntry> vocabularyFiles() {
    return vocabulary;
  }

  public boolean hasVocabulary() {
    return !vocabulary.isEmpty();
  }

  /** The first id of vocabulary file {@code file} (an index into {@link #vocabularyFiles}). */
  public long vocabularyFirstId(int file) {
    long first = 0;
    for (int i = 0; i < file; i++) {
      first += vocabulary.get(i).rows();
    }
    return first;
  }

  /** The optimizer and its state columns, or null. */
  public Optimizer optimizer() {
    return optimizer;
  }

  /** State columns of the optimizer (empty without one). */
  public List<StateColumn> stateColumns() {
    return optimizer == null ? List.of() : optimizer.stateColumns();
  }

  public Map<String, String> created() {
    return created;
  }

  public Map<String, String> properties() {
    return properties;
  }

  /** Bytes of the stored embedding values: V x C x the value type's size. */
  public long embeddingBytes() {
    return rows * rowBytes();
  }

  /** Bytes of one stored row of embeddings: C x the value type's size (int8: C + 8). */
  public long rowBytes() {
    return valueType.rowBytes(dim);
  }

  // ---------------------------------------------------------------- JSON

  /** The manifest as JSON, checksum line included. */
  public byte[] toJson() {
    ObjectNode root = JsonNodeFactory.instance.objectNode();
    root.put("format", TableFormat.TABLE_FORMAT_NAME);
    root.put("formatVersion", formatVersion);
    root.put("tableVersion", tableVersion);
    root.put("rows", rows);
    root.put("dim", dim);
    root.put("valueType", valueType.label());
    root.put("partitioner", partitionerName);
    root.put("numShards", shards.size());
    ArrayNode shardArray = root.putArray("shards");
    for (ShardEntry s : shards) {
      s.writeTo(shardArray.addObject());
    }
    if (vocabulary.isEmpty()) {
      root.putNull("vocabulary");
    } else if (formatVersion == 1) {
      // Read as version 1 (one file, no list): written back the same way, so the bytes match.
      FileEntry only = vocabulary.get(0);
      ObjectNode n = root.putObject("vocabulary");
      n.put("file", only.file());
      n.put("rows", only.rows());
      n.put("bytes", only.bytes());
      n.put("crc32c", Checksums.hex(only.crc32c()));
    } else {
      ObjectNode n = root.putObject("vocabulary");
      n.put("rows", rows);
      ArrayNode files = n.putArray("files");
      long first = 0;
      for (FileEntry f : vocabulary) {
        ObjectNode e = files.addObject();
        e.put("file", f.file());
        e.put("firstId", first);
        e.put("rows", f.rows());
        e.put("bytes", f.bytes());
        e.put("crc32c", Checksums.hex(f.crc32c()));
        first += f.rows();
      }
    }
    if (optimizer == null) {
      root.putNull("optimizer");
    } else {
      optimizer.writeTo(root.putObject("optimizer"));
    }
    ObjectNode createdNode = root.putObject("created");
    created.forEach(createdNode::put);
    ObjectNode props = root.putObject("properties");
    properties.forEach(props::put);
    String body;
    try {
      body = JSON.writeValueAsString(root);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("Cannot serialize manifest", e);
    }
    // body ends with "\n}"; the checksum member goes last, over every byte before its line.
    String head = body.substring(0, body.lastIndexOf('}')).stripTrailing();
    byte[] headBytes = (head + ",\n").getBytes(StandardCharsets.UTF_8);
    int crc = Checksums.crc32c(headBytes, 0, headBytes.length);
    String text = head + CHECKSUM_PREFIX + Checksums.hex(crc) + "\"\n}\n";
    return text.getBytes(StandardCharsets.UTF_8);
  }

  /** Parses and validates manifest bytes; {@code file} names them in errors. */
  public static TableManifest parse(byte[] bytes, String file) throws TableFormatException {
    String text = new String(bytes, StandardCharsets.UTF_8);
    int at = text.lastIndexOf(CHECKSUM_PREFIX);
    if (at < 0) {
      throw new TableFormatException("Cannot read " + file + ": no checksum member (not a manifest or truncated)");
    }
    byte[] head = text.substring(0, at + 2).getBytes(StandardCharsets.UTF_8);
    int actual = Checksums.crc32c(head, 0, head.length);
    int hexStart = at + CHECKSUM_PREFIX.length();
    String stored = hexStart + 8 <= text.length() ? text.substring(hexStart, hexStart + 8) : "";
    if (!stored.equals(Checksums.hex(actual))) {
      throw new TableFormatException(
          "Cannot read "
              + file
              + ": checksum mismatch (stored crc32c:"
              + stored
              + ", computed crc32c:"
              + Checksums.hex(actual)
              + "): the manifest is corrupt");
    }
    JsonNode root;
    try {
      root = JSON.readTree(bytes);
    } catch (IOException e) {
      throw new TableFormatException("Cannot read " + file + ": not valid JSON: " + e.getMessage(), e);
    }
    try {
      return fromJson(root, file);
    } catch (IllegalArgumentException | NullPointerException e) {
      throw new TableFormatException("Cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  private static TableManifest fromJson(JsonNode root, String file) throws TableFormatException {
    String format = text(root, "format");
    if (!TableFormat.TABLE_FORMAT_NAME.equals(format)) {
      throw new TableFormatException(
          "Cannot read " + file + ": format is '" + format + "', expected '" + TableFormat.TABLE_FORMAT_NAME + "'");
    }
    int version = (int) number(root, "formatVersion");
    TableFormat.checkVersion(file, version);
    Builder b = builder();
    b.formatVersion = version;
    b.tableVersion(number(root, "tableVersion"))
        .rows(number(root, "rows"))
        .dim((int) number(root, "dim"))
        .valueType(text(root, "valueType"))
        .partitioner(text(root, "partitioner"));
    long numShards = number(root, "numShards");
    JsonNode shardArray = root.get("shards");
    if (shardArray == null || !shardArray.isArray()) {
      throw new IllegalArgumentException("member 'shards' missing or not a list");
    }
    if (shardArray.size() != numShards) {
      throw new IllegalArgumentException(
          "numShards is " + numShards + " but 'shards' lists " + shardArray.size());
    }
    for (JsonNode n : shardArray) {
      b.addShard(ShardEntry.fromJson(n));
    }
    JsonNode vocab = root.get("vocabulary");
    if (vocab != null && !vocab.isNull()) {
      if (version == 1) {
        b.vocabulary(
            new FileEntry(
                text(vocab, "file"),
                number(vocab, "rows"),
                number(vocab, "bytes"),
                Checksums.parseHex(text(vocab, "crc32c"))));
      } else {
        JsonNode files = vocab.get("files");
        if (files == null || !files.isArray()) {
          throw new IllegalArgumentException("member 'vocabulary.files' missing or not a list");
        }
        long rowsInFiles = number(vocab, "rows");
        List<FileEntry> entries = new ArrayList<>();
        long first = 0;
        for (JsonNode f : files) {
          long firstId = number(f, "firstId");
          if (firstId != first) {
            throw new IllegalArgumentException("vocabulary file " + entries.size() + " has firstId " + firstId
                + ", the files before it end at " + first);
          }
          FileEntry e = new FileEntry(text(f, "file"), number(f, "rows"), number(f, "bytes"), Checksums.parseHex(text(f, "crc32c")));
          entries.add(e);
          first += e.rows();
        }
        if (rowsInFiles != first) {
          throw new IllegalArgumentException("vocabulary has rows " + rowsInFiles + " but its files hold " + first);
        }
        b.vocabularyFiles(entries);
      }
    }
    JsonNode opt = root.get("optimizer");
    if (opt != null && !opt.isNull()) {
      b.optimizer(Optimizer.fromJson(opt));
    }
    b.created(stringMap(root.get("created")));
    b.properties(stringMap(root.get("properties")));
    return b.build();
  }

  private static Map<String, String> stringMap(JsonNode node) {
    Map<String, String> map = new LinkedHashMap<>();
    if (node != null && node.isObject()) {
      node.fields().forEachRemaining(e -> map.put(e.getKey(), e.getValue().asText()));
    }
    return map;
  }

  private static String text(JsonNode node, String name) {
    JsonNode v = node.get(name);
    if (v == null || !v.isTextual()) {
      throw new IllegalArgumentException("member '" + name + "' missing or not a string");
    }
    return v.asText();
  }

  private static long number(JsonNode node, String name) {
    JsonNode v = node.get(name);
    if (v == null || !v.isIntegralNumber()) {
      throw new IllegalArgumentException("member '" + name + "' missing or not an integer");
    }
    return v.asLong();
  }

  /**
   * Reads and validates {@code dir/manifest.json}.
   *
   * @throws TableFormatException when the directory holds no committed table or the manifest is bad
   */
  public static TableManifest read(Path dir) throws IOException {
    return read(TableLocation.of(dir));
  }

  /** Reads and validates the manifest of the table in {@code dir}, on any storage. */
  public static TableManifest read(TableLocation dir) throws IOException {
    byte[] bytes;
    try {
      bytes = dir.readAllBytes(TableFormat.MANIFEST_FILE);
    } catch (NoSuchFileException e) {
      throw new TableFormatException(
          "Cannot open table " + dir + ": no " + TableFormat.MANIFEST_FILE + " (not a table, or a write that never committed)", e);
    }
    return parse(bytes, dir.describe(TableFormat.MANIFEST_FILE));
  }

  @Override
  public String toString() {
    return new String(toJson(), StandardCharsets.UTF_8);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TableManifest && java.util.Arrays.equals(toJson(), ((TableManifest) o).toJson());
  }

  @Override
  public int hashCode() {
    return java.util.Arrays.hashCode(toJson());
  }

  // ---------------------------------------------------------------- validation

  private void validate() {
    if (dim < 1 || dim > TableFormat.MAX_DIM) {
      throw new IllegalArgumentException(
          "dim " + dim + " is outside [1, " + TableFormat.MAX_DIM + "]");
    }
    if (tableVersion < 1) {
      throw new IllegalArgumentException("tableVersion " + tableVersion + " must be at least 1");
    }
    if (shards.size() > TableFormat.MAX_SHARDS) {
      throw new IllegalArgumentException(
          "numShards " + shards.size() + " exceeds the limit " + TableFormat.MAX_SHARDS);
    }
    for (int i = 0; i < shards.size(); i++) {
      ShardEntry s = shards.get(i);
      if (s.index() != i) {
        throw new IllegalArgumentException("shards[" + i + "] has index " + s.index());
      }
      long expectedRows = partitioner.shardRows(i);
      if (s.rows() != expectedRows) {
        throw new IllegalArgumentException(
            "shard " + i + " has rows=" + s.rows() + ", the " + partitioner + " gives " + expectedRows);
      }
      if (s.minId() != partitioner.minId(i) || s.maxId() != partitioner.maxId(i)) {
        throw new IllegalArgumentException(
            "shard " + i + " has ids " + s.minId() + ".." + s.maxId() + ", the " + partitioner
                + " gives " + partitioner.minId(i) + ".." + partitioner.maxId(i));
      }
      checkFileName(s.file());
    }
    if (!vocabulary.isEmpty()) {
      long total = 0;
      java.util.Set<String> names = new java.util.HashSet<>();
      for (FileEntry f : vocabulary) {
        checkFileName(f.file());
        if (!names.add(f.file())) {
          throw new IllegalArgumentException("vocabulary file '" + f.file() + "' is listed twice");
        }
        if (f.rows() < 1) {
          throw new IllegalArgumentException("vocabulary file '" + f.file() + "' has " + f.rows() + " rows (at least 1)");
        }
        total += f.rows();
      }
      if (total != rows) {
        throw new IllegalArgumentException(
            "vocabulary has " + total + " rows, the table has " + rows);
      }
      if (formatVersion < 2 && vocabulary.size() > 1) {
        throw new IllegalArgumentException(
            "vocabulary has " + vocabulary.size() + " files (format version " + formatVersion + " has one; several need version 2)");
      }
    }
    if (optimizer != null) {
      for (StateColumn c : optimizer.stateColumns()) {
        if (c.width() < 1 || c.width() > TableFormat.MAX_DIM) {
          throw new IllegalArgumentException(
              "state column '" + c.name() + "' has width " + c.width() + " outside [1, " + TableFormat.MAX_DIM + "]");
        }
        if (c.name().equals(TableFormat.ID_COLUMN) || c.name().equals(TableFormat.EMBEDDING_COLUMN)) {
          throw new IllegalArgumentException("state column name '" + c.name() + "' is reserved");
        }
      }
    }
  }

  private static void checkFileName(String file) {
    if (file.isEmpty() || file.contains("/") || file.contains("\\") || file.startsWith(".")) {
      throw new IllegalArgumentException(
          "file name '" + file + "' must be a plain name inside the table directory");
    }
  }

  // ---------------------------------------------------------------- parts

  /** One shard file of the table. */
  public record ShardEntry(
      int index, String file, long rows, long minId, long maxId, long bytes, int crc32c) {
    public ShardEntry {
      Objects.requireNonNull(file, "file");
    }

    /**
     * Writes the members {@code index}, {@code file}, {@code rows}, {@code minId}, {@code maxId},
     * {@code bytes}, {@code crc32c} (8 hex digits) into {@code n}: the manifest's shard entry, also
     * what a shard server's {@code snapshot} action answers.
     */
    public void writeTo(ObjectNode n) {
      n.put("index", index);
      n.put("file", file);
      n.put("rows", rows);
      n.put("minId", minId);
      n.put("maxId", maxId);
      n.put("bytes", bytes);
      n.put("crc32c", Checksums.hex(crc32c));
    }

    /** Reads what {@link #writeTo} wrote; throws IllegalArgumentException naming a missing or bad member. */
    public static ShardEntry fromJson(JsonNode n) {
      return new ShardEntry((int) number(n, "index"), text(n, "file"), number(n, "rows"), number(n, "minId"),
          number(n, "maxId"), number(n, "bytes"), Checksums.parseHex(text(n, "crc32c")));
    }
  }

  /** A file with a row count and a checksum (a file of the vocabulary); serializable to travel back from a Spark task that wrote it. */
  public record FileEntry(String file, long rows, long bytes, int crc32c) implements java.io.Serializable {
    public FileEntry {
      Objects.requireNonNull(file, "file");
    }
  }

  /** An optimizer state column: a FixedSizeList&lt;float32&gt;[width] per row. */
  public record StateColumn(String name, int width) {
    public StateColumn {
      Objects.requireNonNull(name, "name");
    }
  }

  /** The optimizer whose state the shards carry. */
  public record Optimizer(
      String name, Map<String, Double> params, List<StateColumn> stateColumns, long step) {
    public Optimizer {
      Objects.requireNonNull(name, "name");
      params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
      stateColumns = List.copyOf(stateColumns);
    }

    public int stateWidth() {
      int w = 0;
      for (StateColumn c : stateColumns) {
        w += c.width();
      }
      return w;
    }

    /** Writes {@code name}, {@code params}, {@code stateColumns} and {@code step} into {@code n}. */
    public void writeTo(ObjectNode n) {
      n.put("name", name);
      ObjectNode p = n.putObject("params");
      params.forEach(p::put);
      ArrayNode cols = n.putArray("stateColumns");
      for (StateColumn c : stateColumns) {
        cols.addObject().put("name", c.name()).put("width", c.width());
      }
      n.put("step", step);
    }

    /** Reads what {@link #writeTo} wrote; throws IllegalArgumentException naming a missing or bad member. */
    public static Optimizer fromJson(JsonNode n) {
      Map<String, Double> params = new LinkedHashMap<>();
      JsonNode p = n.get("params");
      if (p != null) {
        for (Iterator<Map.Entry<String, JsonNode>> it = p.fields(); it.hasNext(); ) {
          Map.Entry<String, JsonNode> e = it.next();
          if (!e.getValue().isNumber()) {
            throw new IllegalArgumentException("optimizer parameter '" + e.getKey() + "' is not a number");
          }
          params.put(e.getKey(), e.getValue().asDouble());
        }
      }
      List<StateColumn> cols = new ArrayList<>();
      JsonNode c = n.get("stateColumns");
      if (c != null) {
        for (JsonNode col : c) {
          cols.add(new StateColumn(text(col, "name"), (int) number(col, "width")));
        }
      }
      return new Optimizer(text(n, "name"), params, cols, number(n, "step"));
    }
  }

  /**
   * This manifest with partitioning {@code p} (same V): its shard entries are placeholders that
   * name no file, to be set by the writer of a version in that partitioning. The shape in which
   * shard servers host a table re-partitioned as they load it.
   */
  public TableManifest withPartitioning(Partitioner p) {
    if (p.numRows() != rows()) {
      throw new IllegalArgumentException(
          "Cannot re-partition a table of " + rows() + " rows as " + p.describeShard(0) + " of " + p.numRows() + " rows");
    }
    List<ShardEntry> entries = new ArrayList<>();
    for (int s = 0; s < p.numShards(); s++) {
      entries.add(new ShardEntry(s, "placeholder", p.shardRows(s), p.minId(s), p.maxId(s), 0, 0));
    }
    return toBuilder().partitioner(p.name()).shards(entries).build();
  }

  /** Builds a manifest; {@link #build()} validates. */
  public static final class Builder {
    private int formatVersion = TableFormat.VERSION_CURRENT;
    private long tableVersion = 1;
    private long rows;
    private int dim;
    private String valueType = TableFormat.VALUE_TYPE_FLOAT32;
    private String partitioner = Partitioner.MODULO;
    private List<ShardEntry> shards = new ArrayList<>();
    private List<FileEntry> vocabulary = new ArrayList<>();
    private Optimizer optimizer;
    private Map<String, String> created = new LinkedHashMap<>();
    private Map<String, String> properties = new LinkedHashMap<>();

    private Builder() {}

    public Builder tableVersion(long v) {
      this.tableVersion = v;
      return this;
    }

    public Builder rows(long v) {
      this.rows = v;
      return this;
    }

    public Builder dim(int v) {
      this.dim = v;
      return this;
    }

    public Builder valueType(String v) {
      this.valueType = v;
      return this;
    }

    public Builder valueType(ValueType v) {
      this.valueType = v.label();
      return this;
    }

    public Builder partitioner(String v) {
      this.partitioner = v;
      return this;
    }

    public Builder shards(List<ShardEntry> v) {
      this.shards = new ArrayList<>(v);
      return this;
    }

    public Builder addShard(ShardEntry v) {
      this.shards.add(v);
      return this;
    }

    public Builder setShard(ShardEntry v) {
      this.shards.set(v.index(), v);
      return this;
    }

    /** A vocabulary of one file ({@code null}: none). */
    public Builder vocabulary(FileEntry v) {
      this.vocabulary = v == null ? new ArrayList<>() : new ArrayList<>(List.of(v));
      return this;
    }

    /** The vocabulary's files in id order (empty: none). */
    public Builder vocabularyFiles(List<FileEntry> v) {
      this.vocabulary = new ArrayList<>(v);
      return this;
    }

    public Builder optimizer(Optimizer v) {
      this.optimizer = v;
      return this;
    }

    public Builder created(Map<String, String> v) {
      this.created = new LinkedHashMap<>(v);
      return this;
    }

    /** Sets created.by, created.at (now) and created.embstoreVersion. */
    public Builder createdBy(String by) {
      this.created = new LinkedHashMap<>();
      created.put("by", by);
      created.put("at", java.time.Instant.now().toString());
      created.put("embstoreVersion", TableFormat.class.getPackage().getImplementationVersion() == null
          ? "dev" : TableFormat.class.getPackage().getImplementationVersion());
      return this;
    }

    public Builder properties(Map<String, String> v) {
      this.properties = new LinkedHashMap<>(v);
      return this;
    }

    public Builder property(String key, String value) {
      this.properties.put(key, value);
      return this;
    }

    long rowsValue() {
      return rows;
    }

    String partitionerName() {
      return partitioner;
    }

    Optimizer optimizerValue() {
      return optimizer;
    }

    public TableManifest build() {
      TableManifest m = new TableManifest(this);
      m.validate();
      return m;
    }
  }

  static String lower(String s) {
    return s.toLowerCase(Locale.ROOT);
  }
}
