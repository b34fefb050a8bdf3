package io.embstore.format.storage;

/** The storage contract on the local disk (java.nio, no Hadoop). */
class LocalStorageTest extends TableStorageContract {
  private int n;

  @Override
  String table(String name) {
    return tmp.resolve("tables").resolve(name + "-" + (n++)).toString();
  }
}
