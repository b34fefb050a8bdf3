package io.embstore.shard;

import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightRuntimeException;

/** Flight status exceptions with the project's message convention. */
final class ShardErrors {
  private ShardErrors() {}

  static FlightRuntimeException invalid(String message) {
    return CallStatus.INVALID_ARGUMENT.withDescription(message).toRuntimeException();
  }

  static FlightRuntimeException notFound(String message) {
    return CallStatus.NOT_FOUND.withDescription(message).toRuntimeException();
  }

  static FlightRuntimeException exhausted(String message) {
    return CallStatus.RESOURCE_EXHAUSTED.withDescription(message).toRuntimeException();
  }

  static FlightRuntimeException unauthorized(String message) {
    return CallStatus.UNAUTHORIZED.withDescription(message).toRuntimeException();
  }

  static FlightRuntimeException unauthenticated(String message) {
    return CallStatus.UNAUTHENTICATED.withDescription(message).toRuntimeException();
  }

  static FlightRuntimeException unavailable(String message) {
    return CallStatus.UNAVAILABLE.withDescription(message).toRuntimeException();
  }

  static FlightRuntimeException internal(String message, Throwable cause) {
    return CallStatus.INTERNAL.withDescription(message).withCause(cause).toRuntimeException();
  }
}
