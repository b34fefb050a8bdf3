package io.embstore.format;

import java.util.List;
import java.util.Map;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;

/**
 * The element type of a table's {@code embedding} column: the manifest's {@code valueType} and the
 * Arrow type of the shard files' {@code embedding} list items. Optimizer state columns are always
 * float32.
 *
 * <ul>
 *   <li>{@link #FLOAT32} ({@code float32}, the default): Arrow {@code FloatingPoint(SINGLE)}.
 *   <li>{@link #FLOAT16} ({@code float16}, IEEE 754 binary16): Arrow {@code FloatingPoint(HALF)}
 *       (HalfFloat), which pyarrow and JS Arrow decode natively.
 *   <li>{@link #BFLOAT16} ({@code bfloat16}: the upper 16 bits of a float32): Arrow has no bfloat16
 *       type, so the items are {@code Int(16, unsigned)} holding the bits, and the {@code embedding}
 *       field carries the metadata {@value TableFormat#META_DTYPE} = {@code bfloat16}; a reader
 *       widens each value {@code b} to the float32 with bits {@code b << 16}.
 *   <li>{@link #INT8} ({@code int8}: FBGEMM's fused 8-bit row-wise quantization, for serving
 *       copies): a row is C unsigned 8-bit codes followed by a float32 scale and a float32 bias, C +
 *       8 bytes (see {@link Int8Rows}). The {@code embedding} column is {@code FixedSizeBinary(C +
 *       8)}, not a list, tagged with the field metadata {@value TableFormat#META_DTYPE} = {@code
 *       int8}; a reader decodes value c of a row as {@code code[c] * scale + bias} in float32.
 * </ul>
 *
 * Conversions between float32 and the 16-bit types are in {@link HalfFloats}, to and from int8 rows
 * in {@link Int8Rows}; {@link #encode} and {@link #decode} convert whole rows of any type.
 */
