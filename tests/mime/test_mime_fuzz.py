"""Property: whatever bytes arrive, `analyze` answers with a value, never an exception.

A fuzz target (tests/fuzz_targets.py `mime` is the same check for atheris);
`BARID_FUZZ_EXAMPLES=N` runs it longer."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mime import Analysis, MimeLimits, Rejection, analyze
from testkit.fuzz import examples
from testkit.mime_samples import attachment, default_headers, entity, message, multipart, text_part

LIMITS = MimeLimits(max_parts=30, max_depth=5)
SIGNATURE = b"-----BEGIN PGP SIGNATURE-----\r\n\r\niHUEARYIAB0WIQQ=\r\n=abcd\r\n-----END PGP SIGNATURE-----\r\n"


def _seed() -> bytes:
    qp = entity(
        [("Content-Type", "text/csv; name*0*=utf-8''%D8%A3; name*1=.csv"),
         ("Content-Transfer-Encoding", "quoted-printable")],
        b"a=3Db;c=\r\nd=C3=A9",
    )  # fmt: skip
    inner = multipart(
        "mixed", [text_part("text\n"), attachment("doc.pdf", b"%PDF-1.7 body"), qp], "in-b"
    )
    signed = multipart(
        "signed", [inner, entity([("Content-Type", "application/pgp-signature")], SIGNATURE)],
        "sig-b", '; protocol="application/pgp-signature"; micalg=pgp-sha256',
    )  # fmt: skip
    detached = [
        attachment("x.pdf", b"data"),
        attachment("x.pdf.sig", b"sig", "application/octet-stream"),
    ]
    headers = [
        *default_headers(From='"=?utf-8?b?2LnZhNmK?=" <ali.hassan@moh.gov.example> (note)'),
        ("Barid-Classification", "confidential"),
        ("SIO-Label", 'marking="SECRET"; type=":ess"; label=MQYGASkCAQQ='),
        ("Sensitivity", "Private"),
    ]
    return message(multipart("mixed", [signed, *detached], "top-b"), headers)


SEED = _seed()
TOKENS = [
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n--",
    b"--",
    b"top-b",
    b"in-b",
    b"sig-b",
    b"=?utf-8?q?",
    b"?=",
    b'"',
    b";",
    b"=",
    b"*0*=",
    b"(",
    b")",
    b"<",
    b">",
    b"@",
    b",",
    b":",
    b"\\",
    b"\t",
    b" ",
    b"\r",
    b"\n",
    b"\x00",
    b"\xff",
    b"\xd8\xa3",
    b"boundary=",
    b"multipart/",
    b"base64",
    b"%",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete", "token"]))
        if action == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        else:
            data[at:at] = draw(st.sampled_from(TOKENS))
    return bytes(data)


def check(raw: bytes) -> None:
    result = analyze(raw, LIMITS)
    assert isinstance(result, (Analysis, Rejection))
    if isinstance(result, Rejection):
        assert result.reason.isascii() and result.code in (550, 552)
    else:
        for unit in result.signed_units:
            assert all(0 <= i < len(result.documents) for i in unit.covers)


def test_seed_is_valid() -> None:
    result = analyze(SEED, LIMITS)
    assert isinstance(result, Analysis), result
    assert len(result.signed_units) == 2 and len(result.documents) == 3


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_never_raise(raw: bytes) -> None:
    check(raw)


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(raw: bytes) -> None:
    check(raw)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.sampled_from(["From", "Sender", "Content-Type", "Content-Disposition", "SIO-Label",
                     "Barid-Classification", "Sensitivity", "Content-Transfer-Encoding", "Subject"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
            max_size=80),
)  # fmt: skip
def test_random_header_values_never_raise(name: str, value: str) -> None:
    headers = [h for h in default_headers() if h[0] != name] + [(name, value)]
    check(message(multipart("mixed", [text_part("x"), attachment("a.pdf", b"y")], "hv"), headers))
