"""Fixtures for the receipt tests: gateway keys (made once), a DKIM signer and resolver, facts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.delivery.receipts import ReceiptFacts
from gateway.stamping import DkimSigner
from keys.dkim_dns import dkim_records
from keys.gateway_keys import GatewayKeys, default_keys_dir, ensure_gateway_keys, load_gateway_keys
from testkit.receipts import SELECTOR_PREFIX, SENDER_DOMAIN, make_facts


@pytest.fixture(scope="session")
def receipt_keys(tmp_path_factory: pytest.TempPathFactory) -> GatewayKeys:
    directory = default_keys_dir(tmp_path_factory.mktemp("receiptkeys"))
    ensure_gateway_keys(directory)
    return load_gateway_keys(directory)


@pytest.fixture(scope="session")
def receipt_signer(receipt_keys: GatewayKeys) -> DkimSigner:
    return DkimSigner(receipt_keys, SENDER_DOMAIN, SELECTOR_PREFIX)


@pytest.fixture(scope="session")
def receipt_dnsfunc(receipt_keys: GatewayKeys) -> Callable[..., bytes | None]:
    """A resolver answering only with the records `barid dkim dns` would publish."""
    records = {
        f"{r.name}.".encode(): r.value.encode()
        for r in dkim_records(receipt_keys, SELECTOR_PREFIX, SENDER_DOMAIN)
    }

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return lookup


@pytest.fixture(scope="session")
def facts_factory() -> Callable[..., ReceiptFacts]:
    """`make_facts(kind, **changes)`: consistent facts of one kind, with overrides."""
    return make_facts
