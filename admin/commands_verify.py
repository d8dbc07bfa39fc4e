"""`barid verify TOKEN|FILE|IMAGE` and `barid revoke REGISTRY --reason TEXT`.

Owns: these commands' options and output; finding the token in what the user
gives (a token, a verify URL, a delivered .eml, a photo of the QR code) and asking
the gateway's online status. Must not: verify tokens itself (keys.tokens does),
or touch the database when verifying (revocation is the gateway's online answer).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from admin.cli import common, config_path, want_json
from admin.context import settings_from
from admin.errors import EXIT_FAILURE, EXIT_USAGE, CliError
from admin.output import emit
from admin.service_call import call
from admin.services import messages
from gateway.store.registry import format_registry
from gateway.store.revocation import check_revoke_reason
from keys.gateway_keys import load_gateway_keys
from keys.key_files import KeyFileError
from keys.tokens import MAX_TOKEN_DIGESTS, TokenContents, TokenError, verify_token

ONLINE_TIMEOUT_SECONDS = 5.0
MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024
MAX_ONLINE_REPLY_BYTES = 64 * 1024
ONLINE_STATUSES = ("valid", "revoked", "unknown", "forged")
NOT_REACHABLE = "not reachable"
_VERIFY_PATH = "/v/"
_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF
    b"MM\x00*",
)


def register(cli: click.Group) -> None:
    cli.add_command(verify_cmd)
    cli.add_command(revoke_cmd)


# ---------------------------------------------------------------- finding the token


def token_from_text(text: str) -> str:
    """The token in a token or a verify URL (`.../v/<token>`); whitespace is ignored."""
    value = text.strip().strip("<>").strip()
    at = value.rfind(_VERIFY_PATH)
    if at >= 0:
        value = value[at + len(_VERIFY_PATH) :]
        value = value.split("?", 1)[0].split("#", 1)[0].strip("/")
    return "".join(value.split())


def _is_image(head: bytes) -> bool:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return any(head.startswith(magic) for magic in _IMAGE_MAGIC)


def _read_input_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_FILE_BYTES:
            raise CliError(f"{path}: {size} bytes is too large to verify")
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror}") from None


def token_from_eml(path: Path, data: bytes) -> str:
    """The token in a delivered message's `Barid-Verify` header."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    value = headers.get("Barid-Verify")
    if not value:
        raise CliError(f"{path}: no Barid-Verify header (not a message delivered by Barid?)")
    return token_from_text(str(value))


def token_from_image(path: Path) -> str:
    """The token in the QR code of an image (PNG, JPEG, ...), as printed or photographed."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - pillow is a dependency
        raise CliError("reading images needs Pillow (pip install pillow)") from None
    import zxingcpp

    try:
        with Image.open(path) as opened:
            image = opened.convert("L")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise CliError(f"{path}: cannot read the image ({type(exc).__name__})") from None
    only_qr = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    barcodes = zxingcpp.read_barcodes(image, formats=only_qr)
    if not barcodes:
        raise CliError(f"{path}: no QR code found in the image")
    texts = [barcode.text for barcode in barcodes]
    chosen = next((t for t in texts if _VERIFY_PATH in t), texts[0])
    return token_from_text(chosen)


def find_token(what: str) -> tuple[str, str]:
    """(token, source): source is "token", "url", "eml" or "image"."""
    path = Path(what)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # a long token is no file name
        is_file = False
    if is_file:
        data = _read_input_file(path)
        if _is_image(data[:16]):
            return token_from_image(path), "image"
        return token_from_eml(path, data), "eml"
    source = "url" if _VERIFY_PATH in what else "token"
    token = token_from_text(what)
    if not token:
        raise CliError("no token given", EXIT_USAGE)
    return token, source


# ---------------------------------------------------------------- the facts


def _facts(contents: TokenContents, current_key_id: str) -> dict[str, Any]:
    slots = []
    for i, digest in enumerate(contents.document_digests, start=1):
        rest = contents.document_count > MAX_TOKEN_DIGESTS and i == len(contents.document_digests)
        label = f"{i}-{contents.document_count}" if rest else str(i)
        slots.append({"documents": label, "sha256_prefix": digest.hex()})
    return {
        "registry": format_registry(*contents.registry_parts),
        "agency": contents.agency,
        "issued_at": contents.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "key_id": contents.key_id,
        "key": "current" if contents.key_id == current_key_id else "retired",
        "document_count": contents.document_count,
        "digests": slots,
    }


def online_status(public_url: str, token: str) -> dict[str, Any]:
    """The gateway's answer for `token`, or {"status": "not reachable", "reason": ...}."""
    url = f"{public_url.rstrip('/')}/api/v1/verify/{urllib.parse.quote(token, safe='')}"
    if not url.startswith(("http://", "https://")):
        return {"status": NOT_REACHABLE, "reason": "http.public_url is not an http(s) URL"}
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=ONLINE_TIMEOUT_SECONDS) as reply:  # noqa: S310
            body = reply.read(MAX_ONLINE_REPLY_BYTES)
    except urllib.error.HTTPError as exc:
        # The endpoint may answer an unknown token with 404 and a JSON body.
        with exc:
            body = exc.read(MAX_ONLINE_REPLY_BYTES)
        answer = _parse_online(body)
        if answer is not None:
            return answer
        return {"status": NOT_REACHABLE, "reason": f"HTTP {exc.code}"}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return {"status": NOT_REACHABLE, "reason": str(reason)}
    answer = _parse_online(body)
    if answer is None:
        return {"status": NOT_REACHABLE, "reason": "the reply is not a verification status"}
    return answer


