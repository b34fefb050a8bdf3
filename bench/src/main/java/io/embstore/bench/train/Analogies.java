package io.embstore.bench.train;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * 3CosAdd analogy accuracy as gensim's {@code evaluate_word_analogies(restrict_vocab=30000)}
 * computes it: only the {@code restrict} most frequent words are candidates and questions with a
 * word outside them are skipped; the answer is the nearest (cosine) unit-vector to {@code b - a +
 * c} among the restricted words other than a, b, c; accuracy is correct / answered over all
 * sections.
 */
final class Analogies {
  private Analogies() {}

  /**
   * @param words words in descending frequency order
   * @param vectors row i is the vector of words[i], C values each
   * @return {correct, answered}
   */
  static long[] evaluate(List<String> words, float[] vectors, int dim, Path questions, int restrict) throws IOException {
    int n = Math.min(restrict, words.size());
    float[] unit = new float[n * dim];
    Map<String, Integer> index = new HashMap<>();
    for (int i = 0; i < n; i++) {
      index.putIfAbsent(words.get(i).toLowerCase(Locale.ROOT), i);
      double norm = 0;
      for (int j = 0; j < dim; j++) {
        norm += (double) vectors[i * dim + j] * vectors[i * dim + j];
      }
      float inv = norm == 0 ? 0 : (float) (1 / Math.sqrt(norm));
      for (int j = 0; j < dim; j++) {
        unit[i * dim + j] = vectors[i * dim + j] * inv;
      }
    }
    long correct = 0;
    long answered = 0;
    float[] q = new float[dim];
    for (String line : Files.readAllLines(questions, StandardCharsets.UTF_8)) {
      if (line.startsWith(":") || line.isBlank()) {
        continue;
      }
      String[] w = line.trim().toLowerCase(Locale.ROOT).split("\\s+");
      if (w.length != 4) {
        continue;
      }
      Integer a = index.get(w[0]);
      Integer b = index.get(w[1]);
      Integer c = index.get(w[2]);
      Integer d = index.get(w[3]);
      if (a == null || b == null || c == null || d == null) {
        continue;
      }
      for (int j = 0; j < dim; j++) {
        q[j] = unit[b * dim + j] - unit[a * dim + j] + unit[c * dim + j];
      }
      int best = -1;
      float bestSim = Float.NEGATIVE_INFINITY;
      for (int i = 0; i < n; i++) {
        if (i == a || i == b || i == c) {
          continue;
        }
        float s = 0;
        int o = i * dim;
        for (int j = 0; j < dim; j++) {
          s += q[j] * unit[o + j];
        }
        if (s > bestSim) {
          bestSim = s;
          best = i;
        }
      }
      answered++;
      if (best == d) {
        correct++;
      }
    }
    return new long[] {correct, answered};
  }
}
