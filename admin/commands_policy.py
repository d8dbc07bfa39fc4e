"""`barid policy check|explain|test|reload`."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    del cli
