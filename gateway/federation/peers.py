"""Federation peers at run time: each `[peers.<name>]` with its trust and DKIM keys loaded.

Owns: turning the peer settings into what the transfer listener and the relay
need — the TLS trust (gateway.federation.trust), the peer's DKIM records
(gateway.federation.dkim_check), domain membership, the classification
mapping — and the mutual-TLS server context of the transfer listener.
Must not: open sockets or touch the database.

Contract: `Federation.load(settings)` reads every file once and raises
`PeerConfigError` naming the peer and the file when one is missing or bad, so
the gateway refuses to start on a broken peer rather than run without
checks. A peer without `host` or `tls_trust` is loaded with `ready=False`:
its domains are federated for the policy, but nothing is transferred.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config import PeerSettings, Settings
from gateway.federation.dkim_check import load_dkim_records
from gateway.federation.trust import (
    PeerTrust,
    identify,
    load_peer_trust,
    peer_client_context,
    transfer_server_context,
)


class PeerConfigError(ValueError):
    """A peer's trust or DKIM file cannot be used; the message names peer and file."""


def in_domains(domain: str, domains: list[str] | tuple[str, ...]) -> bool:
    """`domain` equals one of `domains` or is a subdomain of one (dot boundary)."""
    d = domain.strip().lower().rstrip(".")
    return any(d == x or d.endswith("." + x) for x in domains)


@dataclass(frozen=True)
class Peer:
    name: str
    settings: PeerSettings
    trust: PeerTrust | None  # None: no tls_trust configured
    dkim_records: Mapping[str, str] | None  # None: look the keys up in DNS

    @property
    def ready(self) -> bool:
        return self.trust is not None and bool(self.settings.host)

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        return self.settings.port

    @property
    def server_name(self) -> str:
        return self.settings.tls_server_name or self.settings.host

    def owns_address(self, address: str) -> bool:
        """Whether `address` is in one of the peer's mail domains (exactly, as the policy)."""
        return address.rpartition("@")[2].strip().lower() in self.settings.domains

    def client_context(self, cert: Path, key: Path) -> ssl.SSLContext:
        assert self.trust is not None
        return peer_client_context(self.trust, cert, key)


class Federation:
    """Every configured peer, by name."""

    def __init__(self, peers: Mapping[str, Peer]) -> None:
        self.peers = dict(peers)

    @classmethod
    def load(cls, settings: Settings) -> Federation:
        peers: dict[str, Peer] = {}
        for name, conf in settings.peers.items():
            trust = None
            if conf.tls_trust:
                try:
                    trust = load_peer_trust(
                        name,
                        Path(conf.tls_trust),
                        conf.tls_fingerprints,
                        conf.tls_server_name or conf.host,
                    )
                except ValueError as exc:
                    raise PeerConfigError(f"peer {name}: tls_trust: {exc}") from None
            records = None
            if conf.dkim_keys:
                try:
                    records = load_dkim_records(Path(conf.dkim_keys))
                except (OSError, ValueError) as exc:
                    raise PeerConfigError(f"peer {name}: dkim_keys: {exc}") from None
            peers[name] = Peer(name, conf, trust, records)
        return cls(peers)

    def __getitem__(self, name: str) -> Peer:
        return self.peers[name]

    def get(self, name: str) -> Peer | None:
        return self.peers.get(name)

    @property
    def trusts(self) -> list[PeerTrust]:
        return [p.trust for p in self.peers.values() if p.trust is not None]

    def identify(self, leaf_der: bytes) -> Peer | None:
        """The peer a presented client certificate belongs to (None: nobody's)."""
        found = identify(self.trusts, leaf_der)
        return None if found is None else self.peers.get(found.name)

    def server_context(self, cert: Path, key: Path) -> ssl.SSLContext:
        """The transfer listener's TLS: our certificate, client certificates required."""
        return transfer_server_context(cert, key, self.trusts)
