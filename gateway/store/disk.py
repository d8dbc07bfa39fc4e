"""The free-space check behind `452 4.3.1`: is there room on the data directory's filesystem.

Owns: `free_space_ok`. Must not: decide the threshold (the configuration does)
or touch the database.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("barid.store")


def free_space_ok(path: str | os.PathLike[str], min_free_bytes: int) -> bool:
    """True when the filesystem holding `path` has at least `min_free_bytes` free for us.

    For the `452 4.3.1` reply. A path that cannot be examined counts as not ok,
    so a broken data directory refuses mail temporarily instead of losing it.
    """
    try:
        info = os.statvfs(Path(path))
    except OSError as exc:
        log.warning("cannot examine free space", extra={"errno": exc.errno})
        return False
    return info.f_bavail * info.f_frsize >= min_free_bytes
