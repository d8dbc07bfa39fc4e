"""Table definitions (SQLAlchemy 2 declarative). Migrations mirror these exactly.

Owns: the schema. Must not: hold behaviour beyond simple conversions; the
directory and audit modules own the rules for changing rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    # The code without hyphens: unique, so that no two codes differ only in hyphens.
    code_key: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(300))
    name_ar: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))
    domain: Mapped[str] = mapped_column(String(253), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    # Next employee serial to issue; bumped in the same transaction as the insert,
    # so serials are gap-free per agency.
    next_employee_serial: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[str] = mapped_column(String(32))


class Employee(Base):
    __tablename__ = "employees"
    __table_args__ = (UniqueConstraint("agency_id", "serial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    name_en: Mapped[str] = mapped_column(String(300))
    name_ar: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(64))
    clearance: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="active")
    serial: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(96), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    encryption_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))


class SigningIdentity(Base):
    __tablename__ = "signing_identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # openpgp | x509
    fingerprint: Mapped[str] = mapped_column(String(128), unique=True)
    material: Mapped[str] = mapped_column(Text)  # the public key / certificate as imported
    created_at: Mapped[str] = mapped_column(String(32))


class AgencyCa(Base):
    __tablename__ = "agency_cas"
    __table_args__ = (UniqueConstraint("agency_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(1000))
    pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))


class AuditEvent(Base):
    """Append-only. `mac` = HMAC(key, prev_mac || canonical(event)); see audit.py."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(400))
    outcome: Mapped[str] = mapped_column(String(32))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_mac: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
    node: Mapped[str | None] = mapped_column(String(64), nullable=True)  # server.node_id


class AuditHead(Base):
    """One row: the newest event's id and MAC, so deleting the tail is detected.

    `mac` authenticates (last_id, last_mac, count, seq, sealed_at) with the audit
    key; NULL only on a database not sealed since the head MAC was introduced."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_mac: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    sealed_at: Mapped[str | None] = mapped_column(String(32), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditCheckpoint(Base):
    """A signed statement that event `event_id` had MAC `event_mac` and the chain
    held `count` events; signed with the gateway's Ed25519 key `key_id`."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    event_mac: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    at: Mapped[str] = mapped_column(String(32))
    node: Mapped[str] = mapped_column(String(253))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))


class Meta(Base):
    """Small counters, e.g. `directory_version`, bumped on every directory change."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))


# ---------------------------------------------------------------- accepted messages

BigId = BigInteger().with_variant(Integer, "sqlite")


class RegistryCounter(Base):
    """Next registry serial per (issuing agency, year); see registry.allocate_serials."""

    __tablename__ = "registry_counters"

    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_serial: Mapped[int] = mapped_column(Integer)


class Blob(Base):
    """Encrypted bytes (AES-256-GCM, per-blob data key wrapped by the KEK); see blobs.py."""

    __tablename__ = "blobs"
    __table_args__ = (Index("ix_blobs_location", "location"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, bound into the AAD
    purpose: Mapped[str] = mapped_column(String(32))  # bound into the AAD
    sha256: Mapped[str] = mapped_column(String(64))  # of the plaintext
    size: Mapped[int] = mapped_column(BigId)  # of the plaintext
    kek_id: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)  # empty when `location` is set
    created_at: Mapped[str] = mapped_column(String(32))
    # Outside the database (gateway.store.blobstore): "<scheme>:<key>", and the
    # SHA-256 of the stored ciphertext object. NULL: the ciphertext is in the row.
    location: Mapped[str | None] = mapped_column(String(200), nullable=True, default=None)
    location_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)


class Message(Base):
    """One accepted official message; `registry` is <AGENCY>/<YEAR>/<serial>."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("status IN ('valid', 'revoked')", name="status"),
        # The policy's rate fact: a sender's messages of the last hour.
        Index("ix_messages_sender_address_accepted_at", "sender_address", "accepted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The attribute is not called `registry`: Declarative reserves that name.
    registry_number: Mapped[str] = mapped_column("registry", String(100), unique=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    sender_employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    sender_address: Mapped[str] = mapped_column(String(320))
    classification: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigId)
    sha256: Mapped[str] = mapped_column(String(64))  # of the original as received
    original_blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    token: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(32))  # the token's signing key
    accepted_at: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="valid")
    revoked_at: Mapped[str | None] = mapped_column(String(32))
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    client_address: Mapped[str] = mapped_column(String(100))


