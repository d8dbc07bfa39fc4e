"""`barid demo`'s whole loop with the commands it prints: swaks sends the signed
sample letter, curl reads it as the recipient and the sender reads the receipt."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
from collections.abc import Callable
from typing import Any

from admin.demo import LETTER_TO, DemoSummary


def run(command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(shlex.split(command), capture_output=True, timeout=60)


async def test_printed_commands_send_read_and_show_receipts(
    live: Any, need_tool: Callable[[str], str]
) -> None:
    need_tool("swaks")
    need_tool("curl")
    summary = DemoSummary(
        data_dir=live.data,
        http_url="http://127.0.0.1",
        submission_port=live.port,
        imap_port=live.imap_port,
        employees=list(live.credentials.values()),
    )
    commands = summary.loop_commands()
    assert "--tls-verify" in commands["send"]  # the certificate is checked, not just used
    sent = await asyncio.to_thread(run, commands["send"])
    assert sent.returncode == 0, sent.stdout.decode()[-2000:]
    assert b"250 2.0.0 Accepted MOH/" in sent.stdout
    await live.settle()
    read = await asyncio.to_thread(run, commands["read"])
    assert read.returncode == 0, read.stderr.decode()
    assert b"Barid-Registry: MOH/" in read.stdout and b"letter.pdf" in read.stdout
    access = await asyncio.to_thread(run, commands["access"])  # as printed, from any shell
    assert access.returncode == 0, access.stderr.decode()
    assert b"MOH/" in access.stdout and LETTER_TO.encode() in access.stdout
    receipt = await asyncio.to_thread(run, commands["receipts"])
    assert receipt.returncode == 0, receipt.stderr.decode()
    assert b"Barid-Receipt: delivery" in receipt.stdout
    assert json.dumps(summary.as_dict())  # the --json form carries the same commands
