package io.embstore.spark;

import java.io.IOException;

/**
 * Where the rows of one matrix live during training: the trainer pulls the rows a mini-batch needs
 * and pushes one aggregated sparse update per touched row. The Spark job uses shard servers through
 * the routing client ({@link RemoteRowStore}); tests and single-JVM runs use {@link InMemoryRowStore}.
 * Ids in a call are distinct (the trainer deduplicates).
 */
interface RowStore extends AutoCloseable {
  /** C. */
  int dim();

  /** Row i of {@code out} (at {@code i*C}) receives the row of {@code ids[i]}, for i &lt; {@code n}. */
  void pull(long[] ids, int n, float[] out) throws IOException;

  /**
   * Applies the gradient rows {@code grads[i*C..]} of {@code ids[i]} (i &lt; {@code n}) with the
   * store's optimizer and learning rate {@code lr} (SGD: {@code w -= lr * g}).
   */
  void push(long[] ids, int n, float[] grads, float lr) throws IOException;

  @Override
  default void close() throws IOException {}
}
