package io.embstore.format.fault;

/** The write crash test on the local disk (fsync, atomic rename, directory fsync). */
class TableWriteCrashTest extends WriteCrashContract {
  @Override
  String location(String name) {
    return tmp.resolve(name).toString();
  }

  @Override
  int kills() {
    return 22;
  }
}
