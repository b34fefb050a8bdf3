package io.embstore.shard;

import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.complex.FixedSizeListVector;

/** Sizing of the request and reply vectors of the protocol, shared by client and server. */
final class Vectors {
  private Vectors() {}

  /** Allocates {@code list} anew for {@code n} non-null rows and returns its float data buffer. */
  static ArrowBuf allocateRows(FixedSizeListVector list, int n) {
    list.clear();
    list.setInitialCapacity(Math.max(n, 1));
    list.allocateNew();
    Float4Vector data = (Float4Vector) list.getDataVector();
    list.getValidityBuffer().setOne(0, list.getValidityBuffer().capacity());
    data.getValidityBuffer().setOne(0, data.getValidityBuffer().capacity());
    list.setValueCount(n);
    return data.getDataBuffer();
  }

  /** Makes {@code v} hold at least {@code n} non-null values (reusing its buffers when large enough); returns its data buffer. */
  static ArrowBuf reserve(BigIntVector v, int n) {
    if (v.getValueCapacity() < n) {
      v.allocateNew(Math.max(n, Math.max(16, 2 * v.getValueCapacity())));
      v.getValidityBuffer().setOne(0, v.getValidityBuffer().capacity());
    }
    return v.getDataBuffer();
  }

  /** Makes {@code list} hold at least {@code n} non-null rows (reusing its buffers when large enough); returns its float data buffer. */
  static ArrowBuf reserve(FixedSizeListVector list, int n) {
    if (list.getValueCapacity() < n) {
      allocateRows(list, Math.max(n, Math.max(16, 2 * list.getValueCapacity())));
    }
    list.setValueCount(n);
    return ((Float4Vector) list.getDataVector()).getDataBuffer();
  }
}
