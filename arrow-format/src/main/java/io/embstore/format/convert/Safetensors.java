package io.embstore.format.convert;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.embstore.format.TableFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.CoderResult;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors format (Hugging Face's checkpoint files): an unsigned 64-bit little-endian
 * header length N, N bytes of UTF-8 JSON, then the data. The JSON object maps each tensor name to
 * {@code {"dtype": "F32", "shape": [V, C], "data_offsets": [begin, end]}} (byte offsets into the
 * data, end exclusive; values little-endian, row-major), and may hold {@code "__metadata__"}, an
 * object of strings. Writers pad the JSON with spaces so that the data starts at a multiple of 8.
 *
 * <p>{@link #read} checks the whole header before any tensor is read, as the reference
 * implementation does: N at most {@value #MAX_HEADER_BYTES} and inside the file, valid UTF-8 that
 * starts with {@code '{'}, no name twice, known dtypes, shapes and offsets of non-negative
 * integers, each tensor's byte length equal to its element count times its dtype's size, and the
 * tensors tiling the data exactly: none overlaps another, no byte between two belongs to none, and
 * the last ends where the file ends (for a gzip-compressed file, whose length is unknown until it
 * is read, truncation is found while streaming).
 */
final class Safetensors {
  /** The reference implementation's limit on the header (100 MB). */
  static final long MAX_HEADER_BYTES = 100_000_000L;
  static final String METADATA = "__metadata__";
  private static final JsonMapper JSON =
      JsonMapper.builder()
          .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
          .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
          .build();

  /** The dtypes of the format, with their size in bits. */
  enum Dtype {
    BOOL(8), U8(8), I8(8), F8_E5M2(8), F8_E4M3(8), F8_E8M0(8), F4(4), F6_E2M3(6), F6_E3M2(6),
    I16(16), U16(16), F16(16), BF16(16), I32(32), U32(32), F32(32), F64(64), I64(64), U64(64), C64(64);

    final int bits;

    Dtype(int bits) {
      this.bits = bits;
    }

    static Dtype of(String name) {
      for (Dtype d : values()) {
        if (d.name().equals(name)) {
          return d;
        }
      }
      return null;
    }

    /** The decoder into float32 rows, or null for a dtype embstore does not import. */
    RowDecoder decoder() {
      switch (this) {
        case F32:
          return RowDecoder.F32;
        case F16:
          return RowDecoder.F16;
        case BF16:
          return RowDecoder.BF16;
        default:
          return null;
      }
    }
  }

  /** One tensor of the header; {@code begin} and {@code end} are offsets into the data. */
  record Tensor(String name, Dtype dtype, long[] shape, long begin, long end) {
    long bytes() {
      return end - begin;
    }
  }

  /** The tensors, by name. */
  final List<Tensor> tensors;
  final Map<String, String> metadata;
  /** Bytes before the data: the length field and the JSON. */
  final long headerBytes;
  /** Bytes of data the header describes (where the last tensor ends). */
  final long dataBytes;

  private Safetensors(List<Tensor> tensors, Map<String, String> metadata, long headerBytes, long dataBytes) {
    this.tensors = tensors;
    this.metadata = metadata;
    this.headerBytes = headerBytes;
    this.dataBytes = dataBytes;
  }

  /** The tensor called {@code name}, or null. */
  Tensor tensor(String name) {
    for (Tensor t : tensors) {
      if (t.name().equals(name)) {
        return t;
      }
    }
    return null;
  }

  /** The names, at most {@code max} of them, then {@code ...}. */
  String names(int max) {
    List<String> names = new ArrayList<>();
    for (Tensor t : tensors) {
      if (names.size() == max) {
        names.add("... (" + tensors.size() + " in all)");
        break;
      }
      names.add(t.name());
    }
    return String.join(", ", names);
  }

  /**
   * Reads and checks the header from {@code in}, which is left at the first data byte.
   *
   * @param file names the input in error messages
   * @param fileSize the file's length, or -1 when unknown (compressed input)
   * @param verb what the caller does with the file, for messages ({@code "import"}, {@code "list"})
   */
  static Safetensors read(ByteInput in, String file, long fileSize, String verb) throws IOException {
    String at = "Cannot " + verb + " " + file + ": ";
    byte[] lengthField = new byte[8];
    int got = in.readUpTo(lengthField, 0, 8);
    if (got < 8) {
      throw new InputFormatException(at + "not a safetensors file (" + got + " bytes, the header length alone takes 8)");
    }
    long n = ByteBuffer.wrap(lengthField).order(ByteOrder.LITTLE_ENDIAN).getLong();
    if (n < 2 || n > MAX_HEADER_BYTES) {
      throw new InputFormatException(
          at + "header length " + Long.toUnsignedString(n) + " bytes (must be in [2, " + MAX_HEADER_BYTES + "]; not a safetensors file?)");
    }
    if (fileSize >= 0 && 8 + n > fileSize) {
      throw new InputFormatException(
          at + "header length " + n + " bytes, but the file has only " + (fileSize - 8) + " bytes after the length field");
    }
    byte[] header = new byte[(int) n];
    int headerGot = in.readUpTo(header, 0, header.length);
    if (headerGot < header.length) {
      throw new InputFormatException(at + "truncated header (" + headerGot + " of " + n + " bytes)");
    }
    if (header[0] != '{') {
      throw new InputFormatException(at + "the header does not start with '{' (not a safetensors file?)");
    }
    ByteBuffer bytes = ByteBuffer.wrap(header);
    CharBuffer chars = CharBuffer.allocate(header.length);
    CoderResult decoded = StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT)
        .decode(bytes, chars, true);
    if (decoded.isError()) {
      throw new InputFormatException(at + "the header is not valid UTF-8 (at header byte " + bytes.position() + ")");
    }
    String text = chars.flip().toString();
    JsonNode root;
    try {
      root = JSON.readTree(text);
    } catch (JsonProcessingException e) {
      throw new InputFormatException(at + "the header is not valid JSON (" + e.getOriginalMessage() + ")", e);
    }
    if (!(root instanceof ObjectNode)) {
      throw new InputFormatException(at + "the header is not a JSON object");
    }
    Map<String, String> metadata = Collections.emptyMap();
    List<Tensor> tensors = new ArrayList<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (METADATA.equals(e.getKey())) {
        metadata = metadata(e.getValue(), at);
      } else {
        tensors.add(tensor(e.getKey(), e.getValue(), at));
      }
    }
    long end = checkLayout(tensors, at);
    if (fileSize >= 0) {
      long data = fileSize - 8 - n;
      if (end > data) {
        Tensor last = Collections.max(tensors, Comparator.comparingLong(Tensor::end));
        throw new InputFormatException(
            at + "tensor '" + last.name() + "' ends at data offset " + end + ", beyond the file's " + data + " data bytes (truncated file?)");
      }
      if (end < data) {
        throw new InputFormatException(
            at + (data - end) + " bytes after the last tensor's data (the header describes " + end + " of " + data + " data bytes)");
      }
    }
    tensors.sort(Comparator.comparing(Tensor::name));
    return new Safetensors(List.copyOf(tensors), metadata, 8 + n, end);
  }

  private static Map<String, String> metadata(JsonNode node, String at) throws InputFormatException {
    if (!node.isObject()) {
      throw new InputFormatException(at + "__metadata__ is not an object of strings");
    }
    Map<String, String> out = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (!e.getValue().isTextual()) {
        throw new InputFormatException(at + "__metadata__ value of '" + e.getKey() + "' is not a string");
      }
      out.put(e.getKey(), e.getValue().asText());
    }
    return Collections.unmodifiableMap(out);
  }

  private static Tensor tensor(String name, JsonNode node, String at) throws InputFormatException {
    String what = at + "tensor '" + name + "'";
    if (!node.isObject()) {
      throw new InputFormatException(what + " is not an object with dtype, shape and data_offsets");
    }
    JsonNode dtypeNode = node.get("dtype");
    if (dtypeNode == null || !dtypeNode.isTextual()) {
      throw new InputFormatException(what + " has no dtype string");
    }
    Dtype dtype = Dtype.of(dtypeNode.asText());
    if (dtype == null) {
      throw new InputFormatException(what + " has unknown dtype '" + dtypeNode.asText() + "' (known: " + knownDtypes() + ")");
    }
    long[] shape = integers(node.get("shape"), -1, what, "shape");
    long[] offsets = integers(node.get("data_offsets"), 2, what, "data_offsets");
    if (offsets[1] < offsets[0]) {
      throw new InputFormatException(what + " has data_offsets [" + offsets[0] + ", " + offsets[1] + "] (end before begin)");
    }
    long bits = dtype.bits;
    long elements = 1;
    try {
      for (long d : shape) {
        elements = Math.multiplyExact(elements, d);
      }
      bits = Math.multiplyExact(elements, bits);
    } catch (ArithmeticException e) {
      // The product overflowed 64 bits: the shape says it all.
      throw new InputFormatException(what + " has shape " + shapeText(shape) + " (too many elements)");
    }
    if (bits % 8 != 0) {
      throw new InputFormatException(what + ": " + elements + " elements of " + dtype + " do not fill whole bytes");
    }
    long bytes = bits / 8;
    if (bytes != offsets[1] - offsets[0]) {
      throw new InputFormatException(
          what + ": shape " + shapeText(shape) + " of " + dtype + " is " + bytes + " bytes, data_offsets [" + offsets[0] + ", " + offsets[1] + "] hold " + (offsets[1] - offsets[0]));
    }
    return new Tensor(name, dtype, shape, offsets[0], offsets[1]);
  }

  private static long[] integers(JsonNode node, int length, String what, String member) throws InputFormatException {
    if (node == null || !node.isArray() || (length >= 0 && node.size() != length)) {
      throw new InputFormatException(
          what + " has no " + member + " array" + (length >= 0 ? " of " + length + " integers" : " of integers") + (node == null ? "" : " (got " + abbreviate(node.toString()) + ")"));
    }
    long[] out = new long[node.size()];
    for (int i = 0; i < out.length; i++) {
      JsonNode v = node.get(i);
      if (!v.isIntegralNumber() || !v.canConvertToLong() || v.asLong() < 0) {
        throw new InputFormatException(
            what + " has " + member + " " + abbreviate(node.toString()) + " (" + abbreviate(v.toString()) + " is not a non-negative 64-bit integer)");
      }
      out[i] = v.asLong();
    }
    return out;
  }

  /** Checks that the tensors tile [0, end) of the data; returns end. */
  private static long checkLayout(List<Tensor> tensors, String at) throws InputFormatException {
    List<Tensor> byOffset = new ArrayList<>(tensors);
    byOffset.sort(Comparator.comparingLong(Tensor::begin).thenComparingLong(Tensor::end));
    long end = 0;
    Tensor previous = null;
    for (Tensor t : byOffset) {
      if (t.begin() < end) {
        throw new InputFormatException(
            at + "tensors '" + previous.name() + "' [" + previous.begin() + ", " + previous.end() + ") and '" + t.name() + "' [" + t.begin() + ", " + t.end() + ") overlap");
      }
      if (t.begin() > end) {
        throw new InputFormatException(
            at + "data bytes [" + end + ", " + t.begin() + ") belong to no tensor (before '" + t.name() + "'; the tensors must cover the data without gaps)");
      }
      end = t.end();
      previous = t;
    }
    return end;
  }

  private static String knownDtypes() {
    StringBuilder sb = new StringBuilder();
    for (Dtype d : Dtype.values()) {
      sb.append(sb.length() > 0 ? ", " : "").append(d.name());
    }
    return sb.toString();
  }

  static String shapeText(long[] shape) {
    StringBuilder sb = new StringBuilder("[");
    for (int i = 0; i < shape.length; i++) {
      sb.append(i > 0 ? ", " : "").append(shape[i]);
    }
    return sb.append(']').toString();
  }

  private static String abbreviate(String s) {
    return s.length() > 60 ? s.substring(0, 60) + "..." : s;
  }

  /**
   * The header of a file holding one F32 tensor {@code name} of shape [rows, dim] and {@code
   * __metadata__} {@code {"format": "pt"}} (what PyTorch-based loaders expect): the length field
   * and the JSON, padded with spaces so that the data starts at a multiple of 8.
   */
  static byte[] header(String name, long rows, int dim) {
    return header(name, Dtype.F32, rows, dim);
  }

  /** {@link #header(String, long, int)} of a tensor of {@code dtype} (F32, F16 or BF16). */
  static byte[] header(String name, Dtype dtype, long rows, int dim) {
    ObjectNode root = JSON.createObjectNode();
    root.putObject(METADATA).put("format", "pt");
    ObjectNode t = root.putObject(name);
    t.put("dtype", dtype.name());
    t.putArray("shape").add(rows).add(dim);
    t.putArray("data_offsets").add(0L).add(rows * dim * (dtype == Dtype.F32 ? 4L : 2L));
    byte[] json;
    try {
      json = JSON.writeValueAsBytes(root);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("Cannot write the safetensors header of tensor " + name, e);
    }
    int padded = (json.length + 7) / 8 * 8;
    ByteBuffer out = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
    out.putLong(padded).put(json);
    while (out.hasRemaining()) {
      out.put((byte) ' ');
    }
    return out.array();
  }

  /** Checks a tensor name for {@link #header}: non-empty, not {@code __metadata__}. */
  static void checkName(String name) {
    if (name == null || name.isEmpty() || METADATA.equals(name)) {
      throw new IllegalArgumentException(
          "Cannot export to safetensors: tensor name '" + name + "' (must be non-empty and not " + METADATA + ")");
    }
  }

  /** The dimension limit of a table, checked against a tensor's second axis. */
  static boolean dimFits(long dim) {
    return dim >= 1 && dim <= TableFormat.MAX_DIM;
  }
}
