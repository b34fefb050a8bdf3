package io.embstore.format.storage;

import com.adobe.testing.s3mock.S3MockApplication;
import io.embstore.format.TableStorage;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;

/**
 * An S3-compatible server in the test JVM (Adobe S3Mock on 127.0.0.1, HTTP, port chosen by the OS,
 * objects under a directory of the test) and the S3A configuration that reaches it: path-style
 * access, a fixed endpoint, static credentials. Buckets given to {@link #start} exist.
 */
public final class S3Fixture implements AutoCloseable {
  private final S3MockApplication s3;
  private static S3Fixture shared;
  /** The bucket of {@link #shared()}; the test core-site.xml points it at this server. */
  public static final String BUCKET = "embstore-test";

  private S3Fixture(S3MockApplication s3) {
    this.s3 = s3;
  }

  public static S3Fixture start(Path root, String... buckets) {
    // S3Mock's XML (Jackson) needs Woodstox 7; the StAX service lookup would otherwise find the older
    // copy that hadoop-client-runtime shades and registers, which lacks a property S3Mock sets.
    System.setProperty("javax.xml.stream.XMLOutputFactory", "com.ctc.wstx.stax.WstxOutputFactory");
    System.setProperty("javax.xml.stream.XMLInputFactory", "com.ctc.wstx.stax.WstxInputFactory");
    Map<String, Object> props = new HashMap<>();
    props.put(S3MockApplication.PROP_HTTP_PORT, S3MockApplication.RANDOM_PORT);
    props.put(S3MockApplication.PROP_HTTPS_PORT, S3MockApplication.RANDOM_PORT);
    props.put(S3MockApplication.PROP_ROOT_DIRECTORY, root.toAbsolutePath().toString());
    props.put(S3MockApplication.PROP_INITIAL_BUCKETS, String.join(",", buckets));
    props.put(S3MockApplication.PROP_SILENT, true);
    props.put("server.address", "127.0.0.1");
    props.put("logging.level.root", "WARN");
    return new S3Fixture(S3MockApplication.start(props));
  }

  /**
   * One S3Mock for every test class of this JVM that asks, with bucket {@link #BUCKET}, and the
   * system property {@code embstore.test.s3.endpoint} that the test core-site.xml reads set to it;
   * stopped when the JVM exits.
   */
  public static synchronized S3Fixture shared() throws java.io.IOException {
    if (shared == null) {
      S3Fixture s = start(java.nio.file.Files.createTempDirectory("embstore-s3mock"), BUCKET);
      System.setProperty("embstore.test.s3.endpoint", s.endpoint());
      Runtime.getRuntime().addShutdownHook(new Thread(s::close, "s3mock-shutdown"));
      shared = s;
    }
    return shared;
  }

  /** {@code http://127.0.0.1:PORT}. */
  public String endpoint() {
    return "http://127.0.0.1:" + s3.getHttpPort();
  }

  /** S3A settings for this server (what a core-site.xml would hold). */
  public Configuration conf() {
    Configuration c = new Configuration();
    c.set("fs.s3a.endpoint", endpoint());
    c.set("fs.s3a.endpoint.region", "us-east-1");
    c.setBoolean("fs.s3a.path.style.access", true);
    c.setBoolean("fs.s3a.connection.ssl.enabled", false);
    c.set("fs.s3a.access.key", "test");
    c.set("fs.s3a.secret.key", "test");
    c.set("fs.s3a.aws.credentials.provider", "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider");
    c.setBoolean("fs.s3a.change.detection.version.required", false);
    c.setInt("fs.s3a.attempts.maximum", 2);
    c.setInt("fs.s3a.retry.limit", 2);
    c.setBoolean("fs.s3a.impl.disable.cache", false);
    return c;
  }

  public TableStorage storage() {
    return TableStorage.hadoop(conf());
  }

  @Override
  public void close() {
    s3.stop();
  }
}
