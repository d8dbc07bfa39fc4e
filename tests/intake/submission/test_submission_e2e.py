"""Official mail submission end to end (docs/CONTRACT.md §4-6): the reply table with
messages made the way mail clients make them, signed by real gpg and openssl."""

from __future__ import annotations

import email
import email.policy
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.store.messages import MessageStore
from gateway.store.models import DeliveryQueueEntry, Message, MessageCopy
from testkit.messages import (
    PDF,
    attachment,
    detached_cms,
    detached_openpgp,
    entity,
    multipart,
    pgp_mime,
    smime_signed,
    text_part,
    top_headers,
    unsigned,
)

MOH = "minister@moh.gov.example"  # has an OpenPGP key and an S/MIME certificate
MOF = "minister@mof.gov.example"
MOH_CLERK = "clerk@moh.gov.example"  # internal clearance
MOH_REGISTRAR = "registrar@moh.gov.example"
PLN_CLERK = "planning.clerk@moh.gov.example"  # public clearance, in a directorate


def code_of(live: Any, who: str) -> list[tuple[str, str]]:
    return [("Barid-Employee-Code", live.credentials[who]["code"])]


async def stored(live: Any) -> tuple[int, int, int]:
    async with live.gateway.sessions() as s:
        return (
            int(await s.scalar(select(func.count()).select_from(Message)) or 0),
            int(await s.scalar(select(func.count()).select_from(MessageCopy)) or 0),
            int(await s.scalar(select(func.count()).select_from(DeliveryQueueEntry)) or 0),
        )


def smime_files(live: Any) -> tuple[Path, Path]:
    files = live.credentials[MOH]["key_files"]
    return Path(files["s/mime certificate"]), Path(files["s/mime private key"])


async def accepted(live: Any, sender: str, rcpts: list[str], raw: bytes) -> str:
    code, text = await live.send(sender, rcpts, raw)
    assert code == 250, (code, text)
    assert text.startswith("2.0.0 Accepted ")
    return text.split()[-1]


# ---- accepted forms ---------------------------------------------------------------


async def test_pgp_mime_letter_is_stored_stamped_and_queued(live: Any, gnupghome: Path) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF, MOH_REGISTRAR], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF, MOH_REGISTRAR], raw)
    agency, year, serial = registry.split("/")
    assert agency == "MOH" and len(year) == 4 and serial.isdigit()
    assert await stored(live) == (1, 2, 2)
    store = MessageStore(live.gateway.sessions, live.gateway_keys.master_key, b"\0" * 32)
    message = await store.message_by_registry(registry)
    assert message is not None
    assert await store.load_original(message.id) == raw  # byte-identical
    copies = await store.copies_for(message.id)
    copy = email.message_from_bytes(await store.load_copy(copies[0].id), policy=email.policy.SMTP)
    assert copy["Barid-Registry"] == registry
    assert copy["Barid-Employee-Code"] == live.credentials[MOH]["code"]
    assert copy["Barid-Verify"].startswith("http") and "/v/" in copy["Barid-Verify"]
    inner = [p for p in copy.walk() if p.get_content_type() == "message/rfc822"]
    assert len(inner) == 1


async def test_code_carried_only_by_the_signing_key(live: Any, gnupghome: Path) -> None:
    raw = pgp_mime(gnupghome, MOF, MOF, [MOH])  # no Barid-Employee-Code header
    await accepted(live, MOF, [MOH], raw)


async def test_smime_multipart_signed(live: Any, need_tool: Any) -> None:
    need_tool("openssl")
    cert, key = smime_files(live)
    await accepted(live, MOH, [MOF], smime_signed(cert, key, MOH, [MOF]))


async def test_smime_opaque_signed_data(live: Any, need_tool: Any) -> None:
    need_tool("openssl")
    cert, key = smime_files(live)
    await accepted(live, MOH, [MOF], smime_signed(cert, key, MOH, [MOF], opaque=True))


async def test_detached_asc_and_p7s_beside_the_document(live: Any, gnupghome: Path,
                                                        need_tool: Any) -> None:  # fmt: skip
    need_tool("openssl")
    await accepted(live, MOH, [MOF], detached_openpgp(gnupghome, MOH, MOH, [MOF]))
    cert, key = smime_files(live)
    await accepted(live, MOH, [MOF], detached_cms(cert, key, MOH, [MOF]))


