package io.embstore.spark;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.Logger;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Property;

/** The messages one logger writes while it is attached (log4j2, the binding Spark brings). */
final class LogLines extends AbstractAppender implements AutoCloseable {
  final List<String> lines = new CopyOnWriteArrayList<>();
  private final Logger logger;

  private LogLines(String loggerName) {
    super("capture-" + loggerName, null, null, true, Property.EMPTY_ARRAY);
    this.logger = (Logger) LogManager.getLogger(loggerName);
    start();
    logger.addAppender(this);
  }

  static LogLines of(String loggerName) {
    return new LogLines(loggerName);
  }

  @Override
  public void append(LogEvent event) {
    lines.add(event.getMessage().getFormattedMessage());
  }

  @Override
  public void close() {
    logger.removeAppender(this);
    stop();
  }
}
