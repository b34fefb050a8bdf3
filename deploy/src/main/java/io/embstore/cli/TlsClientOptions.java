package io.embstore.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/**
 * The TLS options of a command that connects to shard servers ({@code lookup}, {@code nearest},
 * {@code health}): the CA to trust and, for servers that require one, a client certificate.
 */
public final class TlsClientOptions {
  @Option(names = "--tls-ca", description = "PEM certificates to trust for grpc+tls:// endpoints (default: the JVM's).")
  Path ca;

  @Option(names = "--tls-cert", description = "PEM client certificate chain, for servers that require one (with --tls-key).")
  Path cert;

  @Option(names = "--tls-key", description = "PKCS#8 PEM private key of --tls-cert.")
  Path key;

  /** Checks that the options go together; {@code verb} names the command's action in the error. */
  public void check(String verb) {
    if ((cert == null) != (key == null)) {
      throw new IllegalArgumentException("Cannot " + verb + ": --tls-cert and --tls-key go together");
    }
  }

  /** The PEM bytes of --tls-ca, or null. */
  public byte[] trusted() throws IOException {
    return ca == null ? null : Files.readAllBytes(ca);
  }

  /** The PEM bytes of --tls-cert, or null. */
  public byte[] certificate() throws IOException {
    return cert == null ? null : Files.readAllBytes(cert);
  }

  /** The PEM bytes of --tls-key, or null. */
  public byte[] key() throws IOException {
    return key == null ? null : Files.readAllBytes(key);
  }
}
