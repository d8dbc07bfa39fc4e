"""Table definitions (SQLAlchemy 2 declarative). Migrations mirror these exactly.

Owns: the schema. Must not: hold behaviour beyond simple conversions; the
directory and audit modules own the rules for changing rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
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


class AuditHead(Base):
    """One row: the newest event's id and MAC, so deleting the tail is detected."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_mac: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))


class Meta(Base):
    """Small counters, e.g. `directory_version`, bumped on every directory change."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
