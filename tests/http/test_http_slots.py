"""The HTTP listener's fair slots, over real sockets: one address at its cap gets 503
while another address is still served."""

from __future__ import annotations

import asyncio
import socket

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.http.slots import fair_protocol
from gateway.intake.smtp.slots import SlotTable
from gateway.serve import QuietUvicorn as _Uvicorn
from gateway.serve import bind


async def _ok(_: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _first_line(port: int, source: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def test_one_address_at_its_cap_does_not_stop_another() -> None:
    import uvicorn

    table = SlotTable(limit=50, per_address=2)
    sock: socket.socket = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = Starlette(routes=[Route("/", _ok)])
    server = _Uvicorn(uvicorn.Config(app, http=fair_protocol(table), log_config=None,
                                     lifespan="off", access_log=False))  # fmt: skip
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.1)
        refused = await _first_line(port, "127.0.0.1")
        assert refused.startswith(b"HTTP/1.1 503"), refused
        assert (await _first_line(port, "127.0.0.2")).startswith(b"HTTP/1.1 200")
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient() as client:  # the slots came back
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
        await asyncio.sleep(0.3)
        assert table.open == 0
    finally:
        server.should_exit = True
        await task
