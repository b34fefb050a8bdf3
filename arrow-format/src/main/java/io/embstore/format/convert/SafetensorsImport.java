package io.embstore.format.convert;

import io.embstore.format.TableFormat;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.format.Vocabulary;
import io.embstore.format.ValueType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;

/**
 * Imports one 2-D tensor of a safetensors file ({@link Safetensors}), streaming: the header is
 * checked whole, the input skips to the tensor's data, and rows pass through the {@link RowSink}'s
 * staging buffer, F32 rows copied as they are and F16 / BF16 rows read into a second staging
 * buffer and widened exactly ({@link RowDecoder}), except into a table of the tensor's own 16-bit
 * type ({@code --dtype float16} for F16, {@code bfloat16} for BF16), which stores the source bytes
 * as they are (no float32 in between). The table records the tensor's name and dtype
 * ({@code import.tensor}, {@code import.dtype}).
 */
public final class SafetensorsImport {
  private SafetensorsImport() {}

  static TableManifest run(Importer.Options o, BufferAllocator allocator) throws IOException {
    String file = o.input().toString();
    try (ByteInput in = ByteInput.open(o.input())) {
      Safetensors st = Safetensors.read(in, file, in.compressed() ? -1 : Files.size(o.input()), "import");
      Safetensors.Tensor t = choose(st, o.tensor(), file);
      RowDecoder decoder = t.dtype().decoder();
      long rows = t.shape()[0];
      int dim = (int) t.shape()[1];
      Vocabulary vocab = Importer.tokens(o, rows);
      if (in.skip(t.begin()) < t.begin()) {
        throw truncated(file, t, 0);
      }
      try (TableWriter w = Importer.create(o, rows, dim, allocator)) {
        w.vocabulary(vocab);
        w.property("import.tensor", t.name());
        w.property("import.dtype", t.dtype().name());
        // A 16-bit tensor into a table of its own type: the source bytes are the stored rows.
        boolean asIs = (decoder == RowDecoder.F16 && o.valueType() == ValueType.FLOAT16)
            || (decoder == RowDecoder.BF16 && o.valueType() == ValueType.BFLOAT16);
        RowSink sink = new RowSink(w, file, o.allowNonFinite(), vocab == null ? null : vocab::token, o.progress(), asIs);
        long sourceRowBytes = (long) dim * decoder.sourceBytes();
        ByteBuffer raw = decoder == RowDecoder.F32 || asIs
            ? null
            : ByteBuffer.allocateDirect((int) (sink.roomRows() * sourceRowBytes)).order(ByteOrder.LITTLE_ENDIAN);
        long left = rows;
        while (left > 0) {
          int k = (int) Math.min(sink.roomRows(), left);
          int len = (int) (k * sourceRowBytes);
          ByteBuffer into = raw == null ? sink.buffer() : raw.clear();
          int got = in.readInto(into, len);
          if (got < len) {
            throw truncated(file, t, (rows - left) * sourceRowBytes + got);
          }
          if (raw != null) {
            raw.flip();
            decoder.decode(raw, sink.buffer(), k * dim);
          }
          sink.added(k);
          left -= k;
        }
        sink.flush();
        return w.commit();
      }
    }
  }

  /** The tensor to import: {@code name}, or the file's only tensor; checked for rank, shape and dtype. */
  private static Safetensors.Tensor choose(Safetensors st, String name, String file) throws InputFormatException {
    String at = "Cannot import " + file + ": ";
    Safetensors.Tensor t;
    if (name == null) {
      if (st.tensors.size() != 1) {
        throw new InputFormatException(
            at + "--tensor is required (the file has " + st.tensors.size() + " tensors" + (st.tensors.isEmpty() ? "" : ": " + st.names(10)) + "; see --list)");
      }
      t = st.tensors.get(0);
    } else {
      t = st.tensor(name);
      if (t == null) {
        throw new InputFormatException(
            at + "no tensor '" + name + "' (" + (st.tensors.isEmpty() ? "the file has none" : "tensors: " + st.names(10)) + "; see --list)");
      }
    }
    String what = at + "tensor '" + t.name() + "' ";
    long[] shape = t.shape();
    if (shape.length != 2) {
      throw new InputFormatException(what + "has shape " + Safetensors.shapeText(shape) + " (rank " + shape.length + "; expected a 2-D matrix [V, C])");
    }
    if (shape[0] < 1) {
      throw new InputFormatException(what + "has shape " + Safetensors.shapeText(shape) + " with " + shape[0] + " rows (at least 1)");
    }
    if (!Safetensors.dimFits(shape[1])) {
      throw new InputFormatException(
          what + "has shape " + Safetensors.shapeText(shape) + " with dimension " + shape[1] + " (must be in [1, " + TableFormat.MAX_DIM + "])");
    }
    if (t.dtype().decoder() == null) {
      throw new InputFormatException(what + "has dtype " + t.dtype() + " (embstore imports F32, and F16 and BF16 widened exactly to float32)");
    }
    return t;
  }

  private static InputFormatException truncated(String file, Safetensors.Tensor t, long have) {
    return new InputFormatException(
        "Cannot import " + file + ": truncated: tensor '" + t.name() + "' needs " + t.bytes() + " bytes from data offset " + t.begin() + ", the file has " + have);
  }

  /**
   * The tensors of a safetensors file, one line each in name order: name, dtype, shape and bytes,
   * separated by tabs; then {@code __metadata__} and its JSON when the file has metadata.
   */
  public static List<String> list(Path input) throws IOException {
    String file = input.toString();
    ByteInput.isGzip(input); // fails with a clear message when the input is missing
    try (ByteInput in = ByteInput.open(input)) {
      Safetensors st = Safetensors.read(in, file, in.compressed() ? -1 : Files.size(input), "list");
      List<String> lines = new ArrayList<>();
      for (Safetensors.Tensor t : st.tensors) {
        lines.add(t.name() + "\t" + t.dtype() + "\t" + Safetensors.shapeText(t.shape()) + "\t" + t.bytes());
      }
      if (!st.metadata.isEmpty()) {
        StringBuilder sb = new StringBuilder(Safetensors.METADATA).append('\t');
        st.metadata.forEach((k, v) -> sb.append(k).append('=').append(v).append(' '));
        lines.add(sb.toString().strip());
      }
      return lines;
    }
  }
}
