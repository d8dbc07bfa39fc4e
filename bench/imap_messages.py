"""The IMAP benchmark's messages: realistic ~4 KB letters in Arabic and English for
the header fetch, one big message, and gpg-signed PGP/MIME letters for delivery.
Builds bytes only: no server, no timing.
"""

from __future__ import annotations

import base64
import email.utils
import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from bench import bench_submission as sub
from bench.imap_setup import IMAP_USER, SENDER, BenchError

if TYPE_CHECKING:
    pass

# ---------------------------------------------------------------- messages

_PEOPLE = (
    ("Layla Hassan", "director@cab.gov.example"), ("Omar Saleh", "registrar@cab.gov.example"),
    ("Huda Karim", "clerk@cab.gov.example"), ("Karim Abbas", "minister@moh.gov.example"),
    ("Maryam Taha", "registrar@moh.gov.example"),
    ("Sara Jamil", "planning.director@moh.gov.example"),
    ("Hadi Nouri", "minister@mof.gov.example"), ("Noor Kadhim", "budget.director@mof.gov.example"),
    ("Ali Jaber", "governor@gov-bsr.gov.example"), ("Zahra Amin", "registrar@gov-bsr.gov.example"),
)  # fmt: skip
_TOPICS = (
    "Quarterly budget review", "Procurement of medical supplies", "Staff training schedule",
    "Draft regulation on records retention", "Meeting of the planning committee",
    "Audit findings for the northern directorate", "Annual statistics report",
    "Maintenance of the data centre", "Request for personnel files", "Travel authorisation",
)  # fmt: skip
_ARABIC_SUBJECTS = (
    "مراجعة الميزانية الفصلية", "جدول التدريب", "محضر اجتماع لجنة التخطيط",
    "طلب معلومات إضافية", "تقرير الإحصاء السنوي",
)  # fmt: skip
_ARABIC = (
    "نود إعلامكم بأن اللجنة ستعقد اجتماعها القادم في مقر الوزارة",
    "يرجى التفضل بالاطلاع واتخاذ ما يلزم بشأن الموضوع المذكور أعلاه",
    "وذلك استنادًا إلى التعليمات النافذة والكتاب المرسل إليكم سابقًا",
    "مع التقدير والاحترام، ونأمل تزويدنا بالمعلومات المطلوبة في أقرب وقت",
    "تم تدقيق البيانات المرفقة ولم تُسجّل أي ملاحظات جوهرية عليها",
)  # fmt: skip
_ENGLISH = (
    "Please find below the points agreed at the last meeting of the committee.",
    "The directorate is asked to send the updated figures before the end of the month.",
    "We would be grateful for your comments on the attached draft at your earliest convenience.",
    "The figures for the third quarter have been reconciled with the ledger.",
    "The training sessions will take place in the main hall from 9:00 to 13:00.",
    "Any questions about the procedure may be addressed to the registry.",
)  # fmt: skip


def _wrap(text: str, width: int = 72) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _subject(rng: random.Random, n: int) -> str:
    if rng.random() < 0.3:
        text = f"{rng.choice(_ARABIC_SUBJECTS)} ({n})"
        return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="
    return f"{rng.choice(('', 'Re: ', 'Fwd: '))}{rng.choice(_TOPICS)} ({n})"


def header_messages(count: int, seed: int) -> list[bytes]:
    """`count` distinct messages of about 4 KB with 16 header fields, like a ministry's INBOX."""
    rng = random.Random(seed)
    start = time.time() - count * 600
    out = []
    for n in range(count):
        (from_name, frm), (to_name, to), (cc_name, cc) = rng.sample(_PEOPLE, 3)
        domain = frm.split("@")[1]
        date = email.utils.formatdate(start + n * 600, localtime=False)
        parent = f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@{domain}>"
        ip = ".".join(str(rng.randrange(1, 255)) for _ in range(3))
        headers = [
            ("Return-Path", f"<{frm}>"),
            ("Received", f"from mail.{domain} (mail.{domain} [10.{ip}])\r\n\tby mx1.cab.gov.example"
                         f" with ESMTPS id {rng.getrandbits(64):016x}\r\n\tfor <{to}>; {date}"),
            ("Received", f"from [10.{ip}] (helo=ws-{n:04d}.{domain})\r\n\tby mail.{domain} with"
                         f" ESMTPSA id {rng.getrandbits(48):012x}; {date}"),
            ("Message-ID", f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@{domain}>"),
            ("Date", date),
            ("From", f'"{from_name}" <{frm}>'),
            ("To", f'"{to_name}" <{to}>'),
            ("Cc", f'"{cc_name}" <{cc}>'),
            ("Subject", _subject(rng, n)),
            ("In-Reply-To", parent),
            ("References", f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@{domain}> {parent}"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=UTF-8; format=flowed"),
            ("Content-Transfer-Encoding", "8bit"),
            ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101"
                           " Thunderbird/115.12.2"),
            ("Content-Language", "ar"),
        ]  # fmt: skip
        head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode()
        want = 4096 + rng.randrange(-400, 400) - len(head) - 2
        body = bytearray()
        while len(body) < want:
            paragraph = " ".join(rng.choice(_ARABIC if rng.random() < 0.5 else _ENGLISH)
                                 for _ in range(rng.randrange(2, 5)))  # fmt: skip
            body += ("\r\n".join(_wrap(paragraph)) + "\r\n\r\n").encode()
        out.append(head + b"\r\n" + bytes(body).rstrip(b"\r\n") + b"\r\n")
    return out


def header_block(raw: bytes) -> bytes:
    return raw[: raw.index(b"\r\n\r\n") + 4]


def big_message(mib: int) -> bytes:
    """One message of `mib` MiB: a short text and a base64 attachment of random bytes."""
    target = mib * 1024 * 1024
    payload = os.urandom(target * 3 // 4 - 2048)
    encoded = base64.b64encode(payload)
    lines = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    head = (
        f"From: {SENDER}\r\nTo: {IMAP_USER}\r\nSubject: Scanned archive\r\n"
        f"Date: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@bench.example>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="big"\r\n\r\n'
        "--big\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nThe archive is attached.\r\n"
        '--big\r\nContent-Type: application/pdf; name="archive.pdf"\r\n'
        'Content-Disposition: attachment; filename="archive.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode() + lines + b"\r\n--big--\r\n"



def signed_messages(secret_key: str, count: int, document_bytes: int) -> list[bytes]:
    """bench_submission's PGP/MIME messages, the first one signed alone: concurrent first
    uses of a freshly imported key by one gpg-agent can fail ("Unmatched parentheses in
    S-expression"); a message whose signing fails is signed once more."""
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))  # short: gpg-agent socket path
    try:
        imported = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import",
                                   secret_key], capture_output=True, timeout=60)  # fmt: skip
        if imported.returncode != 0:
            raise BenchError(f"gpg --import failed: {imported.stderr.decode(errors='replace')}")

        def build(n: int) -> bytes:
            try:
                return sub.build_message(home, n, document_bytes)
            except sub.BenchError:
                return sub.build_message(home, n, document_bytes)

        first = build(0)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            return [first, *pool.map(build, range(1, count))]
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, timeout=60, check=False)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