class MessageDocument(Base):
    """A signed document of a message: facts only; the bytes live in the original."""

    __tablename__ = "message_documents"
    __table_args__ = (UniqueConstraint("message_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # order in the message, from 0
    name: Mapped[str] = mapped_column(String(1000))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigId)
    sha256: Mapped[str] = mapped_column(String(64), index=True)


class MessageCopy(Base):
    """One recipient's copy: prefix + original + suffix, and its trace code."""

    __tablename__ = "message_copies"
    __table_args__ = (UniqueConstraint("message_id", "recipient"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    recipient_local: Mapped[bool] = mapped_column(Boolean)
    peer: Mapped[str | None] = mapped_column(String(255))
    trace_code: Mapped[str] = mapped_column(String(64), unique=True)
    prefix_blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    suffix_blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))


class DeliveryQueueEntry(Base):
    """The durable per-recipient delivery queue: one entry per copy."""

    __tablename__ = "delivery_queue"
    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'delivering', 'delivered', 'failed', 'held')", name="state"
        ),
        Index("ix_delivery_queue_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    copy_id: Mapped[int] = mapped_column(ForeignKey("message_copies.id"), unique=True)
    target: Mapped[str] = mapped_column(String(300))  # gateway.model.target's text form
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[str] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))
    delivered_at: Mapped[str | None] = mapped_column(String(32))


# ---------------------------------------------------------------- mailboxes (IMAP)


class Mailbox(Base):
    """One IMAP folder of one employee. `next_uid` and `highest_modseq` only grow;
    both are advanced by one UPDATE ... RETURNING (see gateway.store.mailbox.store)."""

    __tablename__ = "mailboxes"
    # AUTOINCREMENT: SQLite must never give a deleted mailbox's id to a new one.
    __table_args__ = (UniqueConstraint("employee_id", "name"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    special_use: Mapped[str | None] = mapped_column(String(32))  # RFC 6154, e.g. "\\Sent"
    uid_validity: Mapped[int] = mapped_column(BigId)
    next_uid: Mapped[int] = mapped_column(BigId, default=1)
    highest_modseq: Mapped[int] = mapped_column(BigId, default=0)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[str] = mapped_column(String(32))


class MailContent(Base):
    """The bytes of one stored mail: the concatenation of `parts` (JSON list of blob
    ids), plus an encrypted description (header, ENVELOPE, BODYSTRUCTURE) so a fetch
    of headers or structure never reads or parses the body."""

    __tablename__ = "mail_contents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # "copy" (a recipient's stamped copy), "original" (the sender's Sent copy),
    # "receipt", or "mail" (anything a client appended).
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigId)
    parts: Mapped[str] = mapped_column(Text)
    meta_blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    copy_id: Mapped[int | None] = mapped_column(ForeignKey("message_copies.id"), index=True)
    created_at: Mapped[str] = mapped_column(String(32))


class MailboxMessage(Base):
    """A mail in a mailbox under its UID (RFC 3501 §2.3.1.1)."""

    __tablename__ = "mailbox_messages"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "uid"),
        Index("ix_mailbox_messages_mailbox_id_modseq", "mailbox_id", "modseq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"))
    uid: Mapped[int] = mapped_column(BigId)
    content_id: Mapped[int] = mapped_column(ForeignKey("mail_contents.id"), index=True)
    flags: Mapped[str] = mapped_column(Text, default="")
    internal_date: Mapped[str] = mapped_column(String(32))
    modseq: Mapped[int] = mapped_column(BigId)
    recent: Mapped[bool] = mapped_column(Boolean, default=True)