async def test_registry_numbers_are_consecutive(live: Any, gnupghome: Path) -> None:
    import asyncio

    raws = [pgp_mime(gnupghome, MOH, MOH, [MOF]) for _ in range(4)]
    replies = await asyncio.gather(*(live.send(MOH, [MOF], raw) for raw in raws))
    serials = sorted(int(text.split("/")[-1]) for code, text in replies if code == 250)
    assert serials == list(range(serials[0], serials[0] + 4)), replies


# ---- refused ----------------------------------------------------------------------


async def refused(live: Any, sender: str, rcpts: list[str], raw: bytes, code: int,
                  enhanced: str, *words: str) -> str:  # fmt: skip
    before = await stored(live)
    got, text = await live.send(sender, rcpts, raw)
    assert (got, text.split()[0]) == (code, enhanced), (got, text)
    for word in words:
        assert word in text, text
    assert await stored(live) == before  # nothing stored
    assert "Traceback" not in text and "Error" not in text
    return text


async def test_unsigned_attachment_beside_a_signed_part(live: Any, gnupghome: Path) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], outside=b"%PDF unsigned")
    await refused(live, MOH, [MOF], raw, 550, "5.7.1", "not signed")


async def test_no_signature_at_all(live: Any) -> None:
    await refused(live, MOH, [MOF], unsigned(MOH, [MOF], extra=code_of(live, MOH)), 550, "5.7.1")


async def test_signed_but_no_document(live: Any, gnupghome: Path) -> None:
    from testkit.messages import gpg

    inner = text_part("only text")
    sig = gpg(gnupghome, "--local-user", MOH, "--detach-sign", "--armor", data=inner)
    body = multipart([inner, entity([("Content-Type", "application/pgp-signature")], sig)], "s")
    raw = entity([*top_headers(MOH, [MOF], "t", code_of(live, MOH)),
                  ("Content-Type", 'multipart/signed; protocol="application/pgp-signature"; '
                                   'micalg=pgp-sha256; boundary="s"')], body)  # fmt: skip
    await refused(live, MOH, [MOF], raw, 550, "5.7.1", "No signed document")


async def test_valid_signature_of_another_employee(live: Any, gnupghome: Path) -> None:
    raw = pgp_mime(gnupghome, MOF, MOH, [MOF], extra=code_of(live, MOH))  # MOF signs for MOH
    await refused(live, MOH, [MOF], raw, 550, "5.7.1")


async def test_document_changed_after_signing(live: Any, gnupghome: Path) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH), tamper=True)
    await refused(live, MOH, [MOF], raw, 554, "5.7.5")


async def test_employee_code_of_someone_else(live: Any, gnupghome: Path) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOF))
    await refused(live, MOH, [MOF], raw, 550, "5.7.1", "employee code")


async def test_classification_above_a_recipients_clearance(live: Any, gnupghome: Path) -> None:
    extra = [*code_of(live, MOH), ("Barid-Classification", "secret")]
    raw = pgp_mime(gnupghome, MOH, MOH, [MOH_CLERK, MOH_REGISTRAR], extra=extra)
    text = await refused(live, MOH, [MOH_CLERK, MOH_REGISTRAR], raw, 550, "5.7.1")
    assert MOH_CLERK in text and MOH_REGISTRAR in text


async def test_classification_above_the_senders_clearance(live: Any, gnupghome: Path) -> None:
    extra = [*code_of(live, PLN_CLERK), ("Barid-Classification", "confidential")]
    raw = pgp_mime(gnupghome, PLN_CLERK, PLN_CLERK, [MOH], extra=extra)
    await refused(live, PLN_CLERK, [MOH], raw, 550, "5.7.1", "your clearance")


