"""Fair connection slots for the HTTP listener: a global cap and a cap per client address.

Owns: `fair_protocol`, uvicorn's h11 protocol that takes a slot from a
`SlotTable` when a connection opens (and gives it back when it closes), and
answers `503` + `Retry-After` and closes when none is left for that address.
Must not: look at requests (the app does).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.intake.smtp.slots import SlotTable

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 35\r\n"
    b"retry-after: 10\r\nconnection: close\r\n\r\nToo many connections; retry later.\n"
)


def fair_protocol(table: SlotTable) -> type[asyncio.Protocol]:
    """An h11 protocol class for `uvicorn.Config(http=...)` drawing on `table`."""

    class FairH11Protocol(H11Protocol):
        _slot: str | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if peer else ""
            if table.admit(address):
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(REFUSAL)
                transport.close()
                return
            self._slot = address
            super().connection_made(transport)  # type: ignore[arg-type]

        def connection_lost(self, exc: Exception | None) -> None:
            if self._slot is None:  # refused: uvicorn never saw it
                return
            table.release(self._slot)
            self._slot = None
            super().connection_lost(exc)

    return FairH11Protocol
