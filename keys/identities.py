"""Employee signing identities: an OpenPGP public key or an X.509 certificate, inspected.

Owns: parsing one identity file into a `SigningIdentity` (fingerprint, addresses,
employee codes, names, validity) and checking that it names its employee. Must not:
store identities, verify chains to an agency CA, or accept private key material.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import pysequoia
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pysequoia.packet import Packet, PacketPile, Tag

from policies.codes import CodeError, EmployeeCode

MAX_IDENTITY_BYTES = 1024 * 1024

PRIVATE_KEY_MESSAGE = "this is a private key; import the public key only"

IdentityKind = Literal["openpgp", "x509"]

_PRIVATE_PEM_RE = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PGP_ARMOR_RE = re.compile(rb"-----BEGIN PGP ([A-Z ,/0-9]+)-----")
_X509_PEM_RE = re.compile(rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----")
# The shape of an employee code anywhere in a text, not glued to other code-like text.
_CODE_SHAPE_RE = re.compile(
    r"(?<![A-Za-z0-9-])([A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*-[0-9]{6}-[0-9A-Za-z])(?![A-Za-z0-9-])"
)
_UID_EMAIL_RE = re.compile(r"<([^<>\s]+@[^<>\s]+)>\s*$")
_BARE_EMAIL_RE = re.compile(r"^[^\s<>()@]+@[^\s<>()@]+$")


class IdentityError(ValueError):
    """An identity file is refused; the message is one line saying why."""


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """What an employee's public key or certificate says about its holder.

    `fingerprint` is upper-case hex: the OpenPGP primary key fingerprint, or the
    SHA-256 of the X.509 certificate's DER encoding. `employee_codes` are the texts
    shaped like employee codes that the identity names (upper-cased, not checked).
    `not_after` is None when the key never expires. `email_protection` is None for
    OpenPGP keys.
    """

    kind: IdentityKind
    fingerprint: str
    addresses: tuple[str, ...]
    employee_codes: tuple[str, ...]
    display_names: tuple[str, ...]
    not_before: datetime.datetime | None
    not_after: datetime.datetime | None
    email_protection: bool | None
    subject: str  # X.509 subject (RFC 4514) or the OpenPGP user IDs joined by "; "

    def is_valid_at(self, when: datetime.datetime) -> bool:
        if self.not_before is not None and when < self.not_before:
            return False
        return self.not_after is None or when < self.not_after


def _unique(items: Iterable[str], *, fold: bool = False) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        item = item.strip()
        key = item.lower() if fold else item
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return tuple(out)


def codes_in(text: str) -> list[str]:
    """Every substring of `text` shaped like an employee code, upper-cased."""
    return [match.upper() for match in _CODE_SHAPE_RE.findall(text)]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ---------------------------------------------------------------- OpenPGP


def _split_user_id(uid: str) -> tuple[str, str | None]:
    """(display name, email or None) of an RFC 4880 style `Name (comment) <email>`."""
    match = _UID_EMAIL_RE.search(uid)
    if match:
        email: str | None = match.group(1)
        rest = uid[: match.start()]
    elif _BARE_EMAIL_RE.fullmatch(uid.strip()):
        return "", uid.strip()
    else:
        email, rest = None, uid
    name = re.sub(r"\([^()]*\)", " ", rest)
    return " ".join(name.split()), email


def _inspect_openpgp(data: bytes) -> SigningIdentity:
    try:
        packets: list[Packet] = list(PacketPile.from_bytes(data))
    except (RuntimeError, ValueError) as exc:
        raise IdentityError(f"truncated or malformed OpenPGP data ({_first_line(exc)})") from None
    tags = [packet.tag for packet in packets]
    if any(tag in (Tag.SecretKey, Tag.SecretSubkey) for tag in tags):
        raise IdentityError(PRIVATE_KEY_MESSAGE)
    if Tag.PublicKey not in tags:
        raise IdentityError("no OpenPGP public key found in this file")
    try:
        certs = pysequoia.Cert.split_bytes(data)
    except (RuntimeError, ValueError) as exc:
        raise IdentityError(f"malformed OpenPGP public key ({_first_line(exc)})") from None
    if len(certs) != 1:
        raise IdentityError(
            f"this file holds {len(certs)} OpenPGP keys; export only the employee's key"
        )
    cert = certs[0]
    if cert.is_revoked:
        raise IdentityError("this OpenPGP key has been revoked by its owner")
    try:
        user_ids = [str(uid) for uid in cert.user_ids]
        not_after = cert.expiration
    except (RuntimeError, ValueError) as exc:
        raise IdentityError(
            f"OpenPGP key has no valid self-signed user ID ({_first_line(exc)})"
        ) from None
    if not user_ids:
        raise IdentityError("OpenPGP key has no valid user ID naming its owner")
    primary = next(packet for packet in packets if packet.tag == Tag.PublicKey)
    names: list[str] = []
    addresses: list[str] = []
    codes: list[str] = []
    for uid in user_ids:
        name, email = _split_user_id(uid)
        names.append(name)
        if email:
            addresses.append(email)
        codes.extend(codes_in(uid))
    return SigningIdentity(
        kind="openpgp",
        fingerprint=cert.fingerprint.upper(),
        addresses=_unique(addresses, fold=True),
        employee_codes=_unique(codes),
        display_names=_unique(names),
        not_before=primary.key_created,
        not_after=not_after,
        email_protection=None,
        subject="; ".join(user_ids),
    )


# ---------------------------------------------------------------- X.509


def _attributes(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    values: list[str] = []
    for attribute in name.get_attributes_for_oid(oid):
        value = attribute.value
        values.append(value if isinstance(value, str) else value.decode("utf-8", "replace"))
    return values


def _inspect_x509(cert: x509.Certificate) -> SigningIdentity:
    try:
        subject = cert.subject
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is not None and constraints.ca:
            raise IdentityError(
                "this is a CA certificate; give the employee's own certificate"
                " (a CA is registered with `barid agency trust-ca`)"
            )
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            san_emails = san.get_values_for_type(x509.RFC822Name)
        except x509.ExtensionNotFound:
            san_emails = []
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            email_protection = ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
        except x509.ExtensionNotFound:
            email_protection = False
        codes: list[str] = []
        for serial in _attributes(subject, NameOID.SERIAL_NUMBER):
            codes.extend(codes_in(serial))
        return SigningIdentity(
            kind="x509",
            fingerprint=cert.fingerprint(hashes.SHA256()).hex().upper(),
            addresses=_unique(
                [*san_emails, *_attributes(subject, NameOID.EMAIL_ADDRESS)], fold=True
            ),
            employee_codes=_unique(codes),
            display_names=_unique(_attributes(subject, NameOID.COMMON_NAME)),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            email_protection=email_protection,
            subject=subject.rfc4514_string(),
        )
    except IdentityError:
        raise
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise IdentityError(f"malformed X.509 certificate ({_first_line(exc)})") from None


def _inspect_pem_certificates(data: bytes) -> SigningIdentity:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise IdentityError("truncated or malformed PEM certificate") from None
    if len(certs) != 1:
        raise IdentityError(
            f"this file holds {len(certs)} certificates; give only the employee's certificate"
        )
    return _inspect_x509(certs[0])


def _inspect_der(data: bytes) -> SigningIdentity:
    try:
        cert = x509.load_der_x509_certificate(data)
    except ValueError:
        pass
    else:
        return _inspect_x509(cert)
    try:
        serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise IdentityError(PRIVATE_KEY_MESSAGE) from None  # an encrypted private key
    except (ValueError, UnsupportedAlgorithm):
        pass
    else:
        raise IdentityError(PRIVATE_KEY_MESSAGE)
    raise IdentityError(
        "not an X.509 certificate or OpenPGP public key (truncated DER data, or a"
        " PKCS#12 bundle, which holds a private key: export the certificate only)"
    )


# ---------------------------------------------------------------- entry points


def inspect_identity(data: bytes) -> SigningIdentity:
    """Parse one OpenPGP public key (armored or binary) or X.509 certificate (PEM or DER).

    Raises IdentityError for private keys, several keys or certificates in one
    file, and anything truncated or unrecognised.
    """
    if not data.strip():
        raise IdentityError("the file is empty")
    if len(data) > MAX_IDENTITY_BYTES:
        raise IdentityError(f"the file is larger than {MAX_IDENTITY_BYTES // 1024} KiB")
    if _PRIVATE_PEM_RE.search(data):
        raise IdentityError(PRIVATE_KEY_MESSAGE)
    armor = _PGP_ARMOR_RE.search(data)
    if armor is not None:
        label = armor.group(1).decode("ascii")
        if label != "PUBLIC KEY BLOCK":
            raise IdentityError(f"this is an OpenPGP {label.lower()}, not a public key")
        return _inspect_openpgp(data)
    if _X509_PEM_RE.search(data):
        return _inspect_pem_certificates(data)
    if data.lstrip().startswith(b"-----BEGIN "):
        raise IdentityError("not an OpenPGP public key or an X.509 certificate")
    first = data[0]
    if first == 0x30:  # a DER SEQUENCE
        return _inspect_der(data)
    if first & 0x80:  # an OpenPGP packet header
        return _inspect_openpgp(data)
    raise IdentityError(
        "not an OpenPGP public key or an X.509 certificate (PEM, DER or binary OpenPGP)"
    )


def check_identity_owner(
    identity: SigningIdentity, address: str, employee_code: EmployeeCode | str
) -> None:
    """Raise IdentityError unless the identity belongs to this employee.

    It must name the employee's address and no other (compared without regard to
    case), and every employee code it names must be this employee's.
    """
    wanted = address.strip().lower()
    named = [a.lower() for a in identity.addresses]
    if wanted not in named:
        shown = ", ".join(identity.addresses) or "no address"
        raise IdentityError(f"the {_kind_label(identity)} names {shown}, not {address}")
    others = [a for a in identity.addresses if a.lower() != wanted]
    if others:
        raise IdentityError(
            f"the {_kind_label(identity)} also names {', '.join(others)};"
            f" it must name only {address}"
        )
    code = (
        employee_code
        if isinstance(employee_code, EmployeeCode)
        else EmployeeCode.parse(employee_code)
    )
    for text in identity.employee_codes:
        try:
            named_code = EmployeeCode.parse(text)
        except CodeError as exc:
            raise IdentityError(
                f"the {_kind_label(identity)} names {text}, not a valid employee code ({exc})"
            ) from None
        if named_code != code:
            raise IdentityError(
                f"the {_kind_label(identity)} names employee code {named_code}, not {code}"
            )


def _kind_label(identity: SigningIdentity) -> str:
    return "OpenPGP key" if identity.kind == "openpgp" else "certificate"
