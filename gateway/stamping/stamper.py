"""Stamping an accepted submission: token, verify URL, QR and one copy per recipient.

Owns: turning a `Submission` and its allocated registry number into a `Stamp`
(docs/CONTRACT.md §6). Must not: touch the database, the network or the clock; it runs
inside the acceptance transaction, so it is pure and fast (the QR is made once
per message; each copy only adds its cover, headers and certificate).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from gateway.model.message import Stamp, StampedCopy, Submission
from gateway.stamping.cover import (
    CERTIFICATE_NAME,
    ORIGINAL_NAME,
    CoverDocument,
    CoverFacts,
    MessageCover,
    message_cover,
)
from gateway.stamping.envelope import (
    CRLF,
    base64_lines,
    close_delimiter,
    delimiter,
    header,
    new_boundary,
    part_headers,
    subject_header,
    transfer_encoding_of,
)
from gateway.stamping.marked_copies import (
    MarkingPolicy,
    any_markable,
    marked_documents,
    marked_parts,
    marking_record,
)
from gateway.stamping.qr import (
    MAX_QR_VERSION,
    MODULE_PIXELS,
    QUIET_ZONE_MODULES,
    qr_png,
    qr_version,
)
from gateway.stamping.registry import RegistryNumber
from gateway.stamping.trace import trace_code
from keys.gateway_keys import GatewayKeys
from keys.tokens import MAX_DOCUMENTS, issue_token

CERTIFICATE_FORMAT = "barid-certificate/1"
VERIFY_PATH = "/v/"
_MSG_ID_RE = re.compile(r"^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# The longest agency code AGENCY_CODE_RE allows (keys.tokens.MAX_AGENCY_CHARS).
_LONGEST_AGENCY = "A" * 16 + "-BBBBBBBBBBBBBBBB" * 3
_PREAMBLE = b"This is a multi-part message in MIME format (RFC 2045)."


def utc_text(moment: dt.datetime) -> str:
    """ISO 8601 UTC with a Z, whole seconds: 2025-03-01T10:15:30Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_public_url(public_url: str) -> str:
    url = public_url.rstrip("/")
    if not url.startswith(("http://", "https://")) or any(ch.isspace() for ch in url):
        raise ValueError(f"http.public_url must be an http(s) URL, got {public_url!r}")
    return url


