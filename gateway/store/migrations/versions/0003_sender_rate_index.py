"""Index for the policy's rate fact: a sender's messages of the last hour.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_sender_address_accepted_at", "messages", ["sender_address", "accepted_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_messages_sender_address_accepted_at", table_name="messages")
