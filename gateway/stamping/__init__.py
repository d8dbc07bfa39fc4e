"""Stamping accepted official mail: registry numbers, trace codes, QR, envelopes, DKIM.

Owns: turning a checked submission into its stamp and per-recipient copies, and
DKIM-signing outgoing bytes (docs/CONTRACT.md §6). Must not: touch the database or the
network; serial allocation, storage and delivery belong to other packages.
"""

from gateway.stamping.dkim import DkimSigner
from gateway.stamping.registry import RegistryError, RegistryNumber, format_registry, parse_registry
from gateway.stamping.stamper import Stamper
from gateway.stamping.trace import TRACE_KEY_PURPOSE, trace_code

__all__ = [
    "TRACE_KEY_PURPOSE",
    "DkimSigner",
    "RegistryError",
    "RegistryNumber",
    "Stamper",
    "format_registry",
    "parse_registry",
    "trace_code",
]
