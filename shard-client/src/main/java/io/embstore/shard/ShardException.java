package io.embstore.shard;

import org.apache.arrow.flight.FlightStatusCode;

/** A call to one shard failed; the message names the shard index, the endpoint and the cause. */
public final class ShardException extends java.io.IOException {
  private static final long serialVersionUID = 1L;

  private final int shard;
  private final String endpoint;
  private final transient FlightStatusCode code;

  ShardException(String message, int shard, String endpoint, FlightStatusCode code, Throwable cause) {
    super(message, cause);
    this.shard = shard;
    this.endpoint = endpoint;
    this.code = code;
  }

  /**
   * The failure {@code cause} of a call that tried to {@code what} ("look up 12 ids on") shard
   * {@code shard} at {@code endpoint}: {@code Cannot <what> shard S at E: <status>: <description>}.
   */
  static ShardException of(String what, int shard, String endpoint, Throwable cause) {
    FlightStatusCode code = FlightStatusCode.INTERNAL;
    String why = cause.toString();
    if (cause instanceof org.apache.arrow.flight.FlightRuntimeException f) {
      code = f.status().code();
      why = code + ": " + f.status().description();
    }
    return new ShardException("Cannot " + what + " shard " + shard + " at " + endpoint + ": " + why, shard, endpoint, code, cause);
  }

  public int shard() {
    return shard;
  }

  public String endpoint() {
    return endpoint;
  }

  /** The Flight status of the failed call (UNAVAILABLE, DEADLINE_EXCEEDED, INVALID_ARGUMENT, ...). */
  public FlightStatusCode code() {
    return code;
  }
}
