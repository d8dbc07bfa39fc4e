"""Coverage-guided fuzzing of the same targets with atheris, where it installs
(`pip install atheris`; it needs a clang-built CPython on some systems):

    .venv/bin/python -m testkit.fuzz_atheris imap -max_total_time=600
    .venv/bin/python -m testkit.fuzz_atheris mime -max_total_time=600 -rss_limit_mb=4096
    .venv/bin/python -m testkit.fuzz_atheris policy -max_total_time=600

Any exception a target raises is a crash: atheris stops and writes the input
(crash-<hash>) to the current directory; make it a regression test.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["gateway", "policies", "pymap", "testkit.fuzz"]):
    from testkit import fuzz as fuzz_targets

TARGETS = {
    "imap": fuzz_targets.imap_command,
    "mime": fuzz_targets.mime,
    "policy": fuzz_targets.policy,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(TARGETS)} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]

    def one(data: bytes) -> None:
        target(data)

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
