"""The service-layer tests' world (tests/admin/services/use_cases): the four actors,
the seeded directory with two accepted messages and their queue entries, and
certificates.

MOF (ministry) > MOF-TAX (directorate) is the subtree of the scoped actors;
MOH (ministry) lies outside it. One message was issued by MOF-TAX, one by MOH.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from admin.context import App
from admin.services import directory, employees
from admin.services.actor import Actor, Role
from gateway.model.message import Document, Recipient, Stamp, StampedCopy, Submission
from gateway.store import audit
from gateway.store.access_trail import ACCESS_ACTION
from gateway.store.db import transaction
from gateway.store.messages import MessageStore
from gateway.store.queue import QueueAdmin
from gateway.verification.radar import Alert, audit_alerts
from policies.directory import Clearance

ADMIN = Actor("root@mof.gov.example", Role.SYSTEM_ADMIN, client="192.0.2.1", channel="api")
MOF_ADMIN = Actor("boss@mof.gov.example", Role.AGENCY_ADMIN, agency="MOF", client="192.0.2.2")
AUDITOR = Actor("watch@moh.gov.example", Role.SECURITY_AUDITOR, client="192.0.2.3")
MOF_REGISTRAR = Actor("reg@mof.gov.example", Role.REGISTRAR, agency="MOF", client="192.0.2.4")
ACTORS = {"system-admin": ADMIN, "agency-admin": MOF_ADMIN, "auditor": AUDITOR,
          "registrar": MOF_REGISTRAR}  # fmt: skip

TAX_CLERK = "clerk@tax.mof.gov.example"
TAX_OTHER = "other@tax.mof.gov.example"
MOH_DOCTOR = "doctor@moh.gov.example"
MOH_NURSE = "nurse@moh.gov.example"
PASSWORD = SecretStr("correct horse battery staple 42")


@dataclass
class World:
    app: App
    data: Path
    tax_message: str  # registry number of the message MOF-TAX issued
    moh_message: str
    tax_entry: int  # its delivery queue entry
    moh_entry: int
    alert: int  # the audit event id of an open alert (a forged-token spike)


def ca_pem(name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def person_cert(address: str) -> tuple[bytes, str]:
    """(PEM, SHA-256 fingerprint) of a self-signed S/MIME certificate naming `address`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return pem, cert.fingerprint(hashes.SHA256()).hex().upper()


def _submission(sender: str, agency: str, recipient: str) -> Submission:
    doc = os.urandom(256)
    raw = b"From: " + sender.encode() + b"\r\nSubject: x\r\n\r\nconfidential body\r\n"
    return Submission(
        sender_address=sender,
        sender_code=f"{agency}-000001-X",
        sender_agency=agency,
        sender_name_en="Sender",
        sender_name_ar="المرسل",
        agency_name_en="Agency",
        agency_name_ar="الجهة",
        classification=Clearance.INTERNAL,
        subject="a subject never shown",
        raw=raw,
        documents=(
            Document("letter.pdf", "application/pdf", doc, hashlib.sha256(doc).hexdigest()),
        ),
        recipients=(Recipient(recipient, True),),
        received_at=dt.datetime.now(dt.UTC),
        client_address="192.0.2.10",
    )


def _stamper(sub: Submission) -> Callable[[str, dt.datetime], Stamp]:
    def stamp(registry: str, issued_at: dt.datetime) -> Stamp:
        copies = tuple(
            StampedCopy(
                recipient=r.address,
                trace_code=secrets.token_hex(8),
                prefix=f"PREFIX {registry}\r\n".encode(),
                suffix=b"\r\nSUFFIX\r\n",
            )
            for r in sub.recipients
        )
        return Stamp(registry, issued_at, "tok-" + registry, "https://v.example/v/t", copies)

    return stamp


async def accept(app: App, sender: str, agency: str, recipient: str) -> str:
    store = MessageStore(app.sessions, app.keys.master_key, app.audit_key)
    try:
        sub = _submission(sender, agency, recipient)
        accepted = await store.accept(sub, _stamper(sub), actor="smtp:submission")
    finally:
        await store.close()
    return accepted.registry


async def seed(app: App) -> None:
    add = directory.AgencyAdd
    for data in [
        add(code="MOF", name_en="Finance", kind="ministry", domain="mof.gov.example"),
        add(
            code="MOF-TAX",
            name_en="Tax",
            kind="directorate",
            domain="tax.mof.gov.example",
            parent="MOF",
        ),
        add(code="MOH", name_en="Health", kind="ministry", domain="moh.gov.example"),
    ]:
        await directory.add_agency(ADMIN, app, data)
    for address, agency in [
        (TAX_CLERK, "MOF-TAX"),
        (TAX_OTHER, "MOF-TAX"),
        (MOH_DOCTOR, "MOH"),
        (MOH_NURSE, "MOH"),
    ]:
        person = employees.EmployeeAdd(address=address, agency=agency, name_en="Person")
        await employees.add_employee(ADMIN, app, person)


def access_event(reader: str, registry: str) -> audit.Event:
    details = {"trace": None, "copy": "recipient", "protocol": "imaps", "client": "127.0.0.1",
               "mailbox": "INBOX", "uid": 1, "items": ["BODY[]"]}  # fmt: skip
    return audit.Event(actor=reader, action=ACCESS_ACTION, target=registry, details=details)


async def raise_alert(app: App) -> int:
    """A forged-token spike written by the verification radar's own audit sink; its id."""
    alert = Alert("forgery-spike", 101, 600, ("203.0.113.7", "203.0.113.8"))
    await audit_alerts(app.sessions, app.audit_key)(alert)
    async with app.sessions() as session:
        return await audit.chain_length(session)


async def populate(app: App, data: Path) -> World:
    """`seed`, then two accepted messages (one per side of the scope line), their queue
    entries, three access events and an open alert: the world every role is tried
    against."""
    await seed(app)
    tax = await accept(app, TAX_CLERK, "MOF-TAX", MOH_DOCTOR)
    moh = await accept(app, MOH_DOCTOR, "MOH", TAX_CLERK)
    entries = {e.registry: e.id for e in await QueueAdmin(app.sessions, app.audit_key).list()}
    async with transaction(app.sessions) as session:
        await audit.append_many(
            session,
            app.audit_key,
            [
                access_event(MOH_DOCTOR, tax),  # an outsider reads the subtree's message
                access_event(TAX_CLERK, moh),  # an insider reads an outside message
                access_event(MOH_NURSE, moh),  # nothing to do with the subtree
            ],
        )
    alert = await raise_alert(app)
    return World(app, data, tax, moh, entries[tax], entries[moh], alert)
