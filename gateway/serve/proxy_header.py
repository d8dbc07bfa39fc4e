"""The PROXY protocol header (HAProxy's, versions 1 and 2): recognising and parsing it.

Owns: `parse(data)`: from the first bytes a trusted load balancer sent, either
"need more bytes", or the header's length and the client address it carries
(None for a v2 LOCAL command, e.g. the balancer's own health check, and for
v1 UNKNOWN or a v2 address family other than TCP over IPv4/IPv6: the
connection's own address stands). Bounded: a v1 header is at most 107 bytes
(the specification's limit), a v2 header at most `MAX_V2_BYTES`. Must not: read
sockets (gateway.serve.proxy_listener does) or log the bytes it is handed.
Failure behaviour: `ProxyHeaderError` with a short reason that never quotes the
data.

Our own parser, not the `proxy-protocol` library's: the header is read from the
accepted socket before any asyncio transport exists (so implicit TLS, STARTTLS
and uvicorn work unchanged above it), and that library reads from its own
stream objects.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX_BYTES = 107
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version and command, family, length
MAX_V2_BYTES = V2_FIXED + 4096  # addresses and a few TLVs; HAProxy sends far less
_V2_INET = struct.Struct("!4s4sHH")
_V2_INET6 = struct.Struct("!16s16sHH")


class ProxyHeaderError(Exception):
    """The first bytes are not a valid PROXY header; the reason quotes no data."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    length: int  # bytes of the header, to be consumed from the connection
    client: tuple[str, int] | None  # None: keep the connection's own address
    version: int


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of `data`, or None when more bytes are needed."""
    if data[: len(V2_SIGNATURE)] == V2_SIGNATURE[: len(data)]:
        return _parse_v2(data)
    if data[: len(V1_PREFIX)] == V1_PREFIX[: len(data)]:
        return _parse_v1(data)
    raise ProxyHeaderError("no PROXY protocol header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX_BYTES)
    if end < 0:
        if len(data) >= V1_MAX_BYTES:
            raise ProxyHeaderError("v1 header too long")
        return None
    try:
        fields = data[:end].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("v1 header not ASCII") from None
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(end + 2, None, 1)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("v1 header malformed")
    source = _address(fields[2], 4 if fields[1] == "TCP4" else 6)
    _address(fields[3], 4 if fields[1] == "TCP4" else 6)
    port = _port(fields[4])
    _port(fields[5])
    return ProxyHeader(end + 2, (source, port), 1)


def _address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError("v1 address malformed") from None
    if address.version != version:
        raise ProxyHeaderError("v1 address of the wrong family")
    return str(address)


def _port(text: str) -> int:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError("v1 port malformed")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError("v1 port out of range")
    return port


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < V2_FIXED:
        return None
    version_command, family, size = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if version_command >> 4 != 2:
        raise ProxyHeaderError("v2 header of an unknown version")
    command = version_command & 0x0F
    if command not in (0, 1):
        raise ProxyHeaderError("v2 header with an unknown command")
    length = V2_FIXED + size
    if length > MAX_V2_BYTES:
        raise ProxyHeaderError("v2 header too long")
    if len(data) < length:
        return None
    if command == 0:  # LOCAL: the balancer speaks for itself
        return ProxyHeader(length, None, 2)
    body = data[V2_FIXED:length]
    if family == 0x11:  # TCP over IPv4
        layout, make = _V2_INET, ipaddress.IPv4Address
    elif family == 0x21:  # TCP over IPv6
        layout, make = _V2_INET6, ipaddress.IPv6Address  # type: ignore[assignment]
    else:  # UNSPEC, UDP, UNIX: no client address we can use
        return ProxyHeader(length, None, 2)
    if len(body) < layout.size:
        raise ProxyHeaderError("v2 addresses truncated")
    source, _, port, _ = layout.unpack_from(body)
    return ProxyHeader(length, (str(make(source)), port), 2)
