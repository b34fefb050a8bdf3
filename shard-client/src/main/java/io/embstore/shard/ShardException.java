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
