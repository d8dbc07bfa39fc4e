"""Binding and running the SMTP listeners on the gateway's loop.

Owns: one asyncio server per listener (submission with STARTTLS, SMTPS with
implicit TLS, transfer with STARTTLS and client certificates), sharing one
connection counter. Must not: configure TLS
material (keys.tls) or decide anything about mail (the handler).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from gateway.smtp.protocol import SESSION_TIMEOUT_SECONDS, BaridSMTP, ConnectionCounter


@dataclass
class Listener:
    name: str
    server: asyncio.Server
    port: int


async def start_listener(
    name: str,
    sock: socket.socket,
    handler: Any,
    *,
    hostname: str,
    tls_context: ssl.SSLContext,
    implicit_tls: bool,
    max_message_size: int,
    counter: ConnectionCounter,
    idle_timeout: float = SESSION_TIMEOUT_SECONDS,
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
            counter=counter,
            listener=name,
            timeout=idle_timeout,
        )

    server = await loop.create_server(
        factory,
        sock=sock,
        ssl=tls_context if implicit_tls else None,
        ssl_handshake_timeout=30.0 if implicit_tls else None,
    )
    return Listener(name, server, int(sock.getsockname()[1]))


async def stop_listeners(listeners: list[Listener], grace: float) -> None:
    """Stop accepting; wait up to `grace` seconds for the servers to close.

    A session still open after that ends with the loop; nothing is lost, since
    nothing is acknowledged before it is committed.
    """
    for listener in listeners:
        listener.server.close()
    if listeners:
        try:
            async with asyncio.timeout(grace):
                await asyncio.gather(*(listener.server.wait_closed() for listener in listeners))
        except TimeoutError:
            pass
