"""Offline check of an exported audit archive: no database, no master key.

Owns: the archive's format (the part names, the manifest) and `verify_archive`,
which checks the manifest's signature and every part's SHA-256, every
checkpoint's Ed25519 signature, that the events from the archive's first event
to its declared end are consecutive and chained (each prev_mac is the MAC before
it), that every checkpointed event carries the MAC its checkpoint signed, and
that the declared end is itself a signed checkpoint (so no event up to the end
can be missing). Must not: read the database or any private key; raise on a bad
archive (every fault is a problem line).

What it cannot check: the events' own MACs are HMACs with the gateway's audit
key; offline, an event's content is bound to the chain only through the signed
manifest (its SHA-256) and the checkpoints. `barid audit verify` on the gateway
checks the MACs. The public keys come from the archive unless `trusted_keys`
names a copy of the gateway's published keys.json: compare the key ids shown.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from admin.services.model import Frozen
from gateway.store.audit import CHECKPOINT_ACTION, GENESIS_MAC
from gateway.store.audit_checkpoints import CheckpointFacts, signature_valid
from keys.gateway_keys import key_id

ARCHIVE_FORMAT = "barid-audit-archive/1"
EVENTS = "events.jsonl"
CHECKPOINTS = "checkpoints.jsonl"
KEYS = "keys.json"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PARTS = (EVENTS, CHECKPOINTS, KEYS)
MAX_PROBLEMS = 20
OFFLINE_NOTE = (
    "the events' own MACs are HMACs with the gateway's audit key and cannot be checked"
    " offline (run `barid audit verify` on the gateway for them)"
)


class ArchiveCheck(Frozen):
    ok: bool
    path: str
    events: int
    checkpoints: int
    first_event: int
    end_event: int
    key_ids: list[str]  # the keys that signed (compare with the published ones)
    keys_from: str  # "archive" or the trusted keys file
    problems: list[str]
    note: str = OFFLINE_NOTE


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_keys(data: bytes) -> tuple[dict[str, Ed25519PublicKey], list[str]]:
    """Keys in the published keys.json form: {"keys": [{"kid", "alg", "public_key"}]}."""
    problems: list[str] = []
    keys: dict[str, Ed25519PublicKey] = {}
    try:
        entries = json.loads(data)["keys"]
        for entry in entries:
            public = Ed25519PublicKey.from_public_bytes(_unb64url(str(entry["public_key"])))
            if key_id(public) != entry["kid"]:
                problems.append(f"key {entry['kid']}: its id does not match the key")
                continue
            keys[entry["kid"]] = public
    except (ValueError, KeyError, TypeError):
        problems.append("keys: not a keys.json document")
    return keys, problems


class _Check:
    """One archive being checked: the problems found so far."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []
        self.signers: set[str] = set()

    def add(self, problem: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def manifest(self, keys: Mapping[str, Ed25519PublicKey]) -> dict[str, Any] | None:
        try:
            raw = (self.root / MANIFEST).read_bytes()
            manifest = json.loads(raw)
            sig = json.loads((self.root / SIGNATURE).read_bytes())
        except FileNotFoundError as exc:
            self.add(f"{Path(str(exc.filename)).name}: missing")
            return None
        except (OSError, ValueError):
            self.add("manifest: unreadable")
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
            self.add(f"manifest: not a {ARCHIVE_FORMAT} manifest")
            return None
        public = keys.get(str(sig.get("key_id"))) if isinstance(sig, dict) else None
        if public is None:
            self.add("manifest: signed with an unknown key")
        else:
            try:
                public.verify(_unb64url(str(sig.get("signature"))), raw)
                self.signers.add(str(sig["key_id"]))
            except (InvalidSignature, ValueError):
                self.add("manifest: bad signature (manifest changed?)")
        return manifest

    def parts(self, manifest: Mapping[str, Any]) -> None:
        listed = manifest.get("parts")
        if not isinstance(listed, dict) or set(listed) != set(PARTS):
            self.add("manifest: the list of parts is wrong")
            return
        for name in PARTS:
            path = self.root / name
            if not path.is_file():
                self.add(f"{name}: missing")
            elif sha256_file(path) != listed[name]:
                self.add(f"{name}: SHA-256 does not match the manifest (part changed)")
        extra = {p.name for p in self.root.iterdir()} - {*PARTS, MANIFEST, SIGNATURE}
        for name in sorted(extra):
            self.add(f"{name}: not part of the archive")

    def lines(self, name: str) -> list[dict[str, Any]]:
        out = []
        try:
            text = (self.root / name).read_text(encoding="utf-8")
        except (OSError, ValueError):
            return []
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                self.add(f"{name} line {number}: not a JSON object")
                continue
            out.append(value)
        return out


def _checkpoint(row: Mapping[str, Any]) -> CheckpointFacts | None:
    try:
        return CheckpointFacts(
            event_id=int(row["event_id"]),
            event_mac=str(row["event_mac"]),
            count=int(row["count"]),
            at=str(row["at"]),
            node=str(row["node"]),
            key_id=str(row["key_id"]),
            signature=str(row["signature"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _check_events(
    check: _Check,
    events: list[dict[str, Any]],
    signed: Mapping[int, CheckpointFacts],
    manifest: Mapping[str, Any],
) -> None:
    """Consecutive, chained, anchored at a checkpoint (or the genesis) and ending at
    the declared, signed end."""
    first, end = manifest.get("first_event"), manifest.get("end_event")
    expected, prev = first, None
    for ev in events:
        eid, mac, prev_mac = ev.get("id"), ev.get("mac"), ev.get("prev_mac")
        if eid != expected:
            check.add(f"event {expected}: missing (next event in the archive is {eid})")
        if prev is None:
            if eid == 1 and prev_mac != GENESIS_MAC:
                check.add("event 1: does not start the chain")
            elif eid != 1 and eid not in signed:
                check.add(f"event {eid}: the archive does not start at a checkpoint")
        elif prev_mac != prev:
            check.add(f"event {eid}: does not follow the event before it")
        if ev.get("action") == CHECKPOINT_ACTION and eid not in signed:
            check.add(f"event {eid}: its signed checkpoint is missing from the archive")
        prev, expected = mac, (eid + 1 if isinstance(eid, int) else expected)
    last = events[-1] if events else {}
    if last.get("id") != end or last.get("mac") != manifest.get("end_mac"):
        check.add(f"events end at {last.get('id')}, the manifest declares {end} (tail missing?)")
    if end not in signed:
        check.add(f"end event {end}: not a signed checkpoint")
    if manifest.get("events") != len(events):
        check.add(f"manifest counts {manifest.get('events')} events, found {len(events)}")


def _check_checkpoints(
    check: _Check,
    rows: list[dict[str, Any]],
    events: list[dict[str, Any]],
    keys: Mapping[str, Ed25519PublicKey],
) -> dict[int, CheckpointFacts]:
    by_id = {ev.get("id"): ev for ev in events}
    signed: dict[int, CheckpointFacts] = {}
    for row in rows:
        facts = _checkpoint(row)
        if facts is None:
            check.add(f"{CHECKPOINTS}: a checkpoint is incomplete")
            continue
        where = f"checkpoint at event {facts.event_id}"
        reason = signature_valid(facts, keys)
        if reason is not None:
            check.add(f"{where}: {reason} (forged checkpoint?)")
            continue
        check.signers.add(facts.key_id)
        ev = by_id.get(facts.event_id)
        if ev is None:
            check.add(f"{where}: the event is missing from the archive")
        elif ev.get("mac") != facts.event_mac:
            check.add(f"{where}: the event has another MAC (event changed?)")
        if facts.count != facts.event_id:
            check.add(f"{where}: counts {facts.count} events, expected {facts.event_id}")
        signed[facts.event_id] = facts
    return signed


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def verify_archive(path: str, *, trusted_keys: str | None = None) -> ArchiveCheck:
    """Check an archive written by `barid audit export`, offline."""
    root = Path(path)
    check = _Check(root)
    keys: dict[str, Ed25519PublicKey] = {}
    events: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    manifest: dict[str, Any] | None = None
    if not root.is_dir():
        check.add(f"{path}: not an archive directory")
    else:
        source = Path(trusted_keys) if trusted_keys else root / KEYS
        try:
            keys, problems = parse_keys(source.read_bytes())
            for problem in problems:
                check.add(problem)
        except OSError as exc:
            check.add(f"{source.name}: cannot read ({exc.strerror})")
        manifest = check.manifest(keys)
    if manifest is not None:
        check.parts(manifest)
        events, rows = check.lines(EVENTS), check.lines(CHECKPOINTS)
        signed = _check_checkpoints(check, rows, events, keys)
        _check_events(check, events, signed, manifest)
        if manifest.get("checkpoints") != len(rows):
            check.add(
                f"manifest counts {manifest.get('checkpoints')} checkpoints, found {len(rows)}"
            )
    info = manifest or {}
    return ArchiveCheck(
        ok=not check.problems,
        path=str(root),
        events=len(events),
        checkpoints=len(rows),
        first_event=_int(info.get("first_event")),
        end_event=_int(info.get("end_event")),
        key_ids=sorted(check.signers),
        keys_from=trusted_keys or "archive",
        problems=check.problems,
    )
