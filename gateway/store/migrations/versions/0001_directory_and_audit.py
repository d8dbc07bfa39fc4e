"""Directory (agencies, employees, signing identities, agency CAs), audit chain, meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _create_agencies()
    _create_employees()
    _create_signing_identities()
    _create_agency_cas()
    _create_audit_events()
    _create_audit_head()
    _create_meta()


def _create_agencies() -> None:
    op.create_table(
        "agencies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("code_key", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(300), nullable=False),
        sa.Column("name_ar", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("next_employee_serial", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["agencies.id"], name="fk_agencies_parent_id_agencies"),
        sa.PrimaryKeyConstraint("id", name="pk_agencies"),
        sa.UniqueConstraint("code", name="uq_agencies_code"),
        sa.UniqueConstraint("code_key", name="uq_agencies_code_key"),
    )
    op.create_index("ix_agencies_domain", "agencies", ["domain"])
    op.create_index("ix_agencies_parent_id", "agencies", ["parent_id"])


def _create_employees() -> None:
    op.create_table(
        "employees",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("name_en", sa.String(300), nullable=False),
        sa.Column("name_ar", sa.String(300), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("clearance", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(96), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=True),
        sa.Column("encryption_key", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name="fk_employees_agency_id_agencies"),
        sa.PrimaryKeyConstraint("id", name="pk_employees"),
        sa.UniqueConstraint("address", name="uq_employees_address"),
        sa.UniqueConstraint("agency_id", "serial", name="uq_employees_agency_id"),
        sa.UniqueConstraint("code", name="uq_employees_code"),
    )
    op.create_index("ix_employees_agency_id", "employees", ["agency_id"])


def _create_signing_identities() -> None:
    op.create_table(
        "signing_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("material", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name="fk_signing_identities_employee_id_employees"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_signing_identities"),
        sa.UniqueConstraint("fingerprint", name="uq_signing_identities_fingerprint"),
    )
    op.create_index("ix_signing_identities_employee_id", "signing_identities", ["employee_id"])


def _create_agency_cas() -> None:
    op.create_table(
        "agency_cas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name="fk_agency_cas_agency_id_agencies"),
        sa.PrimaryKeyConstraint("id", name="pk_agency_cas"),
        sa.UniqueConstraint("agency_id", "fingerprint", name="uq_agency_cas_agency_id"),
    )
    op.create_index("ix_agency_cas_agency_id", "agency_cas", ["agency_id"])


def _create_audit_events() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_mac", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_action", "audit_events", ["action"])


def _create_audit_head() -> None:
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", BigId, nullable=False),
        sa.Column("last_mac", sa.String(64), nullable=False),
        sa.Column("count", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    # The one head row exists from the start, so appends only ever lock and update it.
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_mac": "0" * 64, "count": 0}])


def _create_meta() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", BigId, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_events_action", table_name="audit_events")
    op.drop_index("ix_audit_events_at", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_agency_cas_agency_id", table_name="agency_cas")
    op.drop_table("agency_cas")
    op.drop_index("ix_signing_identities_employee_id", table_name="signing_identities")
    op.drop_table("signing_identities")
    op.drop_index("ix_employees_agency_id", table_name="employees")
    op.drop_table("employees")
    op.drop_index("ix_agencies_parent_id", table_name="agencies")
    op.drop_index("ix_agencies_domain", table_name="agencies")
    op.drop_table("agencies")