@pytest.mark.parametrize(
    "smuggle",
    [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\x00"],
)
async def test_smuggling_shapes_are_refused(live: Any, gnupghome: Path, smuggle: bytes) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    head, body = raw.split(b"\r\n\r\n", 1)
    bad = head + b"\r\n\r\n" + body.replace(b"\r\n", smuggle + b"MAIL FROM:<x@y>\r\n", 1)
    await refused(live, MOH, [MOF], bad, 550, "5.6.0")


async def test_from_header_must_be_the_sender(live: Any, gnupghome: Path) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    forged = raw.replace(f"From: {MOH}".encode(), f"From: {MOF}".encode(), 1)
    await refused(live, MOH, [MOF], forged, 550, "5.7.1")
    display = raw.replace(f"From: {MOH}".encode(), f'From: "{MOF}" <{MOH}>'.encode(), 1)
    await refused(live, MOH, [MOF], display, 550, "5.7.1")
    sender = raw.replace(b"MIME-Version", f"Sender: {MOF}\r\nMIME-Version".encode(), 1)
    await refused(live, MOH, [MOF], sender, 550, "5.7.1")


async def test_too_many_parts_and_too_deep(live: Any) -> None:
    many = multipart([text_part("x")] * 120, "m")
    raw = entity(
        [*top_headers(MOH, [MOF], "t"), ("Content-Type", 'multipart/mixed; boundary="m"')], many
    )
    await refused(live, MOH, [MOF], raw, 552, "5.3.4")
    deep = text_part("x")
    for level in range(15):
        deep = entity([("Content-Type", f'multipart/mixed; boundary="b{level}"')],
                      multipart([deep], f"b{level}"))  # fmt: skip
    raw = b"".join(f"{k}: {v}\r\n".encode() for k, v in top_headers(MOH, [MOF], "t")) + deep
    await refused(live, MOH, [MOF], raw, 552, "5.3.4")


async def test_malformed_mime(live: Any) -> None:
    raw = entity([*top_headers(MOH, [MOF], "t"), ("Content-Type", 'multipart/mixed; boundary="z"')],
                 b"--z\r\nContent-Type: text/plain\r\n\r\nno end boundary\r\n")  # fmt: skip
    await refused(live, MOH, [MOF], raw, 550, "5.6.0")


async def test_policy_refusal_names_the_rule(live: Any, gnupghome: Path) -> None:
    code, text = await live.send(PLN_CLERK, [MOF], b"x")  # directorate clerk -> other ministry
    assert code == 550 and text.startswith("5.7.1") and "(policy " in text, text


async def test_unknown_recipient(live: Any) -> None:
    code, text = await live.send(MOH, ["nobody@moh.gov.example"], b"x")
    assert (code, text.split()[0]) == (550, "5.1.1")


async def test_disk_nearly_full_gives_452(live: Any, gnupghome: Path) -> None:
    live.gateway.pipeline._min_free = 1 << 62  # more than any disk has
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    code, text = await live.send(MOH, [MOF], raw)
    assert (code, text.split()[0]) == (452, "4.3.1")


async def test_wrong_password_and_unknown_user(live: Any) -> None:
    assert (await live.send(MOH, [MOF], b"x", password="wrong-password-1"))[0] == 535
    assert (await live.send("ghost@moh.gov.example", [MOF], b"x", password="whatever-1234"))[
        0
    ] == 535


async def test_swaks_detached_signature(live: Any, gnupghome: Path, need_tool: Any,
                                        tmp_path: Path) -> None:  # fmt: skip
    swaks = need_tool("swaks")
    doc = tmp_path / "decree.pdf"
    doc.write_bytes(PDF)
    sig = tmp_path / "decree.pdf.asc"
    from testkit.messages import gpg

    sig.write_bytes(gpg(gnupghome, "--local-user", MOH, "--detach-sign", "--armor", data=PDF))
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        swaks, "--server", f"127.0.0.1:{live.port}", "--tls", "--tls-verify", "--tls-ca-path",
        str(live.data / "tls" / "cert.pem"), "--auth", "PLAIN", "--auth-user", MOH,
        "--auth-password", live.credentials[MOH]["password"], "--from", MOH, "--to", MOF,
        "--header", f"Barid-Employee-Code: {live.credentials[MOH]['code']}",
        "--header", "Subject: decree", "--body", "see the attached decree",
        "--attach-type", "application/pdf", "--attach", f"@{doc}",
        "--attach-type", "application/pgp-signature", "--attach", f"@{sig}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode() + err.decode()
    assert proc.returncode == 0, text
    assert "250 2.0.0 Accepted MOH/" in text


async def test_acceptances_and_refusals_are_audited(live: Any, gnupghome: Path) -> None:
    from gateway.store.audit import recent

    await accepted(live, MOH, [MOF], pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH)))
    await live.send(PLN_CLERK, [MOF], b"x")  # refused at RCPT by policy
    await live.send(MOH, [MOF], unsigned(MOH, [MOF], extra=code_of(live, MOH)))  # refused at DATA
    async with live.gateway.sessions() as s:
        accepts = await recent(s, action="message.accept")
        rejects = await recent(s, action="message.reject")
    assert accepts[-1]["target"].startswith("MOH/") and accepts[-1]["details"]["recipients"] == 1
    reasons = {(r["target"], r["details"]["reason"]) for r in rejects}
    assert (PLN_CLERK, "recipient") in reasons and (MOH, "unsigned") in reasons
    assert all(r["details"].get("rule") for r in rejects if r["details"]["reason"] == "recipient")


