"""The alert rules' and the alert mailer's positions start at the end of the audit trail.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-14

Two rows of `meta` (gateway.store.alert_positions): `alert_scan_position` (audit
events evaluated by the alert rules) and `alert_mail_position` (alerts filed
into the security mailboxes), each made at the id of the newest audit event as
it stands now, unless the row exists already. A new installation has an empty
trail and starts at 0; an upgraded one starts after its history, so neither the
first scan nor the first filing replays what was recorded before the upgrade
(`barid alerts scan --since T` evaluates a past period on demand). The
downgrade drops the rules' row only: the mailer's row predates this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

KEYS = ("alert_scan_position", "alert_mail_position")


def upgrade() -> None:
    connection = op.get_bind()
    end = connection.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM audit_events")).scalar()
    for key in KEYS:
        found = connection.execute(
            sa.text("SELECT 1 FROM meta WHERE key = :key"), {"key": key}
        ).first()
        if found is None:
            connection.execute(
                sa.text("INSERT INTO meta (key, value) VALUES (:key, :value)"),
                {"key": key, "value": int(end or 0)},
            )


def downgrade() -> None:
    op.get_bind().execute(sa.text("DELETE FROM meta WHERE key = 'alert_scan_position'"))
