"""Accepted messages: registry counters, encrypted blobs, messages, documents, copies, queue.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _create_registry_counters()
    _create_blobs()
    _create_messages()
    _create_message_documents()
    _create_message_copies()
    _create_delivery_queue()


def _create_registry_counters() -> None:
    op.create_table(
        "registry_counters",
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("next_serial", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name="fk_registry_counters_agency_id_agencies"
        ),
        sa.PrimaryKeyConstraint("agency_id", "year", name="pk_registry_counters"),
    )


def _create_blobs() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", BigId, nullable=False),
        sa.Column("kek_id", sa.String(16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blobs"),
    )


def _create_messages() -> None:
    op.create_table(
        "messages",
        sa.Column("id", BigId, nullable=False),
        sa.Column("registry", sa.String(100), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("sender_employee_id", sa.Integer(), nullable=False),
        sa.Column("sender_address", sa.String(320), nullable=False),
        sa.Column("classification", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("size", BigId, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("original_blob_id", sa.String(32), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("accepted_at", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revoked_at", sa.String(32), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.Column("client_address", sa.String(100), nullable=False),
        sa.CheckConstraint("status IN ('valid', 'revoked')", name="ck_messages_status"),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name="fk_messages_agency_id_agencies"),
        sa.ForeignKeyConstraint(
            ["sender_employee_id"], ["employees.id"],
            name="fk_messages_sender_employee_id_employees",
        ),
        sa.ForeignKeyConstraint(
            ["original_blob_id"], ["blobs.id"], name="fk_messages_original_blob_id_blobs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint("registry", name="uq_messages_registry"),
    )
    op.create_index("ix_messages_agency_id", "messages", ["agency_id"])
    op.create_index("ix_messages_sender_employee_id", "messages", ["sender_employee_id"])
    op.create_index("ix_messages_accepted_at", "messages", ["accepted_at"])


def _create_message_documents() -> None:
    op.create_table(
        "message_documents",
        sa.Column("id", BigId, nullable=False),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", BigId, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_message_documents_message_id_messages"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_message_documents"),
        sa.UniqueConstraint("message_id", "position", name="uq_message_documents_message_id"),
    )
    op.create_index("ix_message_documents_message_id", "message_documents", ["message_id"])
    op.create_index("ix_message_documents_sha256", "message_documents", ["sha256"])


def _create_message_copies() -> None:
    op.create_table(
        "message_copies",
        sa.Column("id", BigId, nullable=False),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("recipient_local", sa.Boolean(), nullable=False),
        sa.Column("peer", sa.String(255), nullable=True),
        sa.Column("trace_code", sa.String(64), nullable=False),
        sa.Column("prefix_blob_id", sa.String(32), nullable=False),
        sa.Column("suffix_blob_id", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_message_copies_message_id_messages"
        ),
        sa.ForeignKeyConstraint(
            ["prefix_blob_id"], ["blobs.id"], name="fk_message_copies_prefix_blob_id_blobs"
        ),
        sa.ForeignKeyConstraint(
            ["suffix_blob_id"], ["blobs.id"], name="fk_message_copies_suffix_blob_id_blobs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_message_copies"),
        sa.UniqueConstraint("message_id", "recipient", name="uq_message_copies_message_id"),
        sa.UniqueConstraint("trace_code", name="uq_message_copies_trace_code"),
    )
    op.create_index("ix_message_copies_message_id", "message_copies", ["message_id"])
    op.create_index("ix_message_copies_recipient", "message_copies", ["recipient"])


def _create_delivery_queue() -> None:
    op.create_table(
        "delivery_queue",
        sa.Column("id", BigId, nullable=False),
        sa.Column("copy_id", BigId, nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.String(32), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'delivering', 'delivered', 'failed', 'held')",
            name="ck_delivery_queue_state",
        ),
        sa.ForeignKeyConstraint(
            ["copy_id"], ["message_copies.id"], name="fk_delivery_queue_copy_id_message_copies"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_queue"),
        sa.UniqueConstraint("copy_id", name="uq_delivery_queue_copy_id"),
    )
    op.create_index(
        "ix_delivery_queue_state_next_attempt_at", "delivery_queue", ["state", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_queue_state_next_attempt_at", table_name="delivery_queue")
    op.drop_table("delivery_queue")
    op.drop_index("ix_message_copies_recipient", table_name="message_copies")
    op.drop_index("ix_message_copies_message_id", table_name="message_copies")
    op.drop_table("message_copies")
    op.drop_index("ix_message_documents_sha256", table_name="message_documents")
    op.drop_index("ix_message_documents_message_id", table_name="message_documents")
    op.drop_table("message_documents")
    op.drop_index("ix_messages_accepted_at", table_name="messages")
    op.drop_index("ix_messages_sender_employee_id", table_name="messages")
    op.drop_index("ix_messages_agency_id", table_name="messages")
    op.drop_table("messages")
    op.drop_table("blobs")
    op.drop_table("registry_counters")
