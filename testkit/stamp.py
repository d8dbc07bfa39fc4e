"""Sample input for the stamping tests: a plain CRLF message with an attachment and
a `Submission` from the same sender, at a fixed issue time."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os

from gateway.model.message import Document, Recipient, Submission
from policies.directory import Clearance

PUBLIC_URL = "https://verify.health-ministry.gov.xx"  # 37 characters
SENDER = "ahmad.ali@moh.gov.xx"
SENDER_CODE = "MOH-000042-K"
ISSUED_AT = dt.datetime(2025, 3, 1, 10, 15, 30, 123456, tzinfo=dt.UTC)


def plain_original(body_size: int = 1000) -> bytes:
    """A simple CRLF message with a base64 attachment of about `body_size` bytes."""
    payload = base64.encodebytes(os.urandom(body_size * 3 // 4)).replace(b"\n", b"\r\n")
    return (
        (
            f"From: Ahmad Ali <{SENDER}>\r\n"
            "To: finance@mof.gov.xx\r\n"
            "Subject: Quarterly report\r\n"
            "Message-ID: <q1.report@moh.gov.xx>\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n'
            "\r\n"
            "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            '--b1\r\nContent-Type: application/pdf; name="report.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + payload
        + b"--b1--\r\n"
    )


def make_submission(
    raw: bytes,
    documents: tuple[tuple[str, bytes], ...] = (("report.pdf", b"%PDF-1.7 demo"),),
    recipients: tuple[str, ...] = ("finance@mof.gov.xx",),
    subject: str = "Quarterly report",
    classification: Clearance = Clearance.INTERNAL,
    message_id: str = "<q1.report@moh.gov.xx>",
) -> Submission:
    return Submission(
        sender_address=SENDER,
        sender_code=SENDER_CODE,
        sender_agency="MOH",
        sender_name_en="Ahmad Ali",
        sender_name_ar="أحمد علي",
        agency_name_en="Ministry of Health",
        agency_name_ar="وزارة الصحة",
        classification=classification,
        subject=subject,
        raw=raw,
        documents=tuple(
            Document(name, "application/pdf", data, hashlib.sha256(data).hexdigest())
            for name, data in documents
        ),
        recipients=tuple(Recipient(address, local=True) for address in recipients),
        received_at=ISSUED_AT,
        message_id=message_id,
    )