class MailboxExpunge(Base):
    """UIDs removed from a mailbox, by modseq, so open sessions learn of them."""

    __tablename__ = "mailbox_expunges"
    __table_args__ = (Index("ix_mailbox_expunges_mailbox_id_modseq", "mailbox_id", "modseq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"))
    uid: Mapped[int] = mapped_column(BigId)
    modseq: Mapped[int] = mapped_column(BigId)


class ReceiptJob(Base):
    """A receipt owed to a sender: written with the event it reports (acceptance,
    delivery, non-delivery), rendered into the sender's Receipts folder once."""

    __tablename__ = "receipt_jobs"
    __table_args__ = (
        UniqueConstraint("message_id", "kind", "recipient"),
        CheckConstraint("kind IN ('acceptance', 'delivery', 'non-delivery')", name="kind"),
        CheckConstraint("state IN ('pending', 'done')", name="state"),
        Index("ix_receipt_jobs_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    kind: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320), default="")  # "" for acceptance
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    event_at: Mapped[str] = mapped_column(String(32))
    done_at: Mapped[str | None] = mapped_column(String(32))
    # Non-delivery by a remote server: its host name and the RFC 3463 status.
    remote_mta: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(16))


# ---------------------------------------------------------------- federation


class InboundCopy(Base):
    """A copy a federation peer transferred to one of our employees (stored in
    their INBOX as `content_id`). (peer, trace_code) is unique: a transfer the
    peer repeats after a lost reply is recognised and not stored twice."""

    __tablename__ = "inbound_copies"
    __table_args__ = (UniqueConstraint("peer", "trace_code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    peer: Mapped[str] = mapped_column(String(64))
    registry_number: Mapped[str] = mapped_column("registry", String(100), index=True)
    trace_code: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    classification: Mapped[str] = mapped_column(String(16))  # ours, after the mapping
    remote_classification: Mapped[str] = mapped_column(String(64))
    dkim_domain: Mapped[str] = mapped_column(String(253))
    content_id: Mapped[int] = mapped_column(ForeignKey("mail_contents.id"), index=True)
    received_at: Mapped[str] = mapped_column(String(32))
    client_address: Mapped[str] = mapped_column(String(100))


class RelayOutboxEntry(Base):
    """A message this gateway owes a peer that is not a copy of an accepted
    message: the signed delivery receipt for a transfer it received."""

    __tablename__ = "relay_outbox"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'delivering', 'sent', 'failed')", name="state"),
        Index("ix_relay_outbox_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    peer: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "receipt"
    registry_number: Mapped[str] = mapped_column("registry", String(100))
    mail_from: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[str] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[str | None] = mapped_column(String(32))


# ---------------------------------------------------------------- routing policy


class PolicyVersion(Base):
    """One applied routing policy: its text, hash and who applied it. Append-only;
    the newest row is the running policy of every node."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(400), index=True)  # "file:<path>", "cli", "api"
    applied_at: Mapped[str] = mapped_column(String(32))
    applied_by: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(32))
    client: Mapped[str] = mapped_column(String(100))


# ---------------------------------------------------------------- cluster-wide counters


class EdgeCounter(Base):
    """One window of a cluster-wide counter (login failures, verification radar):
    `key_hash` is a keyed hash of the counted thing, never the address or login.
    Owned by gateway.store.counters."""

    __tablename__ = "edge_counters"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


class AuditPending(Base):
    """An audit event staged on PostgreSQL while another transaction held the head:
    no chain position yet; `mac` covers the event alone. Moved into the chain, in
    `id` order, by the next transaction that holds the head (gateway.store.audit_pending)."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(400))
    outcome: Mapped[str] = mapped_column(String(32))
    details: Mapped[str] = mapped_column(Text)
    node: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))


# The management plane's accounts live in their own module on the same `Base`;
# importing it here puts them in `Base.metadata` for migrations and schema checks.
from gateway.store import admin_models as _admin_models  # noqa: E402, F401
from gateway.store import cluster_models as _cluster_models  # noqa: E402, F401
