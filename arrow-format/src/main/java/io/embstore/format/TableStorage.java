package io.embstore.format;

import java.net.URI;
import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * How tables are reached: turns a table's path or URI into a {@link TableLocation}. A plain path
 * or a {@code file:} URI is a local directory (java.nio, no Hadoop); any other scheme ({@code
 * hdfs:}, {@code s3a:}, ...) goes through Hadoop's {@code FileSystem} with this storage's Hadoop
 * configuration.
 *
 * <p>{@link #defaults()} loads that configuration the way Hadoop's own commands do: {@code
 * core-default.xml} and {@code core-site.xml} from the class path, then {@code core-site.xml} and
 * {@code hdfs-site.xml} of the directory named by the environment variable {@code
 * HADOOP_CONF_DIR}. A Spark job passes its session's {@code hadoopConfiguration()} (with every
 * {@code spark.hadoop.*} setting) through {@link #hadoop}. The configuration is loaded on the first
 * non-local location only, so local tables never load a Hadoop class.
 */
public final class TableStorage {
  private static final Pattern SCHEME = Pattern.compile("^([A-Za-z][A-Za-z0-9+.\\-]+):.*", Pattern.DOTALL);
  private static final TableStorage DEFAULTS = new TableStorage(null);

  /** An {@code org.apache.hadoop.conf.Configuration}, or null for the default one (made on first use). */
  private final Object hadoopConfiguration;

  private TableStorage(Object hadoopConfiguration) {
    this.hadoopConfiguration = hadoopConfiguration;
  }

  /** Hadoop configuration from the class path and {@code HADOOP_CONF_DIR}. */
  public static TableStorage defaults() {
    return DEFAULTS;
  }

  /** Hadoop configuration {@code conf} (e.g. a Spark session's {@code hadoopConfiguration()}). */
  public static TableStorage hadoop(org.apache.hadoop.conf.Configuration conf) {
    if (conf == null) {
      throw new IllegalArgumentException("Cannot use Hadoop storage: no configuration given");
    }
    return new TableStorage(conf);
  }

  /** The location of the table at {@code uri}: a plain path, {@code file:}, or any Hadoop scheme. */
  public TableLocation location(String uri) {
    if (uri == null || uri.isBlank()) {
      throw new IllegalArgumentException("Cannot open table: empty path");
    }
    String scheme = schemeOf(uri);
    if (scheme == null) {
      return new LocalLocation(Path.of(uri));
    }
    if (scheme.equals("file")) {
      return new LocalLocation(localPath(uri));
    }
    return HadoopLocation.of(uri, hadoopConfiguration);
  }

  /** The location of the local directory {@code dir}. */
  public TableLocation location(Path dir) {
    return new LocalLocation(dir);
  }

  /** The URI scheme of {@code uri} in lower case, or null for a plain path. */
  static String schemeOf(String uri) {
    var m = SCHEME.matcher(uri);
    return m.matches() ? m.group(1).toLowerCase(Locale.ROOT) : null;
  }

  /** Whether {@code uri} names a local directory (a plain path or a {@code file:} URI). */
  public static boolean isLocal(String uri) {
    String scheme = schemeOf(uri);
    return scheme == null || scheme.equals("file");
  }

  private static Path localPath(String uri) {
    String rest = uri.substring("file:".length());
    if (rest.startsWith("//")) {
      try {
        return Path.of(URI.create(uri));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("Cannot open table " + uri + ": not a local file URI (" + e.getMessage() + ")", e);
      }
    }
    return Path.of(rest);
  }
}
