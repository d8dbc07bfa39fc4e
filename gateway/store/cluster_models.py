"""Tables of the cluster's shared facts: named values and the token signing key set.

Owns: the schema of `cluster_values` (the master-key check value, the digests of
the cluster-wide configuration) and `signing_keys` (token signing keys: public
parts, the current one's private part sealed with the master key). Must not:
hold behaviour; gateway.store.cluster_state and gateway.store.signing_keys own
the rules. Registered on the one `Base` by gateway.store.models.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base


class ClusterValue(Base):
    """One named fact every node of the cluster must agree with (see cluster_state)."""

    __tablename__ = "cluster_values"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[str] = mapped_column(String(32))


class SigningKey(Base):
    """A token signing key: `status` current (exactly one) or retired.

    `sealed_private` is the current key's raw private bytes sealed with a subkey
    of the master key (nonce + AES-256-GCM); NULL once retired.
    """

    __tablename__ = "signing_keys"
    __table_args__ = (CheckConstraint("status IN ('current', 'retired')", name="status"),)

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_private: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[str] = mapped_column(String(32))
