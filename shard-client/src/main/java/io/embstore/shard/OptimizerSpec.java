package io.embstore.shard;

import io.embstore.format.TableManifest;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The optimizer a shard server applies to sparse updates, with its hyper-parameters. Names and
 * formulas (g: the summed gradient of one row for one update, w: the row, all per element unless
 * said otherwise):
 *
 * <ul>
 *   <li>{@code sgd} (lr): {@code w -= lr * g}.
 *   <li>{@code adagrad} (lr, eps): state column {@code adagrad_sum}[C]: {@code G += g^2; w -= lr * g
 *       / (sqrt(G) + eps)}.
 *   <li>{@code rowwise-adagrad} (lr, eps): state column {@code adagrad_row_sum}[1], one accumulator
 *       per row as in FBGEMM and PyTorch-BigGraph: {@code G += mean(g^2); w -= lr * g / (sqrt(G) +
 *       eps)}.
 *   <li>{@code adam} (lr, beta1, beta2, eps), sparse ("lazy") Adam: state columns {@code adam_m}[C],
 *       {@code adam_v}[C] and {@code adam_step}[1]; only touched rows change: {@code t += 1; m = b1 m
 *       + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)}.
 * </ul>
 *
 * A learning rate sent with an update request replaces {@code lr} for that request.
 */
public final class OptimizerSpec {
  public static final String SGD = "sgd";
  public static final String ADAGRAD = "adagrad";
  public static final String ROWWISE_ADAGRAD = "rowwise-adagrad";
  public static final String ADAM = "adam";

  private final String name;
  private final double lr;
  private final double eps;
  private final double beta1;
  private final double beta2;

  private OptimizerSpec(String name, double lr, double eps, double beta1, double beta2) {
    this.name = name;
    this.lr = lr;
    this.eps = eps;
    this.beta1 = beta1;
    this.beta2 = beta2;
    check("lr", lr, lr > 0, "must be positive");
    if (!SGD.equals(name)) {
      check("eps", eps, eps > 0, "must be positive");
    }
    if (ADAM.equals(name)) {
      check("beta1", beta1, beta1 >= 0 && beta1 < 1, "must be in [0, 1)");
      check("beta2", beta2, beta2 >= 0 && beta2 < 1, "must be in [0, 1)");
    }
  }

  private void check(String param, double value, boolean ok, String why) {
    if (!ok || !Double.isFinite(value)) {
      throw new IllegalArgumentException(
          "Cannot use optimizer " + name + ": " + param + "=" + value + " (" + why + ")");
    }
  }

  public static OptimizerSpec sgd(double lr) {
    return new OptimizerSpec(SGD, lr, 0, 0, 0);
  }

  public static OptimizerSpec adagrad(double lr, double eps) {
    return new OptimizerSpec(ADAGRAD, lr, eps, 0, 0);
  }

  public static OptimizerSpec rowwiseAdagrad(double lr, double eps) {
    return new OptimizerSpec(ROWWISE_ADAGRAD, lr, eps, 0, 0);
  }

  public static OptimizerSpec adam(double lr, double beta1, double beta2, double eps) {
    return new OptimizerSpec(ADAM, lr, eps, beta1, beta2);
  }

  /**
   * The optimizer {@code name} with {@code params} (missing ones take defaults: sgd lr 0.025;
   * adagrad and rowwise-adagrad lr 0.01, eps 1e-8; adam lr 0.001, beta1 0.9, beta2 0.999, eps
   * 1e-8).
   */
  public static OptimizerSpec parse(String name, Map<String, Double> params) {
    Map<String, Double> p = params == null ? Map.of() : params;
    List<String> known;
    OptimizerSpec spec;
    if (SGD.equals(name)) {
      known = List.of("lr");
      spec = sgd(p.getOrDefault("lr", 0.025));
    } else if (ADAGRAD.equals(name) || ROWWISE_ADAGRAD.equals(name)) {
      known = List.of("lr", "eps");
      spec = new OptimizerSpec(name, p.getOrDefault("lr", 0.01), p.getOrDefault("eps", 1e-8), 0, 0);
    } else if (ADAM.equals(name)) {
      known = List.of("lr", "beta1", "beta2", "eps");
      spec =
          adam(
              p.getOrDefault("lr", 0.001),
              p.getOrDefault("beta1", 0.9),
              p.getOrDefault("beta2", 0.999),
              p.getOrDefault("eps", 1e-8));
    } else {
      throw new IllegalArgumentException(
          "Cannot use optimizer '" + name + "': unknown name (known: sgd, adagrad, rowwise-adagrad, adam)");
    }
    for (String key : p.keySet()) {
      if (!known.contains(key)) {
        throw new IllegalArgumentException(
            "Cannot use optimizer " + name + ": unknown parameter '" + key + "' (known: " + String.join(", ", known) + ")");
      }
    }
    return spec;
  }

  /** The spec recorded in a manifest. */
  static OptimizerSpec fromManifest(TableManifest.Optimizer o) {
    return parse(o.name(), o.params());
  }

  public String name() {
    return name;
  }

  public double lr() {
    return lr;
  }

  public double eps() {
    return eps;
  }

  public double beta1() {
    return beta1;
  }

  public double beta2() {
    return beta2;
  }

  /** Hyper-parameters by name, as the manifest records them. */
  public Map<String, Double> params() {
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("lr", lr);
    if (ADAM.equals(name)) {
      m.put("beta1", beta1);
      m.put("beta2", beta2);
    }
    if (!SGD.equals(name)) {
      m.put("eps", eps);
    }
    return m;
  }

  /** The per-row state this optimizer keeps, as extra shard columns. */
  public List<TableManifest.StateColumn> stateColumns(int dim) {
    switch (name) {
      case ADAGRAD:
        return List.of(new TableManifest.StateColumn("adagrad_sum", dim));
      case ROWWISE_ADAGRAD:
        return List.of(new TableManifest.StateColumn("adagrad_row_sum", 1));
      case ADAM:
        return List.of(
            new TableManifest.StateColumn("adam_m", dim),
            new TableManifest.StateColumn("adam_v", dim),
            new TableManifest.StateColumn("adam_step", 1));
      default:
        return List.of();
    }
  }

  /** The manifest entry of this optimizer after {@code step} updates. */
  public TableManifest.Optimizer toManifest(int dim, long step) {
    return new TableManifest.Optimizer(name, params(), stateColumns(dim), step);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof OptimizerSpec && ((OptimizerSpec) o).name.equals(name) && ((OptimizerSpec) o).params().equals(params());
  }

  @Override
  public int hashCode() {
    return Objects.hash(name, params());
  }

  @Override
  public String toString() {
    return name + params();
  }
}
