"""Admin accounts: role grants, TOTP secrets and used steps, recovery codes, API tokens, sessions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROLE_CHECK = "role IN ('system-admin', 'agency-admin', 'security-auditor', 'registrar')"


def _employee_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["employee_id"], ["employees.id"], name=f"fk_{table}_employee_id_employees"
    )


def _agency_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["agency_id"], ["agencies.id"], name=f"fk_{table}_agency_id_agencies"
    )


def upgrade() -> None:
    _create_admin_grants()
    _create_admin_totp()
    _create_admin_totp_steps()
    _create_admin_recovery_codes()
    _create_admin_tokens()
    _create_admin_sessions()


def _create_admin_grants() -> None:
    op.create_table(
        "admin_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("granted_by", sa.String(320), nullable=False),
        sa.Column("granted_at", sa.String(32), nullable=False),
        sa.CheckConstraint(ROLE_CHECK, name="ck_admin_grants_role"),
        _employee_fk("admin_grants"),
        _agency_fk("admin_grants"),
        sa.PrimaryKeyConstraint("id", name="pk_admin_grants"),
        sa.UniqueConstraint("employee_id", "role", "scope", name="uq_admin_grants_employee_id"),
    )
    op.create_index("ix_admin_grants_employee_id", "admin_grants", ["employee_id"])
    op.create_index("ix_admin_grants_agency_id", "admin_grants", ["agency_id"])


def _create_admin_totp() -> None:
    op.create_table(
        "admin_totp",
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("confirmed_at", sa.String(32), nullable=True),
        _employee_fk("admin_totp"),
        sa.PrimaryKeyConstraint("employee_id", name="pk_admin_totp"),
    )


def _create_admin_totp_steps() -> None:
    op.create_table(
        "admin_totp_steps",
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("step", BigId, nullable=False),
        sa.Column("used_at", sa.String(32), nullable=False),
        _employee_fk("admin_totp_steps"),
        sa.PrimaryKeyConstraint("employee_id", "step", name="pk_admin_totp_steps"),
    )


def _create_admin_recovery_codes() -> None:
    op.create_table(
        "admin_recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("used_at", sa.String(32), nullable=True),
        _employee_fk("admin_recovery_codes"),
        sa.PrimaryKeyConstraint("id", name="pk_admin_recovery_codes"),
        sa.UniqueConstraint("code_hash", name="uq_admin_recovery_codes_code_hash"),
    )
    op.create_index(
        "ix_admin_recovery_codes_employee_id", "admin_recovery_codes", ["employee_id"]
    )


def _create_admin_tokens() -> None:
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("revoked_at", sa.String(32), nullable=True),
        sa.Column("revoked_by", sa.String(320), nullable=True),
        sa.Column("last_used_at", sa.String(32), nullable=True),
        sa.Column("last_used_from", sa.String(100), nullable=True),
        sa.CheckConstraint(ROLE_CHECK, name="ck_admin_tokens_role"),
        _agency_fk("admin_tokens"),
        sa.PrimaryKeyConstraint("id", name="pk_admin_tokens"),
        sa.UniqueConstraint("secret_hash", name="uq_admin_tokens_secret_hash"),
    )
    op.create_index("ix_admin_tokens_agency_id", "admin_tokens", ["agency_id"])


def _create_admin_sessions() -> None:
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("csrf_secret", sa.String(64), nullable=False),
        sa.Column("client", sa.String(100), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("last_seen_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["admin_grants.id"], name="fk_admin_sessions_grant_id_admin_grants"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_admin_sessions"),
        sa.UniqueConstraint("id_hash", name="uq_admin_sessions_id_hash"),
    )
    op.create_index("ix_admin_sessions_grant_id", "admin_sessions", ["grant_id"])
    op.create_index("ix_admin_sessions_expires_at", "admin_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_admin_sessions_expires_at", table_name="admin_sessions")
    op.drop_index("ix_admin_sessions_grant_id", table_name="admin_sessions")
    op.drop_table("admin_sessions")
    op.drop_index("ix_admin_tokens_agency_id", table_name="admin_tokens")
    op.drop_table("admin_tokens")
    op.drop_index("ix_admin_recovery_codes_employee_id", table_name="admin_recovery_codes")
    op.drop_table("admin_recovery_codes")
    op.drop_table("admin_totp_steps")
    op.drop_table("admin_totp")
    op.drop_index("ix_admin_grants_agency_id", table_name="admin_grants")
    op.drop_index("ix_admin_grants_employee_id", table_name="admin_grants")
    op.drop_table("admin_grants")