async def test_employee_code_missing(live: Any, make_cli: Any, tmp_path: Path) -> None:
    """A registered key whose user ID carries no code, and no Barid-Employee-Code header."""
    import shutil as _shutil
    import tempfile

    from testkit.messages import gpg

    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    try:
        gpg(
            home,
            "--passphrase",
            "",
            "--quick-gen-key",
            f"Karim Abbas <{MOH}>",
            "ed25519",
            "sign",
            "1y",
        )
        public = tmp_path / "nocode.asc"
        public.write_bytes(gpg(home, "--armor", "--export", MOH))
        cli = make_cli({"BARID_CONFIG": str(live.data / "barid.toml")})
        import asyncio

        result = await asyncio.to_thread(cli, "employee", "import-key", MOH, str(public))
        assert result.code == 0, result.err
        raw = pgp_mime(home, MOH, MOH, [MOF])
        await refused(live, MOH, [MOF], raw, 550, "5.7.1", "Employee code missing")
        # the same message with the header is fine: the key is registered
        raw = pgp_mime(home, MOH, MOH, [MOF], extra=code_of(live, MOH))
        await accepted(live, MOH, [MOF], raw)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                       capture_output=True)  # fmt: skip
        _shutil.rmtree(home, ignore_errors=True)


async def test_rate_limit_gives_450(live: Any, gnupghome: Path) -> None:
    policy = live.data / "policies.yaml"
    policy.write_text(policy.read_text().replace("rate_per_hour: {at_least: 300}",
                                                 "rate_per_hour: {at_least: 2}"))  # fmt: skip
    result = await live.gateway.policy.reload("test")
    assert result.ok, result.problems
    for _ in range(2):
        await accepted(
            live, MOH, [MOF], pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
        )
    code, text = await live.send(MOH, [MOF], b"x")
    assert (code, text.split()[0]) == (450, "4.7.1"), (code, text)


async def test_gnupg_backend_verifies_the_same(live: Any, gnupghome: Path) -> None:
    live.gateway.pipeline._openpgp_backend = "gnupg"  # keys.openpgp_backend = "gnupg"
    await accepted(live, MOH, [MOF], pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH)))
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH), tamper=True)
    await refused(live, MOH, [MOF], raw, 554, "5.7.5")


