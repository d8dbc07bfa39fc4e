"""Mailboxes for IMAP: folders, stored mails, expunge log, receipt jobs; delivery time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _create_mailboxes()
    _create_mail_contents()
    _create_mailbox_messages()
    _create_mailbox_expunges()
    _create_receipt_jobs()
    _alter_delivery_queue()


def _create_mailboxes() -> None:
    op.create_table(
        "mailboxes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("special_use", sa.String(32), nullable=True),
        sa.Column("uid_validity", BigId, nullable=False),
        sa.Column("next_uid", BigId, nullable=False),
        sa.Column("highest_modseq", BigId, nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name="fk_mailboxes_employee_id_employees"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mailboxes"),
        sa.UniqueConstraint("employee_id", "name", name="uq_mailboxes_employee_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mailboxes_employee_id", "mailboxes", ["employee_id"])


def _create_mail_contents() -> None:
    op.create_table(
        "mail_contents",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", BigId, nullable=False),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.Column("meta_blob_id", sa.String(32), nullable=False),
        sa.Column("message_id", BigId, nullable=True),
        sa.Column("copy_id", BigId, nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["meta_blob_id"], ["blobs.id"], name="fk_mail_contents_meta_blob_id_blobs"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_mail_contents_message_id_messages"
        ),
        sa.ForeignKeyConstraint(
            ["copy_id"], ["message_copies.id"], name="fk_mail_contents_copy_id_message_copies"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mail_contents"),
    )
    op.create_index("ix_mail_contents_message_id", "mail_contents", ["message_id"])
    op.create_index("ix_mail_contents_copy_id", "mail_contents", ["copy_id"])


def _create_mailbox_messages() -> None:
    op.create_table(
        "mailbox_messages",
        sa.Column("id", BigId, nullable=False),
        sa.Column("mailbox_id", BigId, nullable=False),
        sa.Column("uid", BigId, nullable=False),
        sa.Column("content_id", BigId, nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("internal_date", sa.String(32), nullable=False),
        sa.Column("modseq", BigId, nullable=False),
        sa.Column("recent", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name="fk_mailbox_messages_mailbox_id_mailboxes"
        ),
        sa.ForeignKeyConstraint(
            ["content_id"],
            ["mail_contents.id"],
            name="fk_mailbox_messages_content_id_mail_contents",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mailbox_messages"),
        sa.UniqueConstraint("mailbox_id", "uid", name="uq_mailbox_messages_mailbox_id"),
    )
    op.create_index("ix_mailbox_messages_content_id", "mailbox_messages", ["content_id"])
    op.create_index(
        "ix_mailbox_messages_mailbox_id_modseq", "mailbox_messages", ["mailbox_id", "modseq"]
    )


def _create_mailbox_expunges() -> None:
    op.create_table(
        "mailbox_expunges",
        sa.Column("id", BigId, nullable=False),
        sa.Column("mailbox_id", BigId, nullable=False),
        sa.Column("uid", BigId, nullable=False),
        sa.Column("modseq", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name="fk_mailbox_expunges_mailbox_id_mailboxes"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mailbox_expunges"),
    )
    op.create_index(
        "ix_mailbox_expunges_mailbox_id_modseq", "mailbox_expunges", ["mailbox_id", "modseq"]
    )


def _create_receipt_jobs() -> None:
    op.create_table(
        "receipt_jobs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("event_at", sa.String(32), nullable=False),
        sa.Column("done_at", sa.String(32), nullable=True),
        sa.CheckConstraint(
            "kind IN ('acceptance', 'delivery', 'non-delivery')", name="ck_receipt_jobs_kind"
        ),
        sa.CheckConstraint("state IN ('pending', 'done')", name="ck_receipt_jobs_state"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_receipt_jobs_message_id_messages"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_receipt_jobs"),
        sa.UniqueConstraint("message_id", "kind", "recipient", name="uq_receipt_jobs_message_id"),
    )
    op.create_index("ix_receipt_jobs_state_id", "receipt_jobs", ["state", "id"])


def _alter_delivery_queue() -> None:
    with op.batch_alter_table("delivery_queue") as batch:
        batch.add_column(sa.Column("delivered_at", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_queue") as batch:
        batch.drop_column("delivered_at")
    op.drop_index("ix_receipt_jobs_state_id", table_name="receipt_jobs")
    op.drop_table("receipt_jobs")
    op.drop_index("ix_mailbox_expunges_mailbox_id_modseq", table_name="mailbox_expunges")
    op.drop_table("mailbox_expunges")
    op.drop_index("ix_mailbox_messages_mailbox_id_modseq", table_name="mailbox_messages")
    op.drop_index("ix_mailbox_messages_content_id", table_name="mailbox_messages")
    op.drop_table("mailbox_messages")
    op.drop_index("ix_mail_contents_copy_id", table_name="mail_contents")
    op.drop_index("ix_mail_contents_message_id", table_name="mail_contents")
    op.drop_table("mail_contents")
    op.drop_index("ix_mailboxes_employee_id", table_name="mailboxes")
    op.drop_table("mailboxes")
