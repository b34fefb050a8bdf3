package io.embstore.format;

import java.io.IOException;

/**
 * A table or one of its files is not what the format requires: corrupt, truncated, of another
 * version, or inconsistent with its manifest. The message names the file, the expected and the
 * actual value.
 */
public class TableFormatException extends IOException {
  private static final long serialVersionUID = 1L;

  public TableFormatException(String message) {
    super(message);
  }

  public TableFormatException(String message, Throwable cause) {
    super(message, cause);
  }

  /** The file's format version is older than the oldest this reader supports. */
  public static final class TooOld extends TableFormatException {
    private static final long serialVersionUID = 1L;

    public TooOld(String file, int version, int minVersion) {
      super(
          "Cannot read "
              + file
              + ": format version "
              + version
              + " is too old (this reader supports "
              + minVersion
              + ".."
              + TableFormat.VERSION_CURRENT
              + ")");
    }
  }

  /** The file's format version is newer than this reader knows. */
  public static final class TooNew extends TableFormatException {
    private static final long serialVersionUID = 1L;

    public TooNew(String file, int version, int maxVersion) {
      super(
          "Cannot read "
              + file
              + ": format version "
              + version
              + " is too new (this reader supports "
              + TableFormat.VERSION_MIN
              + ".."
              + maxVersion
              + "; upgrade embstore)");
    }
  }
}
