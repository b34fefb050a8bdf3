package io.embstore.shard;

import io.embstore.format.TableManifest;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.apache.arrow.memory.util.MemoryUtil;

/**
 * A sparse optimizer and its hyper-parameters: what a shard server (and the in-memory row store of
 * the training job's tests) applies to one row for one update. One final implementation per
 * optimizer; {@link #apply} is the only place its arithmetic is written.
 *
 * <p>Formulas (g: the summed gradient of one row for one update, w: the row, per element unless
 * said otherwise; every operation in float32 in the order written, except where a sum is said to
 * be in double; {@code lr} is the request's learning rate, or the optimizer's):
 *
 * <ul>
 *   <li>{@value #SGD} (lr): {@code w -= lr * g}.
 *   <li>{@value #ADAGRAD} (lr, eps): state column {@code adagrad_sum}[C]: {@code G += g * g; w -= lr
 *       * g / (sqrt(G) + eps)}.
 *   <li>{@value #ROWWISE_ADAGRAD} (lr, eps): state column {@code adagrad_row_sum}[1], one
 *       accumulator per row as in FBGEMM and PyTorch-BigGraph: {@code G += (float) (sum(g * g) /
 *       C)} (the sum in double, over four interleaved partial sums, see {@link
 *       #sumOfSquares}); {@code scale = lr / (sqrt(G) + eps); w -= scale * g}.
 *   <li>{@value #ADAM} (lr, beta1, beta2, eps), sparse ("lazy") Adam: state columns {@code
 *       adam_m}[C], {@code adam_v}[C] and {@code adam_step}[1]; only touched rows change: {@code t
 *       += 1; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr * (m / (1-b1^t)) / (sqrt(v /
 *       (1-b2^t)) + eps)}, the bias corrections computed in double and rounded to float32.
 * </ul>
 *
 * A learning rate sent with an update request replaces {@code lr} for that request. {@code
 * docs/protocol.md} states the same arithmetic for other implementations.
 */
public abstract sealed class Optimizer {
  public static final String SGD = "sgd";
  public static final String ADAGRAD = "adagrad";
  public static final String ROWWISE_ADAGRAD = "rowwise-adagrad";
  public static final String ADAM = "adam";
  /** The names {@link #parse} knows. */
  public static final List<String> NAMES = List.of(SGD, ADAGRAD, ROWWISE_ADAGRAD, ADAM);

  /** The eps of Adagrad, row-wise Adagrad and Adam when none is given. */
  public static final double DEFAULT_EPS = 1e-8;
  /** The learning rate of SGD when none is given (word2vec's). */
  public static final double DEFAULT_SGD_LR = 0.025;
  /** The learning rate of Adagrad and row-wise Adagrad when none is given. */
  public static final double DEFAULT_ADAGRAD_LR = 0.01;
  /** The learning rate of Adam when none is given. */
  public static final double DEFAULT_ADAM_LR = 0.001;

  final double lr;

  private Optimizer(double lr) {
    this.lr = lr;
    check("lr", lr, lr > 0, "must be positive");
  }

  final void check(String param, double value, boolean ok, String why) {
    if (!ok || !Double.isFinite(value)) {
      throw new IllegalArgumentException("Cannot use optimizer " + name() + ": " + param + "=" + value + " (" + why + ")");
    }
  }

  public static Optimizer sgd(double lr) {
    return new Sgd(lr);
  }

  public static Optimizer adagrad(double lr, double eps) {
    return new Adagrad(lr, eps);
  }

  public static Optimizer rowwiseAdagrad(double lr, double eps) {
    return new RowwiseAdagrad(lr, eps);
  }

  public static Optimizer adam(double lr, double beta1, double beta2, double eps) {
    return new Adam(lr, beta1, beta2, eps);
  }

