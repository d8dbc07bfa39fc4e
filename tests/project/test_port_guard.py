"""The suite's guard on the development ports: while the suite runs they are held
(by this session, another worker or a running demo), so no test can use them."""

from __future__ import annotations

import contextlib
import errno
import socket

import pytest

from testkit.ports import DEVELOPMENT_PORTS, PortGuard, free_port


@pytest.mark.parametrize("port", DEVELOPMENT_PORTS)
def test_a_development_port_cannot_be_bound_during_the_suite(
    port: int, development_ports_guard: PortGuard
) -> None:
    # A port this worker did not get was held by another worker or a demo at the
    # start; another worker may have finished and let it go since: hold it again.
    late = PortGuard([] if port in development_ports_guard.held else [port])
    try:
        with socket.socket() as sock, pytest.raises(OSError) as caught:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        assert caught.value.errno == errno.EADDRINUSE
    finally:
        late.close()


def test_the_guard_refuses_a_listener_and_counts_and_drops_a_client() -> None:
    port = free_port()
    guard = PortGuard([port])
    try:
        assert list(guard.held) == [port]
        with socket.socket() as rival, pytest.raises(OSError):
            rival.bind(("127.0.0.1", port))
            rival.listen()
        mark = guard.count()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert client.recv(1) == b""  # closed at once, no greeting
        assert guard.since(mark) == [port]
        # A port somebody else holds is skipped, not an error.
        second = PortGuard([port])
        assert list(second.held) == []
        second.close()
    finally:
        guard.close()
