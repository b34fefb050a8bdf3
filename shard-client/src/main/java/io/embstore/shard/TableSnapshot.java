package io.embstore.shard;

import io.embstore.format.TableFormat;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;

/**
 * A new version of a served table, written by its shard servers: every server writes the shards
 * the client routes to it (rows with their optimizer state, {@code snapshot} action) as files of the
 * next table version into the target directory, in parallel; then the manifest naming them is
 * committed atomically ({@link TableWriter#commit}), and the client routes by it from then on.
 * Lookups and updates go on meanwhile (each row of a file is the state after a whole number of
 * updates; see {@code docs/protocol.md}). The directory must be reachable by every server under the
 * same path or URI (one machine, a shared file system, or cluster storage: HDFS, S3).
 */
public final class TableSnapshot {
  private TableSnapshot() {}

  /**
   * Writes the table that {@code client} routes to into {@code dir} as version {@code v}: one more
   * than the client's manifest version and than the version of a table already in {@code dir}.
   * Returns the committed manifest. On failure the files written for {@code v} are deleted.
   */
  public static TableManifest write(EmbeddingClient client, Path dir) throws IOException {
    return write(client, TableLocation.of(dir.toAbsolutePath()));
  }

  /**
   * {@link #write(EmbeddingClient, Path)} into a table directory on any storage: every server writes
   * its shard files there itself (reaching {@code hdfs:} or {@code s3a:} with its own Hadoop
   * configuration), the client writes only the manifest.
   */
  public static TableManifest write(EmbeddingClient client, TableLocation target) throws IOException {
    synchronized (client) {
      client.ensureOpen("snapshot to " + target);
      target.createDirectories();
      TableManifest base = client.manifest();
      long version = base.tableVersion() + 1;
      if (target.hasManifest()) {
        version = Math.max(version, TableManifest.read(target).tableVersion() + 1);
      }
      long v = version;
      List<EmbeddingClient.Routed> routes = client.routes();
      TableManifest.ShardEntry[] entries = new TableManifest.ShardEntry[base.numShards()];
      TableManifest.Optimizer[] optimizer = new TableManifest.Optimizer[1];
      // one part per server, named after its first shard
      EmbeddingClient.Routed[] serverOf = new EmbeddingClient.Routed[base.numShards()];
      ShardTransport[] transportOf = new ShardTransport[base.numShards()];
      int[] firsts = new int[routes.size()];
      for (int i = 0; i < firsts.length; i++) {
        EmbeddingClient.Routed r = routes.get(i);
        firsts[i] = r.shards()[0];
        serverOf[firsts[i]] = r;
        transportOf[firsts[i]] = r.transport();
      }
      Arrays.sort(firsts);
      try {
        FanOut.await(firsts, transportOf, (first, attempt) -> {
          EmbeddingClient.Routed r = serverOf[first];
          try {
            return ShardTransport.Pending.of(CompletableFuture.runAsync(() -> {
              Messages.SnapshotReply reply;
              try {
                reply = r.transport().snapshot(new Messages.SnapshotRequest(target.uri(), v, r.shards()));
              } catch (IOException e) {
                throw new UncheckedIOException(e);
              }
              synchronized (entries) {
                for (TableManifest.ShardEntry e : reply.shards()) {
                  entries[e.index()] = e;
                }
                if (optimizer[0] == null || reply.optimizer().step() > optimizer[0].step()) {
                  optimizer[0] = reply.optimizer();
                }
              }
            }, client.executor()));
          } catch (RejectedExecutionException e) {
            return ShardTransport.Pending.of(e);
          }
        }, false, Long.MAX_VALUE, s -> "snapshot");
        TableManifest committed = base.toBuilder().tableVersion(v).shards(Arrays.asList(entries)).createdBy("embstore snapshot")
            .optimizer(optimizer[0]).vocabularyFiles(copyVocabulary(base, client.tableDir(), target)).build();
        TableWriter.commit(target, committed);
        client.committed(committed);
        return committed;
      } catch (IOException | RuntimeException ex) {
        for (int s = 0; s < entries.length; s++) {
          target.deleteIfExists(TableFormat.shardFileName(s, v));
        }
        throw ex;
      }
    }
  }

  /** The vocabulary files of {@code base} in {@code target}, copied there from {@code tableDir} where missing. */
  private static List<TableManifest.FileEntry> copyVocabulary(TableManifest base, TableLocation tableDir, TableLocation target)
      throws IOException {
    List<TableManifest.FileEntry> vocab = base.vocabularyFiles();
    for (TableManifest.FileEntry f : vocab) {
      if (target.exists(f.file())) {
        continue;
      }
      if (tableDir == null) {
        return List.of(); // the client knows no file to copy: the snapshot has no vocabulary
      }
      target.copyFrom(tableDir, f.file(), f.file());
    }
    return vocab;
  }
}
