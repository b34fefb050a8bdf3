package io.embstore.format;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;
import java.util.ArrayList;
import java.util.List;

/**
 * GPT-2's byte-level byte-pair encoding: JTokkit's {@code r50k_base}, whose 50,256 merge ranks and
 * the special token {@code <|endoftext|>} (id 50,256) are GPT-2's 50,257 ids.
 *
 * <p>The vocabulary holds GPT-2's own token strings, as in its {@code encoder.json}: each token's
 * bytes mapped one to one onto printable characters ({@link #byteToChar}: printable Latin-1 bytes
 * stand for themselves, the 68 others for U+0100 onwards, so a leading space is {@code Ġ} and
 * {@code " world"} is {@code Ġworld}). Distinct byte sequences give distinct strings, so the tokens
 * are unique and non-empty as a table's vocabulary requires.
 *
 * <p>Text is encoded as ordinary text ({@code encodeOrdinary}): the characters {@code
 * <|endoftext|>} in the input are text, not the special token, as in tiktoken's {@code
 * encode_ordinary}.
 */
final class Gpt2Tokenizer implements Tokenizer {
  static final int SIZE = 50_257;
  static final int END_OF_TEXT = 50_256;
  static final String END_OF_TEXT_TOKEN = "<|endoftext|>";
  private static volatile Gpt2Tokenizer instance;

  private final Encoding encoding;
  private volatile Vocabulary vocabulary;

  private Gpt2Tokenizer(Encoding encoding) {
    this.encoding = encoding;
  }

  /** The one instance of the JVM (loading the merge ranks takes a few hundred milliseconds). */
  static Gpt2Tokenizer instance() {
    Gpt2Tokenizer t = instance;
    if (t == null) {
      synchronized (Gpt2Tokenizer.class) {
        t = instance;
        if (t == null) {
          t = new Gpt2Tokenizer(Encodings.newLazyEncodingRegistry().getEncoding(EncodingType.R50K_BASE));
          instance = t;
        }
      }
    }
    return t;
  }

  @Override
  public String name() {
    return GPT2;
  }

  @Override
  public long vocabularySize() {
    return SIZE;
  }

  @Override
  public Vocabulary vocabulary() {
    Vocabulary v = vocabulary;
    if (v == null) {
      synchronized (this) {
        v = vocabulary;
        if (v == null) {
          v = buildVocabulary();
          vocabulary = v;
        }
      }
    }
    return v;
  }

  private Vocabulary buildVocabulary() {
    List<String> tokens = new ArrayList<>(SIZE);
    IntArrayList one = new IntArrayList(1);
    StringBuilder sb = new StringBuilder();
    for (int id = 0; id < END_OF_TEXT; id++) {
      one.clear();
      one.add(id);
      sb.setLength(0);
      for (byte b : encoding.decodeBytes(one)) {
        sb.append(byteToChar(b & 0xff));
      }
      tokens.add(sb.toString());
    }
    tokens.add(END_OF_TEXT_TOKEN);
    return Vocabulary.of(tokens, null);
  }

  /**
   * GPT-2's {@code bytes_to_unicode}: bytes {@code !..~}, {@code ¡..¬} and {@code ®..ÿ} stand for
   * themselves; the other 68 bytes, in ascending order, for U+0100, U+0101, ...
   */
  private static final char[] BYTE_TO_CHAR = new char[256];

  static {
    int n = 0;
    for (int b = 0; b < 256; b++) {
      boolean printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      BYTE_TO_CHAR[b] = printable ? (char) b : (char) (256 + n++);
    }
  }

  static char byteToChar(int b) {
    return BYTE_TO_CHAR[b];
  }

  @Override
  public long[] encode(String text) {
    IntArrayList ids = encoding.encodeOrdinary(text);
    long[] out = new long[ids.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = ids.get(i);
    }
    return out;
  }

  @Override
  public String token(long id) {
    return vocabulary().token(id);
  }
}
