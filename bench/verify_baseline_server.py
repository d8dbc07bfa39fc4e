"""A bare Starlette app under uvicorn: the baseline server of bench/bench_verify.py.

`GET /api/v1/verify/{token}` answers a constant JSON verdict (the shape and about
the size of Barid's "valid" answer) without looking at the token; `/healthz`
answers `{"status": "ok"}`. Uvicorn is configured as `barid serve` configures it
(no access log, no lifespan, no server header, the same HTTP implementation),
on one asyncio loop in its own process.

Run from the repository root (the benchmark starts it itself):

    .venv/bin/python -m bench.verify_baseline_server --port 8081

Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

VERDICT: dict[str, Any] = {
    "status": "valid",
    "problem": None,
    "registry": "MOH-2026-000001",
    "agency": {"code": "MOH", "name_en": "Ministry of Health", "name_ar": "وزارة الصحة"},
    "issued_at": "2026-03-01T09:30:00Z",
    "sender": {"name_en": "Karim Abbas", "name_ar": "كريم عباس"},
    "documents": [{"name": "letter-0000.pdf", "sha256": "0" * 64}],
    "revoked": None,
    "key_id": "bench",
}
HEADERS = {"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}


async def verify(_request: Request) -> Response:
    return JSONResponse(VERDICT, headers=HEADERS)


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = Starlette(routes=[Route("/api/v1/verify/{token}", verify), Route("/healthz", healthz)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        log_level="warning",
        lifespan="off",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
