package io.embstore.spark.ml;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.Tokenizer;
import io.embstore.format.Vocabulary;
import io.embstore.shard.EmbeddingClient;
import io.embstore.spark.TableHosting;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where a task finds a table's rows, tokens and tokenizer: the hosting of the table in the
 * executors ({@link TableHosting}), or shard servers already running (endpoints, bearer token, TLS
 * as for {@code embstore lookup}). Serializable: the driver builds it, tasks use it. The manifest
 * travels with it; the vocabulary is read from the table directory once per JVM, when a task
 * needs tokens.
 */
final class RowSource implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(RowSource.class);
  /** Routing clients to running shard servers and vocabularies, per JVM; the least recently used goes beyond these many. */
  private static final int CACHED = 8;
  private static final Map<String, EmbeddingClient> CLIENTS = lru(true);
  private static final Map<String, Vocabulary> VOCABULARIES = lru(false);

  final String table;
  final byte[] manifestJson;
  /** The hosting's key, or null for running servers. */
  final String hostingKey;
  final List<String> endpoints;
  private final String authToken;
  private final byte[] tlsCa;
  private final byte[] tlsCert;
  private final byte[] tlsKey;
  private transient TableManifest manifest;

  private RowSource(String table, TableManifest manifest, String hostingKey, List<String> endpoints, String authToken,
      byte[] tlsCa, byte[] tlsCert, byte[] tlsKey) {
    this.table = table;
    this.manifest = manifest;
    this.manifestJson = manifest.toJson();
    this.hostingKey = hostingKey;
    this.endpoints = List.copyOf(endpoints);
    this.authToken = authToken;
    this.tlsCa = tlsCa;
    this.tlsCert = tlsCert;
    this.tlsKey = tlsKey;
  }

  static RowSource hosted(TableHosting h) {
    return new RowSource(h.table().toString(), h.manifest(), h.key(), h.endpoints(), null, null, null, null);
  }

  static RowSource servers(String table, TableManifest manifest, List<String> endpoints, String authToken,
      byte[] tlsCa, byte[] tlsCert, byte[] tlsKey) {
    return new RowSource(table, manifest, null, endpoints, authToken, tlsCa, tlsCert, tlsKey);
  }

  TableManifest manifest() {
    if (manifest == null) {
      try {
        manifest = TableManifest.parse(manifestJson, "the manifest of " + table);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return manifest;
  }

  /** This JVM's routing client for the rows. */
  EmbeddingClient client() throws IOException {
    if (hostingKey != null) {
      try {
        return TableHosting.client(hostingKey, manifestJson, endpoints);
      } catch (IOException e) {
        throw new IOException("Cannot reach the shards of " + table + " hosted for this DataFrame at " + endpoints
            + " (released by release() or the end of the application? transform again)", e);
      }
    }
    String key = String.join(",", endpoints) + "|" + manifest().tableVersion() + "|" + table + "|"
        + (authToken == null ? 0 : authToken.hashCode()) + "|" + Arrays.hashCode(tlsCa) + "|" + Arrays.hashCode(tlsCert);
    synchronized (CLIENTS) {
      EmbeddingClient c = CLIENTS.get(key);
      if (c == null) {
        EmbeddingClient.Builder b = EmbeddingClient.builder().manifest(manifest()).endpoints(endpoints).deadline(Duration.ofMinutes(2));
        if (authToken != null) {
          b.token(authToken);
        }
        if (tlsCa != null) {
          b.trustedCertificates(tlsCa);
        }
        if (tlsCert != null) {
          b.clientCertificate(tlsCert, tlsKey);
        }
        c = b.build();
        CLIENTS.put(key, c);
      }
      return c;
    }
  }

  /** The table's vocabulary (read once per JVM and table version), or null when it has none. */
  Vocabulary vocabulary() throws IOException {
    if (!manifest().hasVocabulary()) {
      return null;
    }
    String key = table + "|" + manifest().tableVersion();
    synchronized (VOCABULARIES) {
      Vocabulary v = VOCABULARIES.get(key);
      if (v == null) {
        try (BufferAllocator allocator = new RootAllocator()) {
          v = Table.open(Paths.get(table)).vocabulary(allocator);
        }
        VOCABULARIES.put(key, v);
      }
      return v;
    }
  }

  /** The tokenizer of text input: the one the table records, else whitespace-separated vocabulary tokens. */
  Tokenizer tokenizer() throws IOException {
    String recorded = manifest().properties().get(Tokenizer.PROPERTY);
    return Tokenizer.forTable(manifest(), recorded == null ? vocabulary() : null);
  }

  /** The table directory of a path or {@code file:} URI. */
  static Path dir(String table) {
    return Paths.get(table.replaceFirst("^file:", "")).toAbsolutePath();
  }

  private static <V> Map<String, V> lru(boolean close) {
    return new LinkedHashMap<>(16, 0.75f, true) {
      private static final long serialVersionUID = 1L;

      @Override
      protected boolean removeEldestEntry(Map.Entry<String, V> eldest) {
        if (size() <= CACHED) {
          return false;
        }
        if (close && eldest.getValue() instanceof AutoCloseable c) {
          try {
            c.close();
          } catch (Exception e) {
            LOG.warn("Cannot close the routing client {}: {}", eldest.getKey(), e.toString());
          }
        }
        return true;
      }
    };
  }
}