def _parse_online(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("status") not in ONLINE_STATUSES:
        return None
    revoked = data.get("revoked")
    if isinstance(revoked, dict):
        revoked = {"at": revoked.get("at"), "reason": revoked.get("reason")}
    else:
        revoked = None
    return {"status": data["status"], "revoked": revoked}


def _online_line(online: dict[str, Any] | None) -> str:
    if online is None:
        return "online status: not asked (--offline)"
    status = online["status"]
    if status == NOT_REACHABLE:
        return f"online status: not reachable ({online.get('reason')})"
    if status == "revoked":
        revoked = online.get("revoked") or {}
        at, why = revoked.get("at") or "unknown time", revoked.get("reason") or "no reason given"
        return f"online status: REVOKED at {at}: {why}"
    if status == "unknown":
        return "online status: unknown (the gateway has no record of this message)"
    if status == "forged":
        return "online status: FORGED (the gateway does not recognise this token)"
    return "online status: valid (not revoked)"


def _text(result: dict[str, Any]) -> str:
    if result["signature"] != "valid":
        return f"signature:  FORGED: {result['reason']}"
    lines = [
        f"signature:  valid (key {result['key_id']}, {result['key']})",
        f"registry:   {result['registry']}",
        f"agency:     {result['agency']}",
        f"issued at:  {result['issued_at']} (UTC)",
        f"documents:  {result['document_count']}",
    ]
    for slot in result["digests"]:
        lines.append(f"  {slot['documents']:>6}  sha256 {slot['sha256_prefix']}…")
    lines.append(_online_line(result["online"]))
    return "\n".join(lines)


@click.command("verify")
@common
@click.argument("what", metavar="TOKEN|FILE|IMAGE")
@click.option("--offline", is_flag=True, help="Check the signature only; do not ask the gateway.")
@click.pass_context
def verify_cmd(ctx: click.Context, what: str, offline: bool) -> None:
    """Check a verification token: a token, a verify URL, a delivered .eml file or a
    photo of the QR code (PNG, JPEG).

    The signature is checked offline with the gateway's current and retired public
    keys (no database); then, unless --offline, the gateway is asked whether the
    message was revoked. Exits 1 when the token is forged or the message revoked.
    """
    settings = settings_from(config_path(ctx))
    token, source = find_token(what)
    try:
        keys = load_gateway_keys(settings.keys_dir)
    except KeyFileError as exc:
        raise CliError(f"gateway keys: {exc}") from None
    checked = verify_token(token, keys.verification_keys)
    result: dict[str, Any] = {"ok": True, "source": source, "token": token.upper()}
    failure: str | None = None
    if isinstance(checked, TokenError):
        result.update(ok=False, signature="forged", problem=checked.problem.value)
        result["reason"] = checked.message
        failure = f"token is {checked.message}"
    else:
        result.update(signature="valid", **_facts(checked, keys.signing_key_id))
        online = None if offline else online_status(settings.http.public_url, token.upper())
        result["online"] = online
        if online is not None and online["status"] in ("revoked", "forged"):
            result["ok"] = False
            failure = f"{result['registry']}: {_online_line(online)}"
    if failure is None:
        emit(result, lambda: _text(result), as_json=want_json(ctx))
        return
    if want_json(ctx):  # one JSON object: the facts with "ok": false and "error"
        raise CliError(failure, EXIT_FAILURE, details=result)
    emit(result, lambda: _text(result), as_json=False)
    raise CliError(failure, EXIT_FAILURE)


# ---------------------------------------------------------------- revoke


@click.command("revoke")
@common
@click.argument("registry")
@click.option(
    "--reason",
    required=True,
    help="Why (one line, at most 500 characters); recorded and shown to verifiers.",
)
@click.pass_context
def revoke_cmd(ctx: click.Context, registry: str, reason: str) -> None:
    """Revoke an issued official message: verification then reports it revoked."""
    try:
        reason = check_revoke_reason(reason)
    except ValueError as exc:
        raise CliError(f"--reason: {exc}", EXIT_USAGE) from None
    data = messages.Revocation(registry=registry, reason=reason)
    result = call(ctx, lambda actor, app: messages.revoke_message(actor, app, data)).model_dump()
    emit(
        result,
        f"revoked {result['registry']} at {result['revoked_at']}: {result['reason']}",
        as_json=want_json(ctx),
    )