  /**
   * The optimizer {@code name} with {@code params}; missing ones take the defaults ({@link
   * #DEFAULT_SGD_LR}, {@link #DEFAULT_ADAGRAD_LR}, {@link #DEFAULT_ADAM_LR}, beta1 0.9, beta2 0.999,
   * {@link #DEFAULT_EPS}).
   */
  public static Optimizer parse(String name, Map<String, Double> params) {
    Map<String, Double> p = params == null ? Map.of() : params;
    List<String> known;
    Optimizer o;
    if (SGD.equals(name)) {
      known = List.of("lr");
      o = sgd(p.getOrDefault("lr", DEFAULT_SGD_LR));
    } else if (ADAGRAD.equals(name)) {
      known = List.of("lr", "eps");
      o = adagrad(p.getOrDefault("lr", DEFAULT_ADAGRAD_LR), p.getOrDefault("eps", DEFAULT_EPS));
    } else if (ROWWISE_ADAGRAD.equals(name)) {
      known = List.of("lr", "eps");
      o = rowwiseAdagrad(p.getOrDefault("lr", DEFAULT_ADAGRAD_LR), p.getOrDefault("eps", DEFAULT_EPS));
    } else if (ADAM.equals(name)) {
      known = List.of("lr", "beta1", "beta2", "eps");
      o = adam(p.getOrDefault("lr", DEFAULT_ADAM_LR), p.getOrDefault("beta1", 0.9), p.getOrDefault("beta2", 0.999),
          p.getOrDefault("eps", DEFAULT_EPS));
    } else {
      throw new IllegalArgumentException(
          "Cannot use optimizer '" + name + "': unknown name (known: " + String.join(", ", NAMES) + ")");
    }
    for (String key : p.keySet()) {
      if (!known.contains(key)) {
        throw new IllegalArgumentException(
            "Cannot use optimizer " + name + ": unknown parameter '" + key + "' (known: " + String.join(", ", known) + ")");
      }
    }
    return o;
  }

  /** The optimizer recorded in a manifest. */
  public static Optimizer fromManifest(TableManifest.Optimizer o) {
    return parse(o.name(), o.params());
  }

  public abstract String name();

  /** The learning rate used when a request carries none. */
  public double lr() {
    return lr;
  }

  /** Hyper-parameters by name, as the manifest records them. */
  public abstract Map<String, Double> params();

  /** The per-row state this optimizer keeps, as extra shard columns (empty for SGD). */
  public abstract List<TableManifest.StateColumn> stateColumns(int dim);

  /** The manifest entry of this optimizer after {@code step} updates. */
  public TableManifest.Optimizer toManifest(int dim, long step) {
    return new TableManifest.Optimizer(name(), params(), stateColumns(dim), step);
  }

  /**
   * Applies one update to one row in place: the row of {@code dim} float32 at address {@code w},
   * the gradient at {@code g}, and {@code state[k]} the address of this row's values in state column
   * k (as {@link #stateColumns} lists them). The caller holds the row's lock.
   */
  public abstract void apply(long w, long g, long[] state, int dim, float lr);

  @Override
  public boolean equals(Object o) {
    return o instanceof Optimizer other && other.name().equals(name()) && other.params().equals(params());
  }

  @Override
  public int hashCode() {
    return Objects.hash(name(), params());
  }

  @Override
  public String toString() {
    return name() + params();
  }

  static float get(long address) {
    return Float.intBitsToFloat(MemoryUtil.getInt(address));
  }

  static void put(long address, float value) {
    MemoryUtil.putInt(address, Float.floatToRawIntBits(value));
  }

  /**
   * The sum of squares of {@code dim} floats at {@code g}, in doubles, over four partial sums
   * (elements c with c mod 4 = 0, 1, 2, 3 up to the last multiple of four, the rest into the first),
   * added as {@code (s0 + s1) + (s2 + s3)}: one chain of dependent adds would wait out each add's
   * latency. The order is part of the arithmetic another implementation must follow.
   */
  static double sumOfSquares(long g, int dim) {
    double s0 = 0;
    double s1 = 0;
    double s2 = 0;
    double s3 = 0;
    int c = 0;
    for (; c + 4 <= dim; c += 4) {
      float a = get(g + 4L * c);
      float b = get(g + 4L * c + 4);
      float d = get(g + 4L * c + 8);
      float e = get(g + 4L * c + 12);
      s0 += a * a;
      s1 += b * b;
      s2 += d * d;
      s3 += e * e;
    }
    for (; c < dim; c++) {
      float a = get(g + 4L * c);
      s0 += a * a;
    }
    return (s0 + s1) + (s2 + s3);
  }

  /** {@code w -= lr * g}. */
  static final class Sgd extends Optimizer {
    Sgd(double lr) {
      super(lr);
    }

    @Override
    public String name() {
      return SGD;
    }

    @Override
    public Map<String, Double> params() {
      return Map.of("lr", lr);
    }

    @Override
    public List<TableManifest.StateColumn> stateColumns(int dim) {
      return List.of();
    }

    @Override
    public void apply(long w, long g, long[] state, int dim, float lr) {
      for (int c = 0; c < dim; c++) {
        long o = 4L * c;
        put(w + o, get(w + o) - lr * get(g + o));
      }
    }
  }

