"""Which copies carry marked PDFs: confidential and secret by default, an agency's own
list from [marking], an internal message's PDF not by default; a PDF that cannot be marked is
carried only in the original."""

from __future__ import annotations

import pytest

from gateway.config.marking import MarkingSettings
from gateway.stamping import TRACE_KEY_PURPOSE
from gateway.stamping.stamper import Stamper
from keys.gateway_keys import GatewayKeys
from policies.directory import Clearance
from testkit.pdfs import original_with_pdf, sample_pdf
from testkit.stamp import ISSUED_AT, make_submission


def _copy(keys: GatewayKeys, classification: Clearance, document: bytes,
          settings: MarkingSettings | None = None) -> bytes:  # fmt: skip
    policy = (settings or MarkingSettings()).policy()
    stamper = Stamper(keys, "https://verify.example", keys.derive(TRACE_KEY_PURPOSE), policy)
    raw = original_with_pdf("a@moh.gov.xx", document, "report.pdf")
    sub = make_submission(raw, (("report.pdf", document),), classification=classification)
    copy = stamper.stamp(sub, "MOH/2025/000042", ISSUED_AT).copies[0]
    return copy.assemble(raw)


@pytest.mark.parametrize("level", list(Clearance))
def test_default_marks_confidential_and_secret(gateway_keys: GatewayKeys, level: Clearance) -> None:
    document = sample_pdf(1)
    raw = _copy(gateway_keys, level, document)
    marked = level >= Clearance.CONFIDENTIAL
    assert (b"Content-Description: Marked reading copy" in raw) is marked


def test_agency_override(gateway_keys: GatewayKeys) -> None:
    document = sample_pdf(1)
    off = MarkingSettings(agencies="MOH=none")
    assert b"Marked reading copy" not in _copy(gateway_keys, Clearance.SECRET, document, off)
    on = MarkingSettings(classifications="none", agencies="MOH=internal")
    assert b"Marked reading copy" in _copy(gateway_keys, Clearance.INTERNAL, document, on)
    with pytest.raises(ValueError):
        MarkingSettings(agencies="moh=secret")
    with pytest.raises(ValueError):
        MarkingSettings(classifications="top-secret")


def test_unreadable_pdf_is_not_marked(gateway_keys: GatewayKeys) -> None:
    raw = _copy(gateway_keys, Clearance.SECRET, b"%PDF-1.7 not really")
    assert b"Marked reading copy" not in raw