class Stamper:
    """Stamps submissions with the gateway's keys; build once, call `stamp` per message.

    `trace_key` is `keys.derive(TRACE_KEY_PURPOSE)`. The constructor checks that
    the longest possible token still fits a version 15 QR code with this
    `public_url`, so a too-long URL fails at start-up, not at acceptance.
    `marking` says which copies carry marked PDF documents (default: confidential
    and secret messages of every agency).
    """

    def __init__(
        self,
        keys: GatewayKeys,
        public_url: str,
        trace_key: bytes,
        marking: MarkingPolicy | None = None,
        *,
        current: Callable[[], GatewayKeys] | None = None,
    ) -> None:
        # `current` (gateway.serve.key_ring): the keys of the moment, so a rotation
        # on any node changes the signing key here without a restart.
        self._current = current if current is not None else (lambda: keys)
        self._marking = marking if marking is not None else MarkingPolicy()
        self._public_url = _check_public_url(public_url)
        self._trace_key = trace_key
        longest = issue_token(
            keys.signing_key,
            keys.signing_key_id,
            agency=_LONGEST_AGENCY,
            year=9999,
            serial=2**32 - 1,
            issued_at=dt.datetime(2100, 1, 1, tzinfo=dt.UTC),
            document_sha256=["00" * 32] * MAX_DOCUMENTS,
        )
        version = qr_version(self.verify_url(longest))
        if version > MAX_QR_VERSION:
            raise ValueError(
                f"http.public_url {public_url!r} is too long: verification QR codes would"
                f" need version {version} (limit {MAX_QR_VERSION})"
            )

    @property
    def _keys(self) -> GatewayKeys:
        return self._current()

    @property
    def public_url(self) -> str:
        return self._public_url

    def verify_url(self, token: str) -> str:
        """`<http.public_url>/v/<token>` (docs/CONTRACT.md §6)."""
        return f"{self._public_url}{VERIFY_PATH}{token}"

    def stamp(self, submission: Submission, registry: str, issued_at: dt.datetime) -> Stamp:
        """The stamp of one accepted message; `issued_at` is kept in whole seconds.

        Copies follow the order of `submission.recipients`. Raises ValueError
        (RegistryError, EnvelopeError, QrTooLarge, a duplicate recipient) when the
        inputs cannot be stamped; nothing is half-done, since nothing is written here.
        """
        if issued_at.tzinfo is None:
            raise ValueError("issued_at must be timezone-aware")
        issued_at = issued_at.astimezone(dt.UTC).replace(microsecond=0)
        addresses = [r.address for r in submission.recipients]
        if len(set(addresses)) != len(addresses):
            raise ValueError("a recipient is listed twice; each gets exactly one copy")
        number = RegistryNumber.parse(registry)
        registry = str(number)
        documents = submission.documents
        token = issue_token(
            self._keys.signing_key,
            self._keys.signing_key_id,
            agency=number.agency,
            year=number.year,
            serial=number.serial,
            issued_at=issued_at,
            document_sha256=[doc.sha256 for doc in documents],
        )
        verify_url = self.verify_url(token)
        png, version = qr_png(verify_url)
        qr_pixels = (4 * version + 17 + 2 * QUIET_ZONE_MODULES) * MODULE_PIXELS
        certificate = self._certificate(submission, number, issued_at, token, verify_url)
        message = _MessageLayout(submission, registry, png, qr_pixels)
        shared = CoverFacts(
            registry=registry,
            agency_code=number.agency,
            agency_name_ar=submission.agency_name_ar,
            agency_name_en=submission.agency_name_en,
            sender_name_ar=submission.sender_name_ar,
            sender_name_en=submission.sender_name_en,
            sender_code=submission.sender_code,
            recipient="",
            classification=submission.classification,
            trace_code="",
            issued_at=issued_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            verify_url=verify_url,
            documents=tuple(CoverDocument(d.name, d.sha256, len(d.data)) for d in documents),
            parts=submission.parts,
            marked=self._marking.applies(number.agency, submission.classification)
            and any_markable(documents),
        )
        cover = message_cover(shared, message.qr_cid, qr_pixels)  # once; copies fill it in
        copies: list[StampedCopy] = []
        used: set[str] = set()
        for recipient in submission.recipients:
            address = recipient.address
            attempt = 0
            code = trace_code(self._trace_key, registry, address)
            while code in used:  # probability ~ k**2 / 2**51; see gateway.stamping.trace
                attempt += 1
                code = trace_code(self._trace_key, registry, address, attempt)
            used.add(code)
            facts = dataclasses.replace(shared, recipient=address, trace_code=code)
            copy_certificate = {**certificate, "recipient": address, "trace_code": code}
            extra = b""
            if shared.marked:
                marked, unmarked = marked_documents(documents, registry, code, address, verify_url)
                copy_certificate["marking"] = marking_record(
                    copy_certificate, marked, unmarked, self._keys.signing_key
                )
                extra = marked_parts(message.mixed, marked)
            prefix, suffix = message.copy(facts, cover, issued_at, copy_certificate, extra)
            copies.append(StampedCopy(address, code, prefix, suffix))
        return Stamp(
            registry=registry,
            issued_at=issued_at,
            token=token,
            verify_url=verify_url,
            copies=tuple(copies),
            certificate=certificate,
        )

    def _certificate(
        self,
        submission: Submission,
        number: RegistryNumber,
        issued_at: dt.datetime,
        token: str,
        verify_url: str,
    ) -> dict[str, Any]:
        """certificate.json without the per-copy fields (recipient, trace_code)."""
        return {
            "format": CERTIFICATE_FORMAT,
            "registry": str(number),
            "issuing_agency": number.agency,
            "issued_at": utc_text(issued_at),
            "sender": {
                "address": submission.sender_address,
                "name_en": submission.sender_name_en,
                "name_ar": submission.sender_name_ar,
                "agency": submission.sender_agency,
                "agency_name_en": submission.agency_name_en,
                "agency_name_ar": submission.agency_name_ar,
                "code": submission.sender_code,
            },
            "classification": submission.classification.label,
            "documents": [
                {
                    "name": doc.name,
                    "content_type": doc.content_type,
                    "sha256": doc.sha256,
                    "size": len(doc.data),
                }
                for doc in submission.documents
            ],
            "original": {
                "file": ORIGINAL_NAME,
                "message_id": submission.message_id,
                "sha256": hashlib.sha256(submission.raw).hexdigest(),
                "size": len(submission.raw),
            },
            "token": token,
            "verify_url": verify_url,
            "key_id": self._keys.signing_key_id,
        }


