"""Checking `[server] trusted_proxies`: addresses or CIDR networks of load balancers.

Owns: the validation of that one key (a list, or a comma-separated string from the
environment). Must not: open sockets (gateway.serve.proxy_listener does).
Failure behaviour: ValueError naming the first bad entry (cut to 64 characters).
"""

from __future__ import annotations

import ipaddress
from typing import Any

TRUSTED_DOC = (
    "Load balancers (addresses or CIDR networks) whose connections to every"
    " listener must start with a PROXY protocol header (v1 or v2) giving the"
    " client's address; from other addresses no header is parsed. Empty: off."
)
TIMEOUT_DOC = "Seconds a trusted proxy has to send its PROXY header."


def networks(cls: Any, value: Any) -> Any:
    """A pydantic "before" validator: the list, each entry a valid network."""
    if isinstance(value, str):  # from the environment: comma-separated
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        for item in value:
            try:
                ipaddress.ip_network(str(item), strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {str(item)[:64]!r}") from None
    return value
