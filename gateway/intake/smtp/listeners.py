"""Binding and running the SMTP listeners on the gateway's loop, and stopping them.

Owns: one asyncio server per listener (submission with STARTTLS, SMTPS with
implicit TLS, transfer with STARTTLS and client certificates); listeners of one
group share an `SmtpShared` (slots, in-flight budget, limits). Must not:
configure TLS material (keys.tls) or decide anything about mail (the handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from gateway.intake.smtp.protocol import BaridSMTP
from gateway.intake.smtp.sessions import SmtpShared


@dataclass
class Listener:
    name: str
    server: asyncio.Server
    port: int
    shared: SmtpShared


async def start_listener(
    name: str,
    sock: socket.socket,
    handler: Any,
    *,
    hostname: str,
    tls_context: ssl.SSLContext,
    implicit_tls: bool,
    max_message_size: int,
    shared: SmtpShared,
    protocol: type[BaridSMTP] = BaridSMTP,
) -> Listener:
    loop = asyncio.get_running_loop()

    def factory() -> BaridSMTP:
        return protocol(
            handler,
            hostname=hostname,
            tls_context=tls_context,
            implicit_tls=implicit_tls,
            max_message_size=max_message_size,
            shared=shared,
            listener=name,
        )

    server = await loop.create_server(
        factory,
        sock=sock,
        ssl=tls_context if implicit_tls else None,
        ssl_handshake_timeout=shared.limits.tls_handshake_timeout if implicit_tls else None,
    )
    return Listener(name, server, int(sock.getsockname()[1]), shared)


async def stop_listeners(listeners: list[Listener], grace: float) -> None:
    """Stop accepting; then the graceful stop of every group (SmtpShared.shutdown).

    Idle sessions get `421 4.3.2` at once; a message being received has `grace`
    seconds to finish (and gets its reply), then every session left is told
    `421 4.3.2` and closed. Nothing is lost: nothing is acknowledged before it
    is committed.
    """
    for listener in listeners:
        listener.server.close()
    groups = {id(listener.shared): listener.shared for listener in listeners}
    await asyncio.gather(*(shared.shutdown(grace) for shared in groups.values()))
    for listener in listeners:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await listener.server.wait_closed()
