"""Checks a plain `pip install .` (no extras) on the code paths that import lazily.

Run with the plain install's interpreter, outside the checkout, by `.ci/run`:
dkimpy imports its Ed25519 support (PyNaCl) only when an Ed25519 key is used, so
a missing runtime dependency there shows only when a peer's records are loaded and
a message is signed and verified with each key. Exits non-zero with the reason.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gateway
from gateway.federation.dkim_check import load_dkim_records, verify_transfer
from gateway.stamping.dkim import DkimSigner
from keys.dkim_dns import dkim_dns_records
from keys.gateway_keys import ensure_gateway_keys, load_gateway_keys

DOMAIN = "region.gov.example"
MESSAGE = (
    b"From: Minister <minister@region.gov.example>\r\n"
    b"To: clerk@central.gov.example\r\n"
    b"Subject: plain install check\r\n"
    b"Barid-Registry: REG/2026/000001\r\n"
    b"\r\n"
    b"Signed by each DKIM key in turn.\r\n"
)


def main() -> int:
    here = Path(gateway.__file__).resolve().parent
    if "site-packages" not in here.parts:
        print(f"run this outside the checkout: gateway imported from {here}, not the install")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        keys_dir = Path(tmp) / "keys"
        ensure_gateway_keys(keys_dir)
        keys = load_gateway_keys(keys_dir)
        records_file = Path(tmp) / "region.dkim"
        records_file.write_text("\n".join(dkim_dns_records(keys, "barid", DOMAIN)) + "\n")
        records = load_dkim_records(records_file)  # validates each record with dkimpy
        signed = DkimSigner(keys, DOMAIN, "barid").signed(MESSAGE)
        for algorithm in ("rsa", "ed25519"):
            only = {name: value for name, value in records.items() if f"-{algorithm}." in name}
            if len(only) != 1:
                print(f"expected one {algorithm} record, found {sorted(records)}")
                return 1
            verdict = verify_transfer(
                signed, domains=[DOMAIN], records=only, required_headers=["barid-registry"]
            )
            if not verdict.ok:
                print(f"{algorithm} DKIM signature did not verify: {verdict.reason}")
                return 1
            print(f"{algorithm}: signed and verified ({verdict.selector})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
