package io.embstore.shard;

/**
 * Fills the initial row of an id for shards created in memory. Must be deterministic per id (a
 * function of the id alone) so that the table does not depend on how many shards or servers host
 * it.
 */
@FunctionalInterface
public interface RowInitializer {
  /** Writes the C initial values of {@code id} into {@code row}. */
  void fill(long id, float[] row);
}
