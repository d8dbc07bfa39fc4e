"""A bare mutual-TLS SMTP sink: the "peer" of bench/bench_relay.py's sink case.

aiosmtpd's own `SMTP` class on one asyncio loop in its own process, with the TLS
context of Barid's transfer port (`gateway.federation.trust.transfer_server_context`):
our certificate, a client certificate required and verified against the pinned
certificate(s) in `--trust`. STARTTLS is required before MAIL; every message is
answered `250 OK` without being looked at (no DKIM check, no policy, no storage).

Run from the repository root (the benchmark starts it itself):

    .venv/bin/python -m bench.relay_sink --cert R/tls/cert.pem --key R/tls/key.pem \
        --trust C/tls/cert.pem [--port N]  # default: a free port

Prints `ready <port>` on stdout once it listens; on SIGTERM or SIGINT prints
`received <messages> <bytes>` and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.federation.trust import load_peer_trust, transfer_server_context


class CountingSink:
    """Accepts every message; counts messages and bytes, keeps nothing."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages += 1
        content = envelope.original_content or b""
        self.bytes += len(content)
        return "250 OK"


async def serve(host: str, port: int, tls: ssl.SSLContext) -> None:
    loop = asyncio.get_running_loop()
    handler = CountingSink()

    def factory() -> SMTP:
        return SMTP(handler, hostname="sink.localhost", tls_context=tls, require_starttls=True)

    server = await loop.create_server(factory, host=host, port=port, backlog=512)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        print(f"received {handler.messages} {handler.bytes}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--trust", required=True, type=Path, help="the client's certificate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # one line per session otherwise
    trust = load_peer_trust("central", args.trust, [], "localhost")
    tls = transfer_server_context(args.cert, args.key, [trust])
    asyncio.run(serve(args.host, args.port, tls))


if __name__ == "__main__":
    main()
