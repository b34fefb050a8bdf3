package io.embstore.format;

import java.util.List;

/**
 * Turns text into the token ids of a table. A table records the tokenizer its ids come from in
 * the manifest property {@value #PROPERTY} (written by {@code import --tokenizer}), so that a
 * lookup by text needs no flag: {@link #forTable} gives the recorded tokenizer, or for a table
 * without one the {@linkplain #words whitespace tokenizer} over its vocabulary (the tokens {@code
 * embstore train} counts).
 *
 * <p>Implementations are immutable and thread-safe. {@link #encode} is the one call a corpus
 * reader needs: text in, ids out.
 */
public interface Tokenizer {
  /** The manifest property that names a table's tokenizer. */
  String PROPERTY = "tokenizer";

  /** GPT-2's byte-pair encoding ({@code r50k_base}, 50,257 tokens). */
  String GPT2 = "gpt2";

  /** The name recorded in the manifest ({@code gpt2}). */
  String name();

  /** The number of ids the tokenizer produces: a table of its ids has exactly these rows. */
  long vocabularySize();

  /** The token string of every id (id i is line i), or null when the ids are those of a table's own vocabulary. */
  Vocabulary vocabulary();

  /**
   * The ids of {@code text}, in text order; {@link #UNKNOWN} for a piece that has no id (the
   * whitespace tokenizer's words outside the vocabulary; a byte-pair encoding has none).
   */
  long[] encode(String text);

  /** An id that {@link #encode} gives to a piece of text without one. */
  long UNKNOWN = -1;

  /** {@link #encode}, refusing text that has a piece without an id or no piece at all. */
  default long[] encodeKnown(String text) {
    long[] ids = encode(text);
    if (ids.length == 0) {
      throw new IllegalArgumentException("Cannot tokenize '" + text + "': no tokens");
    }
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] == UNKNOWN) {
        throw new IllegalArgumentException("Cannot tokenize '" + text + "': piece " + i + " has no id (" + name() + ")");
      }
    }
    return ids;
  }

  /** The text piece of id {@code id} as the table names it (its vocabulary token). */
  String token(long id);

  /** The tokenizer called {@code name}; throws naming the known ones. */
  static Tokenizer of(String name) {
    if (GPT2.equals(name)) {
      return Gpt2Tokenizer.instance();
    }
    throw new IllegalArgumentException("Cannot use tokenizer '" + name + "' (known: " + String.join(", ", names()) + ")");
  }

  /** The names {@link #of(String)} knows. */
  static List<String> names() {
    return List.of(GPT2);
  }

  /**
   * The tokenizer a table records ({@value #PROPERTY}), else the whitespace tokenizer over its
   * vocabulary.
   *
   * @param vocabulary the table's vocabulary (may be null when the table records a tokenizer)
   * @throws IllegalArgumentException when the table records neither a tokenizer nor a vocabulary
   */
  static Tokenizer forTable(TableManifest manifest, Vocabulary vocabulary) {
    String name = manifest.properties().get(PROPERTY);
    if (name != null) {
      Tokenizer t = of(name);
      if (t.vocabularySize() != manifest.rows()) {
        throw new IllegalArgumentException(
            "Cannot use tokenizer " + name + " for a table of " + manifest.rows() + " rows (" + name + " has " + t.vocabularySize() + " ids)");
      }
      return t;
    }
    if (vocabulary == null) {
      throw new IllegalArgumentException("Cannot tokenize text for this table: it records no tokenizer and has no vocabulary");
    }
    return words(vocabulary);
  }

  /** Splits text on whitespace; each word is looked up in {@code vocabulary} as it is. */
  static Tokenizer words(Vocabulary vocabulary) {
    return new WordTokenizer(vocabulary);
  }

  /** The words of {@code text} as the {@linkplain #words whitespace tokenizer} splits it (none for blank text). */
  static String[] splitWords(String text) {
    String s = text.strip();
    return s.isEmpty() ? new String[0] : s.split("\\s+");
  }
}
