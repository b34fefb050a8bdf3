/**
 * The {@code embstore} command of the distribution: {@link io.embstore.cli.Main} gathers the
 * subcommands that every module on the class path lists in its {@code META-INF/services} (format:
 * {@code import}, {@code export}, {@code inspect}, {@code verify}; shard-client: {@code serve},
 * {@code lookup}, {@code nearest}; spark-job: {@code train}; this module: {@link
 * io.embstore.cli.HealthCommand}, {@code embstore health}, for readiness probes). The rest of the
 * module is not code: the distribution's assembly ({@code src/assembly}, {@code src/dist}),
 * scripts ({@code bin}, {@code quickstart.sh}, {@code local-cluster}, {@code spark}) and
 * Kubernetes manifests ({@code k8s}), described in {@code docs/deploy.md}.
 */
package io.embstore.cli;