class _MessageLayout:
    """The parts of the envelope shared by every copy of one message."""

    def __init__(self, submission: Submission, registry: str, png: bytes, qr_pixels: int) -> None:
        self.submission = submission
        self.registry = registry
        self.qr_pixels = qr_pixels
        base = new_boundary(submission.raw)
        self.mixed, self.related, self.alternative = (f"m.{base}", f"r.{base}", f"a.{base}")
        sender_domain = submission.sender_address.rpartition("@")[2]
        self.domain = sender_domain if _DOMAIN_RE.fullmatch(sender_domain) else "barid.invalid"
        self.qr_cid = f"qr.{base}@{self.domain}"
        self.qr_part = (
            delimiter(self.related)
            + part_headers(
                ("Content-Type", 'image/png; name="qr.png"'),
                ("Content-Transfer-Encoding", "base64"),
                ("Content-ID", f"<{self.qr_cid}>"),
                ("Content-Disposition", 'inline; filename="qr.png"'),
            )
            + base64_lines(png)
            + close_delimiter(self.related)
        ).removesuffix(CRLF)
        self.original_head = delimiter(self.mixed) + part_headers(
            ("Content-Type", f'message/rfc822; name="{ORIGINAL_NAME}"'),
            ("Content-Disposition", f'inline; filename="{ORIGINAL_NAME}"'),
            ("Content-Transfer-Encoding", transfer_encoding_of(submission.raw)),
        )
        sub = submission
        self.subject = subject_header(f"[{registry}] {sub.subject}")
        self.from_value = email.utils.formataddr(
            (sub.sender_name_en, sub.sender_address), charset="utf-8"
        )
        self.references = sub.message_id if _MSG_ID_RE.fullmatch(sub.message_id) else ""

    def _headers(self, facts: CoverFacts, issued_at: dt.datetime) -> bytes:
        sub = self.submission
        message_id = f"<{secrets.token_hex(12)}.{self.registry.replace('/', '.')}@{self.domain}>"
        lines = [
            header("From", self.from_value),
            header("To", facts.recipient),
            self.subject,
            header("Date", email.utils.format_datetime(issued_at)),
            header("Message-ID", message_id),
        ]
        if self.references:
            lines.append(header("References", self.references))
        lines += [
            header("MIME-Version", "1.0"),
            header("Content-Type", f'multipart/mixed; boundary="{self.mixed}"'),
            header("Barid-Registry", self.registry),
            header("Barid-Employee-Code", sub.sender_code),
            header("Barid-Trace", facts.trace_code),
            header("Barid-Verify", facts.verify_url),
            header("Barid-Classification", sub.classification.label),
        ]
        return b"".join(lines)

    def copy(
        self,
        facts: CoverFacts,
        cover: MessageCover,
        issued_at: dt.datetime,
        certificate: Mapping[str, Any],
        extra: bytes = b"",
    ) -> tuple[bytes, bytes]:
        """(prefix, suffix) of one recipient's copy; `extra` (whole parts of the
        outer multipart, such as marked documents) goes before certificate.json."""
        text, html = (
            part.encode("utf-8") for part in cover.for_copy(facts.recipient, facts.trace_code)
        )
        utf8_base64 = ("Content-Transfer-Encoding", "base64")
        prefix = b"".join(
            (
                self._headers(facts, issued_at),
                CRLF,
                _PREAMBLE,
                CRLF,
                delimiter(self.mixed),
                part_headers(
                    (
                        "Content-Type",
                        f'multipart/related; boundary="{self.related}";'
                        ' type="multipart/alternative"',
                    )
                ),
                delimiter(self.related),
                part_headers(
                    ("Content-Type", f'multipart/alternative; boundary="{self.alternative}"')
                ),
                delimiter(self.alternative),
                part_headers(("Content-Type", 'text/plain; charset="utf-8"'), utf8_base64),
                base64_lines(text),
                delimiter(self.alternative),
                part_headers(("Content-Type", 'text/html; charset="utf-8"'), utf8_base64),
                base64_lines(html),
                close_delimiter(self.alternative),
                self.qr_part,
                self.original_head,
            )
        )
        document = json.dumps(certificate, ensure_ascii=False, indent=2).encode("utf-8")
        suffix = b"".join(
            (
                extra,
                delimiter(self.mixed),
                part_headers(
                    (
                        "Content-Type",
                        f'application/json; charset="utf-8"; name="{CERTIFICATE_NAME}"',
                    ),
                    ("Content-Disposition", f'attachment; filename="{CERTIFICATE_NAME}"'),
                    ("Content-Transfer-Encoding", "base64"),
                ),
                base64_lines(document + b"\n"),
                close_delimiter(self.mixed),
            )
        )
        return prefix, suffix
