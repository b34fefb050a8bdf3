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
 * </ul>
 *
 * Conversions between the types are in {@link HalfFloats}.
 */
public enum ValueType {
  FLOAT32("float32", 4, new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)),
  FLOAT16("float16", 2, new ArrowType.FloatingPoint(FloatingPointPrecision.HALF)),
  BFLOAT16("bfloat16", 2, new ArrowType.Int(16, false));

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

  /** Bytes of one value. */
  public int bytes() {
    return bytes;
  }

  /** Whether values are stored in fewer bits than float32 (and decoded on read). */
  public boolean isCompact() {
    return this != FLOAT32;
  }

  /** The Arrow type of the {@code embedding} list's items. */
  ArrowType itemType() {
    return itemType;
  }

  /** The {@code embedding} column: FixedSizeList of this type's items, {@code dim} per row. */
  Field embeddingField(int dim) {
    Field item = new Field("item", FieldType.notNullable(itemType), null);
    Map<String, String> meta = this == BFLOAT16 ? Map.of(TableFormat.META_DTYPE, label) : null;
    return new Field(
        TableFormat.EMBEDDING_COLUMN,
        new FieldType(false, new ArrowType.FixedSizeList(dim), null, meta),
        List.of(item));
  }

  /** Whether {@code field} is this type's {@code embedding} column of width {@code dim}. */
  boolean matches(Field field, int dim) {
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
    return "FixedSizeList<" + label + ">[" + dim + "]";
  }

  @Override
  public String toString() {
    return label;
  }
}
