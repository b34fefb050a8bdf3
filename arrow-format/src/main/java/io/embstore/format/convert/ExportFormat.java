package io.embstore.format.convert;

/** The file formats {@link Exporter} writes. */
public enum ExportFormat {
  /** NumPy {@code .npy} version 1.0 (2.0 only if the header needs it), {@code '<f4'}, C order. */
  NPY("npy"),
  /** word2vec text; values printed with {@link Float#toString(float)} so they parse back exactly. */
  WORD2VEC("word2vec"),
  /** word2vec binary: little-endian float32, a newline after each row (as the original tool). */
  WORD2VEC_BIN("word2vec-bin"),
  /** safetensors: one F32 tensor [V, C] (default name {@value Exporter#DEFAULT_TENSOR}), {@code __metadata__} {"format": "pt"}. */
  SAFETENSORS("safetensors");

  private final String cliName;

  ExportFormat(String cliName) {
    this.cliName = cliName;
  }

  public String cliName() {
    return cliName;
  }

  public static ExportFormat of(String name) {
    for (ExportFormat f : values()) {
      if (f.cliName.equals(name)) {
        return f;
      }
    }
    throw new IllegalArgumentException(
        "Cannot export to '" + name + "' (known formats: npy, word2vec, word2vec-bin, safetensors)");
  }

  @Override
  public String toString() {
    return cliName;
  }
}
