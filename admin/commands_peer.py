"""`barid peer list|show|check NAME`: the federation peers, for operators.

Owns: these commands' options and output. Must not: change anything; `check`
connects to the peer's transfer port (STARTTLS with our client certificate,
EHLO, QUIT) and sends no mail. Exit 1 when a check fails.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from admin.cli import common, config_path, want_json
from admin.context import settings_from
from admin.errors import CliError
from admin.output import emit
from gateway.config import Settings
from gateway.federation.client import Probe, probe
from gateway.federation.peers import Federation, Peer, PeerConfigError
from keys.dkim_dns import dkim_records
from keys.gateway_keys import load_gateway_keys
from keys.key_files import KeyFileError

NOT_READY = "NOT READY (host or tls_trust missing)"


def register(cli: click.Group) -> None:
    cli.add_command(peer_group)


def _federation(settings: Settings) -> Federation:
    try:
        return Federation.load(settings)
    except PeerConfigError as exc:
        raise CliError(str(exc)) from None


def _peer(federation: Federation, name: str) -> Peer:
    peer = federation.get(name)
    if peer is None:
        known = ", ".join(sorted(federation.peers)) or "none configured"
        raise CliError(f"no peer named {name!r} (peers: {known})")
    return peer


def _trust_mode(peer: Peer) -> str:
    if peer.trust is None:
        return "none"
    if peer.trust.strict_pins:
        return "pinned fingerprints"
    return "pinned certificate" if peer.trust.pinned_mode() else "peer CA"


def _summary(peer: Peer) -> dict[str, Any]:
    s = peer.settings
    return {
        "name": peer.name,
        "domains": list(s.domains),
        "host": s.host,
        "port": s.port,
        "ready": peer.ready,
        "trust": _trust_mode(peer),
    }


def _details(peer: Peer) -> dict[str, Any]:
    s = peer.settings
    records = peer.dkim_records
    return {
        **_summary(peer),
        "tls_trust_file": s.tls_trust,
        "tls_server_name": peer.server_name,
        "tls_anchors": peer.trust.describe() if peer.trust is not None else [],
        "tls_fingerprints": list(s.tls_fingerprints),
        "dkim_domains": s.dkim_domains,
        "dkim_keys": sorted(records) if records is not None else "DNS",
        "classification_map": dict(s.classification_map),
    }


@click.group("peer")
def peer_group() -> None:
    """Federation peers: their domains, TLS trust and DKIM keys; check a connection."""


@peer_group.command("list")
@common
@click.pass_context
def peer_list(ctx: click.Context) -> None:
    """Every configured peer, one line each."""
    federation = _federation(settings_from(config_path(ctx)))
    rows = [_summary(p) for p in federation.peers.values()]

    def text() -> str:
        if not rows:
            return "no peers configured (add [peers.<name>] tables to barid.toml)"
        return "\n".join(
            f"{r['name']}  {','.join(r['domains'])}  {r['host'] or '-'}:{r['port']}"
            f"  trust={r['trust']}  {'ready' if r['ready'] else NOT_READY}"
            for r in rows
        )

    emit(rows, text, as_json=want_json(ctx))


@peer_group.command("show")
@common
@click.argument("name")
@click.pass_context
def peer_show(ctx: click.Context, name: str) -> None:
    """One peer: domains, transfer address, TLS anchors, DKIM keys, classification map."""
    peer = _peer(_federation(settings_from(config_path(ctx))), name)
    data = _details(peer)

    def text() -> str:
        lines = [f"{k}: {v}" for k, v in data.items() if k not in ("tls_anchors",)]
        for anchor in data["tls_anchors"]:
            lines.append(
                f"anchor: {anchor.get('kind')}  {anchor.get('subject')}"
                f"  sha256={anchor.get('fingerprint')}  until {anchor.get('not_after')}"
            )
        return "\n".join(lines)

    emit(data, text, as_json=want_json(ctx))


@peer_group.command("check")
@common
@click.argument("name")
@click.option("--timeout", "seconds", default=15.0, show_default=True,
              type=click.FloatRange(1, 300), help="Give up after this many seconds.")  # fmt: skip
@click.pass_context
def peer_check(ctx: click.Context, name: str, seconds: float) -> None:
    """Connect to the peer's transfer port: TLS both ways, its certificate, DKIM keys."""
    settings = settings_from(config_path(ctx))
    peer = _peer(_federation(settings), name)

    async def go() -> Probe:
        found = await probe(peer, cert=settings.tls_cert, key=settings.tls_key,
                            hostname=settings.server.hostname, seconds=seconds)  # fmt: skip
        await asyncio.sleep(0.2)  # let the TLS close finish before the loop ends
        return found

    result = asyncio.run(go())
    dkim = _dkim_status(peer, settings)
    data: dict[str, Any] = {
        "peer": peer.name,
        "address": f"{peer.host}:{peer.port}",
        "tls": {
            "ok": result.ok,
            "detail": result.detail,
            "version": result.tls_version,
            "cipher": result.cipher,
            "peer_certificate": result.certificate_subject,
            "peer_certificate_sha256": result.certificate_sha256,
        },
        "dkim": dkim,
    }

    def text() -> str:
        tls = data["tls"]
        lines = [
            f"peer {peer.name} at {data['address']}",
            f"TLS: {'ok' if tls['ok'] else 'FAILED'}: {tls['detail']}",
        ]
        if tls["version"]:
            lines.append(f"  {tls['version']} {tls['cipher']}")
            lines.append(f"  peer certificate: {tls['peer_certificate']}")
            lines.append(f"  sha256: {tls['peer_certificate_sha256']}")
        lines.append(f"DKIM: {'ok' if dkim['ok'] else 'FAILED'}: {dkim['detail']}")
        return "\n".join(lines)

    emit(data, text, as_json=want_json(ctx))
    if not (result.ok and dkim["ok"]):
        raise SystemExit(1)


def _dkim_status(peer: Peer, settings: Settings) -> dict[str, Any]:
    """The peer's DKIM keys we hold, and whether ours can sign (theirs to verify us)."""
    try:
        keys = load_gateway_keys(settings.keys_dir)
        ours = [r.selector for r in dkim_records(keys, settings.keys.dkim_selector, "x.example")]
    except (KeyFileError, ValueError) as exc:
        return {"ok": False, "detail": f"our DKIM keys: {exc}", "peer_keys": []}
    records = peer.dkim_records
    if records is None:
        return {"ok": True, "peer_keys": "DNS", "our_selectors": ours,
                "detail": "the peer's keys are looked up in DNS on receipt"}  # fmt: skip
    names = sorted(records)
    covered = [d for d in peer.settings.dkim_domains if any(n.endswith("." + d) for n in names)]
    ok = bool(names)
    detail = (f"{len(names)} key record(s) from {Path(peer.settings.dkim_keys).name}"
              f" for {', '.join(covered) or 'no configured domain'}")  # fmt: skip
    return {"ok": ok, "detail": detail, "peer_keys": names, "our_selectors": ours}