@pytest.mark.parametrize(
    "ctype", ["application/pgp-signature", "application/pkcs7-signature", "application/pdf"]
)
async def test_unsigned_part_labelled_as_a_signature_is_refused(
    live: Any, gnupghome: Path, ctype: str
) -> None:
    """A part that merely claims to be a signature, beside a signed letter, is content."""
    signed = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    head, _, body = signed.partition(b"\r\n\r\n")
    letter = b"\r\n".join(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-type"))
    letter += b"\r\n\r\n" + body
    payload = entity([("Content-Type", f'{ctype}; name="payload.pdf"'),
                      ("Content-Disposition", 'attachment; filename="payload.pdf"'),
                      ("Content-Transfer-Encoding", "base64")], b"JVBERi0xLjQK")  # fmt: skip
    raw = entity([*top_headers(MOH, [MOF], "t", code_of(live, MOH)),
                  ("Content-Type", 'multipart/mixed; boundary="wrap"')],
                 multipart([letter, payload], "wrap"))  # fmt: skip
    await refused(live, MOH, [MOF], raw, 550, "5.7.1", "not signed")


async def test_unknown_signature_protocol_hides_nothing(live: Any, gnupghome: Path) -> None:
    signed = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    head, _, body = signed.partition(b"\r\n\r\n")
    letter = b"\r\n".join(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-type"))
    letter += b"\r\n\r\n" + body
    raw = entity([*top_headers(MOH, [MOF], "t", code_of(live, MOH)),
                  ("Content-Type", 'multipart/signed; protocol="application/x-nothing"; '
                                   'boundary="odd"')],
                 multipart([letter, attachment("invoice.pdf", b"%PDF unsigned")], "odd"))  # fmt: skip
    await refused(live, MOH, [MOF], raw, 550, "5.7.1", "not signed")


async def test_signed_file_p7m_is_a_signed_document(live: Any, need_tool: Any) -> None:
    """`decree.pdf.p7m` as government signing tools make it: CMS signed-data over the file."""
    need_tool("openssl")
    from testkit.messages import b64, openssl_cms

    cert, key = smime_files(live)
    der = openssl_cms(cert, key, PDF, attached=True)
    part = entity([("Content-Type", 'application/pkcs7-mime; name="decree.pdf.p7m"'),
                   ("Content-Disposition", 'attachment; filename="decree.pdf.p7m"'),
                   ("Content-Transfer-Encoding", "base64")], b64(der))  # fmt: skip
    raw = entity([*top_headers(MOH, [MOF], "decree", code_of(live, MOH)),
                  ("Content-Type", 'multipart/mixed; boundary="p"')],
                 multipart([text_part("the signed decree"), part], "p"))  # fmt: skip
    registry = await accepted(live, MOH, [MOF], raw)
    store = MessageStore(live.gateway.sessions, live.gateway_keys.master_key, b"\0" * 32)
    message = await store.message_by_registry(registry)
    assert message is not None
    import hashlib

    assert [(d.name, d.sha256) for d in message.documents] == [
        ("decree.pdf", hashlib.sha256(PDF).hexdigest())
    ]


UUENCODED = "begin 644 payload.exe\n#86)C\n`\nend\n"


@pytest.mark.parametrize(
    ("subtype", "text"),
    [
        ("plain", f"see attached\n{UUENCODED}"),
        ("plain", "=ybegin line=128 size=3 name=payload.exe\nabc\n=yend size=3\n"),
        ("html", '<p>see</p><img src="data:application/pdf;base64,JVBERi0xLjQK">'),
    ],
)
async def test_unsigned_text_with_an_embedded_file_is_refused(
    live: Any, gnupghome: Path, subtype: str, text: str
) -> None:
    from testkit.messages import gpg

    sig = gpg(gnupghome, "--local-user", MOH, "--detach-sign", "--armor", data=PDF)
    body = entity(
        [("Content-Type", f"text/{subtype}; charset=utf-8")], text.replace("\n", "\r\n").encode()
    )
    raw = entity([*top_headers(MOH, [MOF], "t", code_of(live, MOH)),
                  ("Content-Type", 'multipart/mixed; boundary="h"')],
                 multipart([body, attachment("memo.pdf", PDF),
                            attachment("memo.pdf.asc", sig, "application/pgp-signature")], "h"))  # fmt: skip
    await refused(live, MOH, [MOF], raw, 550, "5.7.1", "embedded file")


async def test_signed_text_may_quote_anything(live: Any, gnupghome: Path) -> None:
    from testkit.messages import gpg

    inner = entity([("Content-Type", 'multipart/mixed; boundary="q"')],
                   multipart([text_part(f"quoting an old message:\n{UUENCODED}"),
                              attachment("letter.pdf", PDF)], "q"))  # fmt: skip
    sig = gpg(gnupghome, "--local-user", MOH, "--detach-sign", "--armor", data=inner)
    body = multipart([inner, entity([("Content-Type", "application/pgp-signature")], sig)], "s")
    raw = entity([*top_headers(MOH, [MOF], "t", code_of(live, MOH)),
                  ("Content-Type", 'multipart/signed; protocol="application/pgp-signature"; '
                                   'micalg=pgp-sha256; boundary="s"')], body)  # fmt: skip
    await accepted(live, MOH, [MOF], raw)


@pytest.mark.parametrize(
    ("display", "ok"),
    [
        ("Karim Abbas", True),
        ("Dr. KARIM  ABBAS", True),
        ("=?utf-8?b?2YPYsdmK2YUg2LnYqNin2LM=?=", True),  # كريم عباس
        ("Minister of Health", False),
        ("Hadi Nouri", False),  # another employee's name
    ],
)
async def test_from_display_name_must_be_the_senders_name(
    live: Any, gnupghome: Path, display: str, ok: bool
) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    raw = raw.replace(f"From: {MOH}".encode(), f"From: {display} <{MOH}>".encode(), 1)
    if ok:
        await accepted(live, MOH, [MOF], raw)
    else:
        await refused(live, MOH, [MOF], raw, 550, "5.7.1", "display name")


async def test_a_resubmission_of_the_same_bytes_gets_the_same_number(
    live: Any, gnupghome: Path
) -> None:
    """A client whose 250 was lost sends the message again: no second registry number."""
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    first = await accepted(live, MOH, [MOF], raw)
    again = await accepted(live, MOH, [MOF], raw)
    assert again == first
    assert await stored(live) == (1, 1, 1)
    other = await accepted(
        live, MOH, [MOF], pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    )
    assert other != first
