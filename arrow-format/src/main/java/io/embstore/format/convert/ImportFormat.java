package io.embstore.format.convert;

/** The file formats {@link Importer} reads. */
public enum ImportFormat {
  /** NumPy {@code .npy}: a 2-D little-endian float32 C-order matrix; tokens from a separate file. */
  NPY("npy"),
  /** word2vec text: a header line {@code V C}, then {@code token v1 ... vC} per line. */
  WORD2VEC("word2vec"),
  /** word2vec binary: a header line {@code V C}, then {@code token<space>} and C float32 per row. */
  WORD2VEC_BIN("word2vec-bin"),
  /** GloVe text: word2vec text without the header line. */
  GLOVE("glove"),
  /**
   * safetensors: one 2-D tensor (chosen by name) of F32, or F16 / BF16 widened exactly to float32;
   * tokens from a separate file or a tokenizer.
   */
  SAFETENSORS("safetensors");

  private final String cliName;

  ImportFormat(String cliName) {
    this.cliName = cliName;
  }

  /** The name used on the command line. */
  public String cliName() {
    return cliName;
  }

  public static ImportFormat of(String name) {
    for (ImportFormat f : values()) {
      if (f.cliName.equals(name)) {
        return f;
      }
    }
    throw new IllegalArgumentException(
        "Cannot import from '" + name + "' (known formats: npy, word2vec, word2vec-bin, glove, safetensors)");
  }

  @Override
  public String toString() {
    return cliName;
  }
}
