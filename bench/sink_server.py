"""A stock aiosmtpd sink: the baseline server of bench/bench_submission.py.

aiosmtpd's own `SMTP` class, unmodified (its line-by-line DATA reader included),
on one asyncio loop in its own process: STARTTLS with the given certificate,
AUTH (PLAIN, LOGIN) required and only after STARTTLS, any credentials
accepted, and every message answered `250 OK` without being looked at.

Run from the repository root (the benchmark starts it itself):

    .venv/bin/python -m bench.sink_server --port 2526 --cert D/tls/cert.pem --key D/tls/key.pem

Prints `ready <port>` on stdout once it listens; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session


class SinkHandler:
    """Accepts every message; keeps nothing."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


def accept_any(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
               auth_data: Any) -> AuthResult:  # fmt: skip
    return AuthResult(success=True)


async def serve(host: str, port: int, tls: ssl.SSLContext) -> None:
    loop = asyncio.get_running_loop()
    handler = SinkHandler()

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="sink.localhost",
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=accept_any,
        )

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # one line per session otherwise
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    asyncio.run(serve(args.host, args.port, tls))


if __name__ == "__main__":
    main()
