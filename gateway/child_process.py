"""Starting a Python child process of the gateway (the parse process of delivery,
the check processes of submission).

Owns: `spawn_module`: `python -m MODULE ARGS` with pipes on stdin and stdout and
this process's import path, so the child imports the same code the parent runs
(an editable checkout or an installed package alike). Nothing is forked: the
child shares no event loop, database connection or key with the parent. Must
not: speak the child's protocol (each pool frames its own requests).
"""

from __future__ import annotations

import asyncio
import os
import sys


async def spawn_module(
    module: str, *args: str, new_session: bool = False
) -> asyncio.subprocess.Process:
    """The started child; `new_session` puts it in a session of its own, so a
    terminal's Ctrl-C reaches only the parent, which then stops the child."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=new_session,
    )
