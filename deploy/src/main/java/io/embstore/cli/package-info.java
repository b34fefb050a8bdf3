/**
 * The {@code embstore} command line, every command in one place: the library modules carry no
 * command and do not depend on picocli.
 *
 * <ul>
 *   <li>{@link io.embstore.cli.Main} ({@code bin/embstore}) and {@link io.embstore.cli.Cli} (the root
 *       command with every {@link io.embstore.cli.Subcommand} listed in this module's {@code
 *       META-INF/services/io.embstore.cli.Subcommand}; the error convention: one line {@code
 *       embstore <command>: <reason>}, exit 1, usage errors exit 2; {@code --dtype} and {@code
 *       --table} shared by every command).
 *   <li>Tables (over arrow-format's API): {@code import}, {@code export}, {@code reshard}, {@code
 *       convert}, {@code inspect}, {@code verify} ({@code ImportCommand} ... {@code VerifyCommand}).
 *   <li>Shard servers (over shard-client's API): {@code serve} ({@code ServeCommand}: the options
 *       become a {@code ShardServer.Builder}, run by {@code ServerLauncher}), {@code lookup}, {@code
 *       nearest} (with the options of {@code ClientOptions}), {@code health} ({@code HealthCommand},
 *       for readiness probes), {@code TlsClientOptions} (the TLS options of the three clients).
 *   <li>Training: {@code train} ({@code TrainCommand} over spark-job's {@code TrainOptions}, the
 *       options {@code spark-submit} takes too, and {@code TrainJob.runHere}).
 * </ul>
 *
 * <p>The rest of the module is not code: the distribution's assembly ({@code src/assembly}, {@code
 * src/dist}), scripts ({@code bin}, {@code quickstart.sh}, {@code local-cluster}, {@code spark}) and
 * Kubernetes manifests ({@code k8s}), described in {@code docs/deploy.md}.
 */
package io.embstore.cli;
