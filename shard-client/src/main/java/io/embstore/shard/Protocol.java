package io.embstore.shard;

import java.util.List;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The embstore shard protocol over Arrow Flight, version {@value #VERSION}; {@code
 * docs/protocol.md} is its description for clients in other languages.
 *
 * <p>Data calls are DoExchange streams whose descriptor is a command: UTF-8 JSON {@code {"op":
 * "lookup"|"update"|"nearest", "shard": S, ...}}. Every request record batch the client sends gets
 * exactly one reply batch, in order. Control calls are DoAction with a JSON body and one JSON
 * result. This class holds the names and the Arrow schemas; {@link Messages} every JSON message.
 */
final class Protocol {
  static final int VERSION = 1;

  static final String OP_LOOKUP = "lookup";
  static final String OP_UPDATE = "update";
  static final String OP_NEAREST = "nearest";

  static final String ACTION_HEALTH = "health";
  static final String ACTION_DESCRIBE = "describe";
  static final String ACTION_STATS = "stats";
  static final String ACTION_SNAPSHOT = "snapshot";

  static final String ID = "id";
  static final String EMBEDDING = "embedding";
  static final String GRAD = "grad";
  static final String QUERY = "query";
  static final String SIMILARITY = "similarity";
  static final String APPLIED = "applied";

  private Protocol() {}

  static Field int64(String name) {
    return new Field(name, FieldType.notNullable(new ArrowType.Int(64, true)), null);
  }

  static Field float32(String name) {
    return new Field(name, FieldType.notNullable(new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)), null);
  }

  static Field floatList(String name, int width) {
    return new Field(
        name, FieldType.notNullable(new ArrowType.FixedSizeList(width)), List.of(float32("item")));
  }

  static Schema lookupRequest() {
    return new Schema(List.of(int64(ID)));
  }

  static Schema lookupReply(int dim) {
    return new Schema(List.of(floatList(EMBEDDING, dim)));
  }

  static Schema updateRequest(int dim) {
    return new Schema(List.of(int64(ID), floatList(GRAD, dim)));
  }

  static Schema updateReply() {
    return new Schema(List.of(int64(APPLIED)));
  }

  static Schema nearestRequest(int dim) {
    return new Schema(List.of(floatList(QUERY, dim)));
  }

  static Schema nearestReply() {
    return new Schema(List.of(int64(ID), float32(SIMILARITY)));
  }

  /** Whether {@code actual} has the fields of {@code expected} (names, types, widths), ignoring metadata and nullability. */
  static boolean sameShape(Schema actual, Schema expected) {
    List<Field> a = actual.getFields();
    List<Field> e = expected.getFields();
    if (a.size() != e.size()) {
      return false;
    }
    for (int i = 0; i < a.size(); i++) {
      if (!sameField(a.get(i), e.get(i))) {
        return false;
      }
    }
    return true;
  }

  private static boolean sameField(Field a, Field e) {
    if (!a.getName().equals(e.getName()) || !a.getType().equals(e.getType())
        || a.getChildren().size() != e.getChildren().size()) {
      return false;
    }
    for (int i = 0; i < a.getChildren().size(); i++) {
      if (!a.getChildren().get(i).getType().equals(e.getChildren().get(i).getType())) {
        return false;
      }
    }
    return true;
  }
}