public enum ValueType {
  FLOAT32("float32", 4, new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)),
  FLOAT16("float16", 2, new ArrowType.FloatingPoint(FloatingPointPrecision.HALF)),
  BFLOAT16("bfloat16", 2, new ArrowType.Int(16, false)),
  /** Rows of C + 8 bytes; {@link #bytes()} is the code's size, {@link #rowBytes(int)} the row's. */
  INT8("int8", 1, null);

  private final String label;
  private final int bytes;
  private final ArrowType itemType;

  ValueType(String label, int bytes, ArrowType itemType) {
    this.label = label;
    this.bytes = bytes;
    this.itemType = itemType;
  }

  /**
   * The type named {@code label} as the manifest writes it.
   *
   * @throws IllegalArgumentException naming the value and the known types
   */
  public static ValueType of(String label) {
    for (ValueType t : values()) {
      if (t.label.equals(label)) {
        return t;
      }
    }
    throw new IllegalArgumentException(
        "valueType is '" + label + "' (this build knows " + known() + "; upgrade embstore to read it)");
  }

  /** The known labels, comma-separated, for messages. */
  public static String known() {
    StringBuilder s = new StringBuilder();
    for (ValueType t : values()) {
      s.append(s.length() == 0 ? "" : ", ").append(t.label);
    }
    return s.toString();
  }

  /** The name in the manifest, {@code --dtype} and messages. */
  public String label() {
    return label;
  }

  /** Bytes of one value (int8: of one code; a row of int8 codes also holds its scale and bias). */
  public int bytes() {
    return bytes;
  }

  /** Bytes of one stored row of {@code dim} values: C x {@link #bytes()}, or C + 8 for int8. */
  public long rowBytes(int dim) {
    return this == INT8 ? Int8Rows.rowBytes(dim) : (long) dim * bytes;
  }

  /** Whether values are stored in fewer bits than float32 (and decoded on read). */
  public boolean isCompact() {
    return this != FLOAT32;
  }

  /**
   * Whether a shard server can apply updates to rows of this type: every type but int8 (a quantized
   * serving copy is read-only; its rows would need requantizing on every update).
   */
  public boolean isTrainable() {
    return this != INT8;
  }

  /**
   * Decodes {@code rows} stored rows of {@code dim} values at {@code src} into float32 at {@code
   * dst} (raw addresses; the ranges must not overlap): exact for the 16-bit types, {@code code *
   * scale + bias} for int8.
   */
  public void decode(long src, long dst, long rows, int dim) {
    if (this == INT8) {
      Int8Rows.decode(src, dst, rows, dim);
    } else {
      HalfFloats.decode(this, src, dst, rows * dim);
    }
  }

  /**
   * Encodes {@code rows} rows of {@code dim} float32 at {@code src} into this type at {@code dst}:
   * round to nearest even for the 16-bit types, row-wise quantization for int8.
   *
   * @throws IllegalArgumentException for int8, at the first row that cannot be quantized ({@link
   *     Int8Rows#encode})
   */
  public void encode(long src, long dst, long rows, int dim) {
    if (this == INT8) {
      Int8Rows.encode(src, dst, rows, dim);
    } else {
      HalfFloats.encode(this, src, dst, rows * dim);
    }
  }

  /** The Arrow type of the {@code embedding} list's items (null for int8: its column is binary). */
  ArrowType itemType() {
    return itemType;
  }

  /**
   * The {@code embedding} column: FixedSizeList of this type's items, {@code dim} per row; for int8
   * FixedSizeBinary of C + 8 bytes, tagged.
   */
  Field embeddingField(int dim) {
    if (this == INT8) {
      return new Field(
          TableFormat.EMBEDDING_COLUMN,
          new FieldType(false, new ArrowType.FixedSizeBinary(Math.toIntExact(rowBytes(dim))), null, Map.of(TableFormat.META_DTYPE, label)),
          null);
    }
    Field item = new Field("item", FieldType.notNullable(itemType), null);
    Map<String, String> meta = this == BFLOAT16 ? Map.of(TableFormat.META_DTYPE, label) : null;
    return new Field(
        TableFormat.EMBEDDING_COLUMN,
        new FieldType(false, new ArrowType.FixedSizeList(dim), null, meta),
        List.of(item));
  }

  /** Whether {@code field} is this type's {@code embedding} column of width {@code dim}. */
  boolean matches(Field field, int dim) {
    if (this == INT8) {
      Map<String, String> meta = field.getMetadata();
      return TableFormat.EMBEDDING_COLUMN.equals(field.getName())
          && field.getType() instanceof ArrowType.FixedSizeBinary binary
          && binary.getByteWidth() == rowBytes(dim)
          && field.getChildren().isEmpty()
          && meta != null
          && label.equals(meta.get(TableFormat.META_DTYPE));
    }
    if (!TableFormat.EMBEDDING_COLUMN.equals(field.getName())
        || !(field.getType() instanceof ArrowType.FixedSizeList list)
        || list.getListSize() != dim
        || field.getChildren().size() != 1
        || !itemType.equals(field.getChildren().get(0).getType())) {
      return false;
    }
    // bfloat16 bits are only bfloat16 with the tag; plain uint16 is not this format.
    Map<String, String> meta = field.getMetadata();
    String dtype = meta == null ? null : meta.get(TableFormat.META_DTYPE);
    return this == BFLOAT16 ? label.equals(dtype) : dtype == null;
  }

  /** How the column is described in messages: {@code FixedSizeList<float16>[C]}. */
  String describe(int dim) {
    if (this == INT8) {
      return "FixedSizeBinary[" + rowBytes(dim) + "] tagged " + TableFormat.META_DTYPE + "=int8 (" + dim + " codes, scale, bias)";
    }
    return "FixedSizeList<" + label + ">[" + dim + "]";
  }

  @Override
  public String toString() {
    return label;
  }
}
