"""Federation: copies received from peers, the relay outbox, remote NDR facts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("receipt_jobs") as batch:
        batch.add_column(sa.Column("remote_mta", sa.String(255), nullable=True))
        batch.add_column(sa.Column("status", sa.String(16), nullable=True))
    op.create_table(
        "inbound_copies",
        sa.Column("id", BigId, nullable=False),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("registry", sa.String(100), nullable=False),
        sa.Column("trace_code", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("remote_classification", sa.String(64), nullable=False),
        sa.Column("dkim_domain", sa.String(253), nullable=False),
        sa.Column("content_id", BigId, nullable=False),
        sa.Column("received_at", sa.String(32), nullable=False),
        sa.Column("client_address", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_id"], ["mail_contents.id"], name="fk_inbound_copies_content_id_mail_contents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_copies"),
        sa.UniqueConstraint("peer", "trace_code", name="uq_inbound_copies_peer"),
    )
    op.create_index("ix_inbound_copies_registry", "inbound_copies", ["registry"])
    op.create_index("ix_inbound_copies_recipient", "inbound_copies", ["recipient"])
    op.create_index("ix_inbound_copies_content_id", "inbound_copies", ["content_id"])
    op.create_table(
        "relay_outbox",
        sa.Column("id", BigId, nullable=False),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("registry", sa.String(100), nullable=False),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("blob_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.String(32), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("sent_at", sa.String(32), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'delivering', 'sent', 'failed')", name="ck_relay_outbox_state"
        ),
        sa.ForeignKeyConstraint(["blob_id"], ["blobs.id"], name="fk_relay_outbox_blob_id_blobs"),
        sa.PrimaryKeyConstraint("id", name="pk_relay_outbox"),
    )
    op.create_index(
        "ix_relay_outbox_state_next_attempt_at", "relay_outbox", ["state", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_relay_outbox_state_next_attempt_at", table_name="relay_outbox")
    op.drop_table("relay_outbox")
    op.drop_index("ix_inbound_copies_content_id", table_name="inbound_copies")
    op.drop_index("ix_inbound_copies_recipient", table_name="inbound_copies")
    op.drop_index("ix_inbound_copies_registry", table_name="inbound_copies")
    op.drop_table("inbound_copies")
    with op.batch_alter_table("receipt_jobs") as batch:
        batch.drop_column("status")
        batch.drop_column("remote_mta")