  /** Adagrad and row-wise Adagrad: lr and eps. */
  private abstract static sealed class WithEps extends Optimizer {
    final double eps;

    WithEps(double lr, double eps) {
      super(lr);
      this.eps = eps;
      check("eps", eps, eps > 0, "must be positive");
    }

    @Override
    public Map<String, Double> params() {
      Map<String, Double> m = new LinkedHashMap<>();
      m.put("lr", lr);
      m.put("eps", eps);
      return m;
    }
  }

  /** Per-element accumulators: {@code G += g^2; w -= lr * g / (sqrt(G) + eps)}. */
  static final class Adagrad extends WithEps {
    Adagrad(double lr, double eps) {
      super(lr, eps);
    }

    @Override
    public String name() {
      return ADAGRAD;
    }

    @Override
    public List<TableManifest.StateColumn> stateColumns(int dim) {
      return List.of(new TableManifest.StateColumn("adagrad_sum", dim));
    }

    @Override
    public void apply(long w, long g, long[] state, int dim, float lr) {
      float e = (float) eps;
      long s = state[0];
      for (int c = 0; c < dim; c++) {
        long o = 4L * c;
        float gc = get(g + o);
        float sum = get(s + o) + gc * gc;
        put(s + o, sum);
        put(w + o, get(w + o) - lr * gc / ((float) Math.sqrt(sum) + e));
      }
    }
  }

  /** One accumulator per row: {@code G += mean(g^2); w -= lr * g / (sqrt(G) + eps)}. */
  static final class RowwiseAdagrad extends WithEps {
    RowwiseAdagrad(double lr, double eps) {
      super(lr, eps);
    }

    @Override
    public String name() {
      return ROWWISE_ADAGRAD;
    }

    @Override
    public List<TableManifest.StateColumn> stateColumns(int dim) {
      return List.of(new TableManifest.StateColumn("adagrad_row_sum", 1));
    }

    @Override
    public void apply(long w, long g, long[] state, int dim, float lr) {
      long s = state[0];
      float sum = get(s) + (float) (sumOfSquares(g, dim) / dim);
      put(s, sum);
      float scale = lr / ((float) Math.sqrt(sum) + (float) eps);
      for (int c = 0; c < dim; c++) {
        long o = 4L * c;
        put(w + o, get(w + o) - scale * get(g + o));
      }
    }
  }

  /** Lazy Adam: moments and step per row, updated only when the row is. */
  static final class Adam extends Optimizer {
    final double beta1;
    final double beta2;
    final double eps;

    Adam(double lr, double beta1, double beta2, double eps) {
      super(lr);
      this.beta1 = beta1;
      this.beta2 = beta2;
      this.eps = eps;
      check("eps", eps, eps > 0, "must be positive");
      check("beta1", beta1, beta1 >= 0 && beta1 < 1, "must be in [0, 1)");
      check("beta2", beta2, beta2 >= 0 && beta2 < 1, "must be in [0, 1)");
    }

    @Override
    public String name() {
      return ADAM;
    }

    @Override
    public Map<String, Double> params() {
      Map<String, Double> m = new LinkedHashMap<>();
      m.put("lr", lr);
      m.put("beta1", beta1);
      m.put("beta2", beta2);
      m.put("eps", eps);
      return m;
    }

    @Override
    public List<TableManifest.StateColumn> stateColumns(int dim) {
      return List.of(
          new TableManifest.StateColumn("adam_m", dim),
          new TableManifest.StateColumn("adam_v", dim),
          new TableManifest.StateColumn("adam_step", 1));
    }

    @Override
    public void apply(long w, long g, long[] state, int dim, float lr) {
      float b1 = (float) beta1;
      float b2 = (float) beta2;
      float e = (float) eps;
      long m = state[0];
      long v = state[1];
      long stepAt = state[2];
      float t = get(stepAt) + 1;
      put(stepAt, t);
      float bc1 = (float) (1 - Math.pow(beta1, t));
      float bc2 = (float) (1 - Math.pow(beta2, t));
      for (int c = 0; c < dim; c++) {
        long o = 4L * c;
        float gc = get(g + o);
        float mc = b1 * get(m + o) + (1 - b1) * gc;
        float vc = b2 * get(v + o) + (1 - b2) * gc * gc;
        put(m + o, mc);
        put(v + o, vc);
        put(w + o, get(w + o) - lr * (mc / bc1) / ((float) Math.sqrt(vc / bc2) + e));
      }
    }
  }
}
