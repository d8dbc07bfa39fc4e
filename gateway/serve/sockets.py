"""Listening sockets for `barid serve`, and the one error a failed start gives.

Owns: `bind` (TCP, SO_REUSEADDR, non-blocking) and `StartupError`. Must not:
start anything on a socket; the start functions of gateway.serve do.
"""

from __future__ import annotations

import socket


class StartupError(Exception):
    """The gateway cannot start; the message says why (no internals)."""


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when
    # the listening socket says it is TCP; without it every small reply written in
    # two pieces waits for the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(512)
    sock.setblocking(False)
    return sock
