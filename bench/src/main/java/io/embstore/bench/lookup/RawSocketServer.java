package io.embstore.bench.lookup;

import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;

/**
 * The loopback ceiling of BENCHMARKS.md: a blocking socket server that reads a request of B ids
 * (an int B, then B little-endian longs) and answers B rows from a prefilled buffer, without
 * gathering them by id. Any lookup service on this machine pays at least this for the same bytes.
 * One thread per connection.
 */
final class RawSocketServer implements AutoCloseable {
  static final int MAX_BATCH = 1 << 16;

  private final ServerSocketChannel server;
  private final ByteBuffer rows;
  private final int rowBytes;
  private final Thread acceptor;

  RawSocketServer(int rowBytes, int maxBatch) throws IOException {
    this.rowBytes = rowBytes;
    this.rows = ByteBuffer.allocateDirect(rowBytes * maxBatch);
    for (int i = 0; i < rows.capacity(); i++) {
      rows.put(i, (byte) (i * 31 + 7));
    }
    this.server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
    this.acceptor = new Thread(this::accept, "raw-accept");
    acceptor.setDaemon(true);
    acceptor.start();
  }

  int port() throws IOException {
    return ((InetSocketAddress) server.getLocalAddress()).getPort();
  }

  private void accept() {
    while (server.isOpen()) {
      try {
        SocketChannel c = server.accept();
        Thread t = new Thread(() -> serve(c), "raw-conn");
        t.setDaemon(true);
        t.start();
      } catch (IOException e) {
        return;
      }
    }
  }

  private void serve(SocketChannel c) {
    try (c) {
      c.setOption(StandardSocketOptions.TCP_NODELAY, true);
      ByteBuffer req = ByteBuffer.allocateDirect(4 + 8 * MAX_BATCH).order(ByteOrder.LITTLE_ENDIAN);
      ByteBuffer reply = rows.duplicate();
      while (true) {
        req.clear().limit(4);
        if (!readFully(c, req)) {
          return;
        }
        int b = req.getInt(0);
        if (b < 1 || b > MAX_BATCH || (long) b * rowBytes > rows.capacity()) {
          return;
        }
        req.clear().limit(8 * b);
        if (!readFully(c, req)) {
          return;
        }
        reply.clear().limit(b * rowBytes);
        while (reply.hasRemaining()) {
          c.write(reply);
        }
      }
    } catch (IOException e) {
      // the client went away
    }
  }

  static boolean readFully(SocketChannel c, ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      if (c.read(b) < 0) {
        if (b.position() == 0) {
          return false;
        }
        throw new EOFException("connection closed mid-message");
      }
    }
    return true;
  }

  @Override
  public void close() throws IOException {
    server.close();
  }

  /** The client side: one connection, one request at a time. */
  static final class Client implements LookupBench.BaselineClient, AutoCloseable {
    private final SocketChannel c;
    private final ByteBuffer req = ByteBuffer.allocateDirect(4 + 8 * MAX_BATCH).order(ByteOrder.LITTLE_ENDIAN);
    private final ByteBuffer reply;
    private final int rowBytes;

    Client(String host, int port, int rowBytes) throws IOException {
      this.c = SocketChannel.open(new InetSocketAddress(host, port));
      c.setOption(StandardSocketOptions.TCP_NODELAY, true);
      this.rowBytes = rowBytes;
      this.reply = ByteBuffer.allocateDirect(rowBytes * MAX_BATCH);
    }

    @Override
    public void send(long[] ids, int from, int to) throws IOException {
      req.clear();
      req.putInt(to - from);
      for (int i = from; i < to; i++) {
        req.putLong(ids[i]);
      }
      req.flip();
      while (req.hasRemaining()) {
        c.write(req);
      }
    }

    @Override
    public void receive(int n) throws IOException {
      reply.clear().limit(n * rowBytes);
      if (!readFully(c, reply)) {
        throw new EOFException("raw server closed the connection");
      }
    }

    @Override
    public void close() throws IOException {
      c.close();
    }
  }
}
