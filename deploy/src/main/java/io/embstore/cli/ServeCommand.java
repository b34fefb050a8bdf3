package io.embstore.cli;

import io.embstore.shard.Optimizer;
import io.embstore.shard.ServerLauncher;
import io.embstore.shard.ShardServer;
import java.io.File;
import io.embstore.format.TableLocation;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code embstore serve}: hosts shards of a table until SIGTERM/SIGINT. The options become a {@link
 * ShardServer.Builder}; {@link ServerLauncher} runs it and prints the ready line with the endpoint
 * ({@code grpc+tcp://HOST:PORT}), which scripts read to learn a port picked with {@code --port 0}
 * (with {@code --host 0.0.0.0} or {@code ::} it names {@code 127.0.0.1}, see {@link
 * ServerLauncher}).
 */
@Command(
    name = "serve",
    mixinStandardHelpOptions = true,
    description = "Host shards of a table in memory and serve them over Arrow Flight until SIGTERM/SIGINT.")
public final class ServeCommand implements Callable<Integer>, Subcommand {
  @Option(names = "--table", required = true, paramLabel = "TABLE", description = Cli.TABLE_HELP)
  String table;

  @Option(names = "--shards", split = ",", description = "Shards to host (default: all), e.g. 0,2.")
  int[] shards;

  @Option(
      names = "--host",
      defaultValue = "127.0.0.1",
      description = "Address to bind (default: ${DEFAULT-VALUE}). With a wildcard address (0.0.0.0 or ::) the printed endpoint"
          + " names 127.0.0.1, connectable from this machine; clients elsewhere use the machine's address.")
  String host;

  @Option(names = "--port", defaultValue = "0", description = "Port (default 0: any free port).")
  int port;

  @Option(names = "--read-token", description = "Bearer token for reads (or env EMBSTORE_READ_TOKEN).")
  String readToken;

  @Option(names = "--write-token", description = "Bearer token for reads and writes (or env EMBSTORE_WRITE_TOKEN).")
  String writeToken;

  @Option(names = "--optimizer", description = "sgd, adagrad, rowwise-adagrad or adam (default: the table's, else sgd).")
  String optimizer;

  @Option(names = "--lr", description = "Learning rate of the optimizer.")
  Double lr;

  @Option(names = "--max-ids", defaultValue = "1048576", description = "Largest ids per request (default: ${DEFAULT-VALUE}).")
  int maxIds;

  @Option(names = "--tls-cert", description = "PEM certificate chain: serve TLS (with --tls-key).")
  File tlsCert;

  @Option(names = "--tls-key", description = "PEM private key for --tls-cert.")
  File tlsKey;

  @Option(names = "--tls-client-ca", description = "PEM CA certificates: require clients to present a certificate signed by one (mutual TLS; needs --tls-cert).")
  File tlsClientCa;

  @Option(names = "--wal", description = "Write-ahead log directory: every update batch is logged before it is acknowledged and replayed"
      + " at start on top of the table (give a restarted server the same directory); one log per hosted shard.")
  java.nio.file.Path wal;

  @Option(names = "--wal-sync", description = "When a logged update is acknowledged: always (default with --wal: after an fsync covering it,"
      + " shared by batches arriving together), <N>ms (after the write; forced every N ms) or none (after the write).")
  String walSync;

  @Option(names = "--snapshot-dir", description = "The directory the snapshot action may write into (it or below it; default: the table's"
      + " directory; a local directory or a URI). Any other directory is refused.")
  String snapshotDir;

  @Spec CommandSpec spec;

  private final ServerLauncher launcher = new ServerLauncher();

  @Override
  public int order() {
    return 200;
  }

  @Override
  public Integer call() throws Exception {
    ShardServer.Builder b = ShardServer.builder().table(TableLocation.of(table)).host(host).port(port).maxIdsPerRequest(maxIds);
    if (shards != null) {
      b.shards(shards);
    }
    String read = readToken != null ? readToken : System.getenv("EMBSTORE_READ_TOKEN");
    String write = writeToken != null ? writeToken : System.getenv("EMBSTORE_WRITE_TOKEN");
    if (read != null) {
      b.readToken(read);
    }
    if (write != null) {
      b.writeToken(write);
    }
    if (optimizer != null) {
      Map<String, Double> params = new LinkedHashMap<>();
      if (lr != null) {
        params.put("lr", lr);
      }
      b.optimizer(Optimizer.parse(optimizer, params));
    } else if (lr != null) {
      throw new IllegalArgumentException("Cannot serve: --lr needs --optimizer");
    }
    if ((tlsCert == null) != (tlsKey == null)) {
      throw new IllegalArgumentException("Cannot serve: --tls-cert and --tls-key go together");
    }
    if (tlsClientCa != null && tlsCert == null) {
      throw new IllegalArgumentException("Cannot serve: --tls-client-ca needs --tls-cert and --tls-key");
    }
    if (tlsCert != null) {
      b.tls(tlsCert, tlsKey);
    }
    if (walSync != null && wal == null) {
      throw new IllegalArgumentException("Cannot serve: --wal-sync " + walSync + " needs --wal");
    }
    if (wal != null) {
      b.wal(wal).walSync(walSync);
    }
    if (snapshotDir != null) {
      b.snapshotDir(snapshotDir);
    }
    if (tlsClientCa != null) {
      b.clientCa(tlsClientCa);
    }
    launcher.run(b, table, spec.commandLine().getOut());
    return 0;
  }

  /** Stops serving (what SIGTERM does); for running the command in-process. */
  void stop() {
    launcher.stop();
  }

  /** The running server, or null before it is ready. */
  ShardServer server() {
    return launcher.server();
  }
}
