package io.embstore.spark;

import io.embstore.format.TableManifest;
import java.io.IOException;
import java.io.Serializable;
import io.embstore.format.TableLocation;
import java.util.List;
import java.util.Map;

/**
 * Where the two matrices live while a job trains: started by the driver, opened by training tasks
 * through a serializable {@link Opener}, checkpointed by the driver between rounds.
 */
interface Hosting extends AutoCloseable {
  /** Opens the stores of both matrices inside a task (cached per JVM in the {@link ExecutorHost}). */
  interface Opener extends Serializable {
    /** The hosting's key: what the tasks' state is held under in their JVM's {@link ExecutorHost}. */
    String key();

    RowStore input() throws IOException;

    RowStore output() throws IOException;
  }

  Opener opener();

  /**
   * The shard servers that no longer answer (their executor was lost), each as {@code endpoint
   * (shards ...)}; empty when every one answers. The driver asks after a failed round to tell a
   * lost shard host, which it recovers from, from a failing task, which it reports.
   */
  default List<String> lost() {
    return List.of();
  }

  /**
   * Writes a vocabulary's files into a table directory as part of table version {@code version}
   * and returns their manifest entries in id order (the vocabulary built by a run: its executors
   * write the pieces, see {@link Corpus.Pieces}).
   */
  interface VocabularyWriter {
    List<TableManifest.FileEntry> write(TableLocation dir, long version) throws IOException;
  }

  /** The number of executors the shards are spread over (1 when they are not in executors). */
  default int hosts() {
    return 1;
  }

  /**
   * Writes both matrices as the next table version: the context matrix to {@code context} first,
   * then the input embeddings with the files of {@code vocabulary} (may be null: the output keeps
   * the vocabulary it has) and {@code properties} to {@code output}, whose manifest is the commit
   * point of the checkpoint.
   */
  TableManifest checkpoint(TableLocation output, TableLocation context, VocabularyWriter vocabulary, Map<String, String> properties)
      throws IOException;

  @Override
  void close() throws IOException;
}
