"""Ports for tests: a free loopback port, the listener env for "every port free",
and a guard that holds the development default ports for the whole session.

Tests bind free ports only; the guard makes binding or dialling a development
port (what `make demo` listens on) fail loudly instead of working by luck.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterable

# The gateway's development defaults (gateway/config/sections.py): submission, smtps,
# transfer, imap, imaps, http; 8443 is the usual TLS front of the public page.
DEVELOPMENT_PORTS = (5870, 4650, 2525, 1430, 9930, 8080, 8443)

# Every listener of a gateway on a port the kernel picks.
EPHEMERAL_PORTS_ENV = {
    "BARID_SMTP__SUBMISSION_PORT": "0",
    "BARID_SMTP__SMTPS_PORT": "0",
    "BARID_SMTP__TRANSFER_PORT": "0",
    "BARID_IMAP__PORT": "0",
    "BARID_IMAP__IMAPS_PORT": "0",
    "BARID_HTTP__PORT": "0",
    "BARID_HTTP__ADMIN_PORT": "0",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PortGuard:
    """Listens on the given loopback ports that are free; any connection is
    accepted, counted and closed at once, so a client fails fast, and a server
    that tries to bind one of them gets EADDRINUSE."""

    def __init__(self, ports: Iterable[int], host: str = "127.0.0.1") -> None:
        self.held: dict[int, socket.socket] = {}
        self.connections: list[int] = []
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
                sock.listen(16)
            except OSError:  # a demo, another worker or another program has it
                sock.close()
                continue
            sock.setblocking(False)
            self.held[port] = sock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="port-guard", daemon=True)
        self._thread.start()

    def count(self) -> int:
        with self._lock:
            return len(self.connections)

    def since(self, mark: int) -> list[int]:
        """Ports dialled since `count()` returned `mark`."""
        with self._lock:
            return list(self.connections[mark:])

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            for port, sock in self.held.items():
                selector.register(sock, selectors.EVENT_READ, port)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    with contextlib.suppress(OSError):
                        conn, _addr = key.fileobj.accept()  # type: ignore[union-attr]
                        with self._lock:
                            self.connections.append(int(key.data))
                        conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.held.values():
            sock.close()
        self.held.clear()
