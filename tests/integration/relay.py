"""A TCP relay on loopback that delays every byte by a fixed time in each direction,
to give tests a link with real distance (replication lag, a remote region) where the
kernel's netem is not available. By default bytes already accepted are still
delivered, late, after the sender has closed. With crash=True, what is still on its
way when the side that connected to the relay's target closes is dropped, as when a
machine dies with its kernel's buffers and the packets in the network: kill -9 of a
process alone loses nothing the process had written to its sockets."""
import socket
import threading
import time
from collections import deque


class DelayRelay:
    def __init__(self, target_port, delay_s, target_host="127.0.0.1", host="127.0.0.1",
                 crash=False):
        self.target = (target_host, target_port)
        self.delay = delay_s
        self.crash = crash
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                a, _ = self.listener.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(self.target, timeout=5)
            except OSError:
                a.close()
                continue
            for s in (a, b):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(None)
            self.conns += [a, b]
            self._pipe(a, b)
            self._pipe(b, a, drop_on_close=self.crash)

    def _pipe(self, src, dst, drop_on_close=False):
        """src -> dst, each chunk sent delay after it arrived; EOF passed on after them
        (or at once, dropping them, with drop_on_close)."""
        queue, cond = deque(), threading.Condition()

        def reader():
            while True:
                try:
                    data = src.recv(1 << 16)
                except OSError:
                    data = b""
                with cond:
                    if not data and drop_on_close:
                        queue.clear()
                    queue.append((time.monotonic() + self.delay, data))
                    cond.notify()
                if not data:
                    return

        def writer():
            while True:
                with cond:
                    while not queue:
                        cond.wait()
                    due, data = queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if data:
                        dst.sendall(data)
                    else:
                        dst.shutdown(socket.SHUT_WR)
                        return
                except OSError:
                    return

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()

    def close(self):
        self.closed = True
        self.listener.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass
