"""Tables of the management plane's accounts (DESIGN §12): role grants and credentials.

Owns: the schema of admin role grants, TOTP secrets (sealed), recovery codes and
API tokens (keyed hashes only), web sessions (id hashed) and used TOTP time-steps.
Must not: hold behaviour; admin/services/ owns the rules. Registered on the one
`Base` by gateway.store.models, so migrations and schema checks see these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, BigId

ROLE_CHECK = "role IN ('system-admin', 'agency-admin', 'security-auditor', 'registrar')"


class AdminGrant(Base):
    """A role granted to a directory employee; `scope` is the agency code or "".

    (employee, role, scope) is unique: `scope` is never NULL, so the constraint
    holds on PostgreSQL too. `agency_id` keeps the scoped agency referenced."""

    __tablename__ = "admin_grants"
    __table_args__ = (
        UniqueConstraint("employee_id", "role", "scope"),
        CheckConstraint(ROLE_CHECK, name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(64))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    granted_by: Mapped[str] = mapped_column(String(320))
    granted_at: Mapped[str] = mapped_column(String(32))


class AdminTotp(Base):
    """One employee's TOTP secret, AES-256-GCM sealed with a key derived from the
    master key (AAD binds it to the employee); usable once `confirmed_at` is set."""

    __tablename__ = "admin_totp"

    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), primary_key=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[str] = mapped_column(String(32))
    confirmed_at: Mapped[str | None] = mapped_column(String(32))


class AdminTotpStep(Base):
    """A TOTP time-step an employee has used: the same code is never accepted twice."""

    __tablename__ = "admin_totp_steps"

    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), primary_key=True)
    step: Mapped[int] = mapped_column(BigId, primary_key=True)
    used_at: Mapped[str] = mapped_column(String(32))


class AdminRecoveryCode(Base):
    """A single-use recovery code, stored as a keyed hash (HMAC-SHA256)."""

    __tablename__ = "admin_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[str | None] = mapped_column(String(32))


class AdminToken(Base):
    """An API token for automation: a role (and agency for scoped roles), an expiry;
    the secret is shown once and kept only as a keyed hash. `idempotency_hash` is
    the keyed hash of the Idempotency-Key it was created with (unique per creator)."""

    __tablename__ = "admin_tokens"
    __table_args__ = (
        CheckConstraint(ROLE_CHECK, name="role"),
        UniqueConstraint("created_by", "idempotency_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[str | None] = mapped_column(String(32))
    revoked_by: Mapped[str | None] = mapped_column(String(320))
    last_used_at: Mapped[str | None] = mapped_column(String(32))
    last_used_from: Mapped[str | None] = mapped_column(String(100))
    idempotency_hash: Mapped[str | None] = mapped_column(String(64))


class AdminSession(Base):
    """A signed-in person's web session, under one of their grants. The session id
    is kept only as a keyed hash; it ends after `idle` without use or at `expires_at`."""

    __tablename__ = "admin_sessions"
    __table_args__ = (Index("ix_admin_sessions_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("admin_grants.id"), index=True)
    csrf_secret: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[str] = mapped_column(String(32))
    last_seen_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))
