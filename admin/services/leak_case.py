"""A leak trace's case file: written signed, checked offline.

Owns: `write_case` (into DEST, a new or empty directory, mode 0700, files 0600:
case.json = the trace's answer, the input's SHA-256, the time and the SHA-256 of
case.pdf; case.pdf = its summary in Arabic and English (admin.services.leak_case_pdf),
so covered by the same signature; case.json.sig
= its Ed25519 signature by the gateway's signing key and the key id; keys.json =
the public verification keys in the published form) and `verify_case` (no
database, no master key; the keys from the case dir unless `trusted_keys` names
a copy of the gateway's published keys.json; every file case.json lists must be
there with that SHA-256, so a changed or missing case.pdf fails; a case file of
the first format, without a summary, still verifies). Must not: put any secret in the
case dir; raise on a bad case dir (every fault is a problem line).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from admin.context import App
from admin.services.actor import Actor
from admin.services.audit_archive_check import parse_keys
from admin.services.errors import InvalidInput
from admin.services.leak_case_pdf import case_summary_pdf
from admin.services.leaks import LeakTrace, trace_leak
from admin.services.model import Frozen
from gateway.store.audit_checkpoints import b64url
from gateway.verification.service import public_key_b64url

CASE_FORMAT = "barid-leak-case/2"
_FORMATS = {"barid-leak-case/1": (), CASE_FORMAT: ("case.pdf",)}  # format: files it must list
CASE = "case.json"
SUMMARY = "case.pdf"
SIGNATURE = "case.json.sig"
KEYS = "keys.json"


class CaseCheck(Frozen):
    ok: bool
    path: str
    key_id: str | None
    keys_from: str
    files: list[str]  # the files the signature covers (case.json and those it lists)
    problems: list[str]


class CaseTrace(Frozen):
    trace: LeakTrace
    case_dir: str | None
    key_id: str | None


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, problems=[message])


def _write(path: Path, data: bytes) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)


def _keys_json(app: App) -> bytes:
    current = app.keys.signing_key_id
    keys = app.keys.verification_keys
    listed = [
        {"kid": kid, "alg": "Ed25519", "public_key": public_key_b64url(keys[kid]),
         "status": "current" if kid == current else "retired"}
        for kid in sorted(keys, key=lambda kid: (kid != current, kid))
    ]  # fmt: skip
    return (json.dumps({"keys": listed}, indent=2) + "\n").encode()


def write_case(app: App, trace: LeakTrace, dest: str, *, now: dt.datetime | None = None) -> str:
    """Write the signed case file of `trace` into `dest`; the signing key's id."""
    root = Path(dest)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise _invalid(f"{dest}: exists and is not an empty directory")
    try:
        created = (now or dt.datetime.now(dt.UTC)).isoformat()
        summary = case_summary_pdf(trace, created, app.keys.signing_key_id)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        case = {
            "format": CASE_FORMAT,
            "created_at": created,
            "input": {"kind": trace.kind, "name": trace.input, "sha256": trace.input_sha256},
            "answer": trace.model_dump(mode="json"),
            "files": {SUMMARY: hashlib.sha256(summary).hexdigest()},
        }
        raw = (json.dumps(case, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        sig = {"alg": "Ed25519", "key_id": app.keys.signing_key_id,
               "signature": b64url(app.keys.signing_key.sign(raw))}  # fmt: skip
        _write(root / SUMMARY, summary)
        _write(root / KEYS, _keys_json(app))
        _write(root / SIGNATURE, (json.dumps(sig, indent=2) + "\n").encode())
        _write(root / CASE, raw)
    except OSError as exc:
        raise _invalid(f"{dest}: cannot write the case file ({exc.strerror})") from None
    return app.keys.signing_key_id


def _listed_files(root: Path, case: dict[str, object]) -> list[str]:
    """Problems with the files case.json lists (by SHA-256): missing, changed, or one
    its format requires not listed."""
    listed = case.get("files", {})
    if not isinstance(listed, dict):
        return [f"{CASE}: unreadable file list"]
    problems = [f"{CASE}: does not list {name}" for name in _FORMATS[str(case["format"])]
                if name not in listed]  # fmt: skip
    for name, digest in sorted(listed.items()):
        if name not in _FORMATS[CASE_FORMAT]:
            problems.append(f"{CASE}: lists an unexpected file {name!r}")
            continue
        try:
            data = (root / name).read_bytes()
        except OSError as exc:
            problems.append(f"{name}: cannot read ({exc.strerror})")
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{name}: changed since the case file was signed (SHA-256 differs)")
    return problems


def verify_case(path: str, *, trusted_keys: str | None = None) -> CaseCheck:
    """Check a case dir written by `write_case`, offline."""
    root = Path(path)
    problems: list[str] = []
    key: str | None = None
    covered = [CASE]
    source = Path(trusted_keys) if trusted_keys else root / KEYS
    try:
        keys, problems = parse_keys(source.read_bytes())
        raw = (root / CASE).read_bytes()
        sig = json.loads((root / SIGNATURE).read_bytes())
        case = json.loads(raw)
        if not isinstance(case, dict) or case.get("format") not in _FORMATS:
            problems.append(f"{CASE}: not a {CASE_FORMAT} case file")
        else:
            problems += _listed_files(root, case)
            covered += sorted(case.get("files") or {})
        public = keys.get(str(sig.get("key_id"))) if isinstance(sig, dict) else None
        if public is None:
            problems.append(f"{CASE}: signed with an unknown key")
        else:
            public.verify(_unb64url(str(sig.get("signature"))), raw)
            key = str(sig["key_id"])
    except OSError as exc:
        problems.append(f"{Path(str(exc.filename)).name}: cannot read ({exc.strerror})")
    except InvalidSignature:
        problems.append(f"{CASE}: bad signature (case file changed?)")
    except ValueError:
        problems.append(f"{CASE}: unreadable")
    return CaseCheck(
        ok=not problems,
        path=str(root),
        key_id=key,
        keys_from=trusted_keys or "case dir",
        files=covered,
        problems=problems,
    )


async def trace_with_case(actor: Actor, app: App, value: str, dest: str | None) -> CaseTrace:
    """`trace_leak`, then, when `dest` is given, its signed case file there."""
    trace = await trace_leak(actor, app, value)
    if dest is None:
        return CaseTrace(trace=trace, case_dir=None, key_id=None)
    return CaseTrace(trace=trace, case_dir=dest, key_id=write_case(app, trace, dest))
