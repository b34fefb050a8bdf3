package io.embstore.format.convert;

import java.io.IOException;

/**
 * An input file of an import is not what its format requires: wrong dtype, rank or shape, Fortran
 * order, truncated, a corrupt header, ragged rows, duplicate tokens, a row count that does not
 * match the header, or a non-finite value. The message names the file, the value and the limit.
 */
public final class InputFormatException extends IOException {
  private static final long serialVersionUID = 1L;

  public InputFormatException(String message) {
    super(message);
  }

  public InputFormatException(String message, Throwable cause) {
    super(message, cause);
  }
}
