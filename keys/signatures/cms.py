"""CMS SignedData signatures (RFC 5652) as S/MIME uses them (RFC 8551, certificates per RFC 8550).

Owns: parsing SignedData, checking the messageDigest attribute and the signature
over exactly the given bytes, and the signer certificate's usage, validity and
chain to a configured agency CA. Must not: re-serialise the signed content,
accept MD5 or SHA-1, trust certificates that the caller did not give as anchors,
or let exception text into a result.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from asn1crypto import cms as acms  # type: ignore[import-untyped]
from asn1crypto import pem as apem
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.identities import codes_in
from keys.signatures.result import SignatureResult, SignatureStatus, check_when, failure

MAX_DETACHED_SIGNATURE_BYTES = 1024 * 1024
MAX_SIGNERS = 8
MAX_CERTIFICATES = 32
MIN_RSA_BITS = 2048

# RFC 8551 §2.1 and RFC 5754: SHA-256/384/512; MD5 and SHA-1 are refused.
_HASHES: dict[str, tuple[type[hashes.HashAlgorithm], str]] = {
    "sha256": (hashes.SHA256, "sha256"),
    "sha384": (hashes.SHA384, "sha384"),
    "sha512": (hashes.SHA512, "sha512"),
}
_PEM_LABELS = ("PKCS7", "CMS")
_SIGNED_DATA_VERSIONS = ("v1", "v3", "v4", "v5")
_ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")
_NOT_A_CA_CHAIN = "the signer certificate does not chain to an agency CA"


@dataclass(slots=True)
class _Signer:
    """One SignerInfo (RFC 5652 §5.3), reduced to plain values."""

    digest: str
    signature_algorithm: str  # asn1crypto's name: rsassa_pkcs1v15, rsassa_pss, ecdsa, ...
    signature_hash: str | None  # the hash the signature algorithm names, if it names one
    pss: tuple[str, str, int] | None  # (hash, MGF1 hash, salt length)
    signed_attrs: bytes | None  # DER of the attributes, re-tagged as SET OF (§5.4)
    content_types: list[str]
    message_digests: list[bytes]
    signature: bytes
    certificate: x509.Certificate | None


@dataclass(slots=True)
class _SignedData:
    content_type: str
    content: bytes | None
    signers: list[_Signer]
    certificates: list[x509.Certificate] = field(default_factory=list)


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _candidates(
    signed_data: acms.SignedData, extra: Sequence[x509.Certificate]
) -> list[tuple[ax509.Certificate, x509.Certificate]]:
    found: list[tuple[ax509.Certificate, x509.Certificate]] = []
    for choice in signed_data["certificates"] or []:
        if choice.name != "certificate" or len(found) >= MAX_CERTIFICATES:
            continue
        der = choice.chosen.dump()
        try:
            found.append((choice.chosen, x509.load_der_x509_certificate(der)))
        except ValueError:
            continue
    for cert in extra:
        found.append((ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)), cert))
    return found


def _signer_certificate(
    sid: acms.SignerIdentifier, candidates: list[tuple[ax509.Certificate, x509.Certificate]]
) -> x509.Certificate | None:
    """The certificate a SignerIdentifier names (RFC 5652 §5.3): issuer+serial or SKI."""
    for parsed, cert in candidates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                parsed.serial_number == wanted["serial_number"].native
                and parsed.issuer == wanted["issuer"]
            ):
                return cert
        elif (
            sid.name == "subject_key_identifier"
            and parsed.key_identifier is not None
            and parsed.key_identifier == sid.chosen.native
        ):
            return cert
    return None


def _read_signer(
    info: acms.SignerInfo, candidates: list[tuple[ax509.Certificate, x509.Certificate]]
) -> _Signer:
    # RFC 5652 §5.3: version 1 with issuerAndSerialNumber, 3 with subjectKeyIdentifier.
    expected_version = "v1" if info["sid"].name == "issuer_and_serial_number" else "v3"
    if info["version"].native != expected_version:
        raise ValueError("SignerInfo version does not match its signer identifier")
    algorithm = info["signature_algorithm"]
    try:
        signature_hash: str | None = str(algorithm.hash_algo)
    except ValueError:  # rsaEncryption and bare ecdsa name no hash
        signature_hash = None
    pss = None
    if algorithm.signature_algo == "rsassa_pss":
        params = algorithm["parameters"]
        mgf = params["mask_gen_algorithm"]
        if (
            mgf["algorithm"].native != "mgf1"
            or params["trailer_field"].native != "trailer_field_bc"
        ):
            raise ValueError("unsupported PSS parameters")
        pss = (
            str(params["hash_algorithm"]["algorithm"].native),
            str(mgf["parameters"]["algorithm"].native),
            int(params["salt_length"].native),
        )
    attrs = info["signed_attrs"]
    signed_attrs = None
    content_types: list[str] = []
    digests: list[bytes] = []
    if isinstance(attrs, acms.CMSAttributes):
        contents = bytes(attrs.contents)
        signed_attrs = b"\x31" + _der_length(len(contents)) + contents
        for attr in attrs:
            kind = attr["type"].native
            values = list(attr["values"])
            if kind == "content_type":
                content_types.extend(str(v.native) for v in values)
            elif kind == "message_digest":
                digests.extend(bytes(v.native) for v in values)
    return _Signer(
        digest=str(info["digest_algorithm"]["algorithm"].native),
        signature_algorithm=str(algorithm.signature_algo),
        signature_hash=signature_hash,
        pss=pss,
        signed_attrs=signed_attrs,
        content_types=content_types,
        message_digests=digests,
        signature=bytes(info["signature"].native),
        certificate=_signer_certificate(info["sid"], candidates),
    )


def _parse(der: bytes, extra: Sequence[x509.Certificate]) -> _SignedData | SignatureResult:
    if der[:11] == b"-----BEGIN ":
        try:
            label, _headers, der = apem.unarmor(der)
        except Exception:  # the PEM reader raises several kinds on bad input
            return failure(SignatureStatus.MALFORMED, "the CMS signature cannot be parsed")
        if label not in _PEM_LABELS:
            return failure(SignatureStatus.MALFORMED, "not a CMS signature")
    try:
        info = acms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            return failure(SignatureStatus.MALFORMED, "not a CMS SignedData structure")
        signed = info["content"]
        # RFC 5652 §5.1: versions 1, 3, 4 or 5; the signers' digests are listed up front.
        if signed["version"].native not in _SIGNED_DATA_VERSIONS:
            return failure(SignatureStatus.MALFORMED, "unsupported CMS version")
        listed = {str(alg["algorithm"].native) for alg in signed["digest_algorithms"]}
        encap = signed["encap_content_info"]
        content = encap["content"].native if encap["content"].native is not None else None
        candidates = _candidates(signed, extra)
        infos = list(signed["signer_infos"])
        if not infos:
            return failure(SignatureStatus.MALFORMED, "the CMS structure holds no signature")
        if len(infos) > MAX_SIGNERS:
            return failure(SignatureStatus.MALFORMED, "too many signers")
        signers = [_read_signer(i, candidates) for i in infos]
        if any(signer.digest not in listed for signer in signers):
            return failure(SignatureStatus.MALFORMED, "a signer's digest is not listed")
        return _SignedData(
            content_type=str(encap["content_type"].native),
            content=None if content is None else bytes(content),
            signers=signers,
            certificates=[cert for _parsed, cert in candidates],
        )
    except Exception:  # asn1crypto parses lazily; hostile DER fails in many ways
        return failure(SignatureStatus.MALFORMED, "the CMS signature cannot be parsed")


# ---------------------------------------------------------------- the signature


def _extensions(cert: x509.Certificate) -> x509.Extensions | None:
    """The certificate's extensions, or None when they do not parse (read lazily)."""
    try:
        return cert.extensions
    except Exception:  # ValueError, DuplicateExtension, UnsupportedGeneralNameType, ...
        return None


def _identify(cert: x509.Certificate, status: SignatureStatus, reason: str) -> SignatureResult:
    codes: list[str] = []
    addresses: list[str] = []
    try:
        for attr in cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER):
            codes.extend(codes_in(str(attr.value)))
        for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
            addresses.append(str(attr.value))
        extensions = _extensions(cert)
        if extensions is not None:
            san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            addresses = [*san.get_values_for_type(x509.RFC822Name), *addresses]
    except (x509.ExtensionNotFound, ValueError):
        pass
    unique: dict[str, str] = {}
    for address in addresses:
        unique.setdefault(address.lower(), address)
    return SignatureResult(
        status=status,
        reason=reason,
        signer_fingerprint=cert.fingerprint(hashes.SHA256()).hex().upper(),
        employee_codes=tuple(dict.fromkeys(codes)),
        addresses=tuple(unique.values()),
    )


def _check_signature(signer: _Signer, cert: x509.Certificate, content: bytes) -> str | None:
    """None when the signature is good, else the reason (RFC 5652 §5.4, §5.6, §11)."""
    if signer.digest not in _HASHES:
        return "the signature uses a weak or unsupported digest"
    hash_class, hashlib_name = _HASHES[signer.digest]
    if signer.signature_hash is not None and signer.signature_hash != signer.digest:
        return "the signature and digest algorithms disagree"
    if signer.signed_attrs is not None:
        # §11.1 and §11.2: exactly one contentType and one messageDigest attribute.
        if signer.content_types != ["data"] or len(signer.message_digests) != 1:
            return "the signed attributes are incomplete"
        digest = hashlib.new(hashlib_name, content).digest()
        if not hmac.compare_digest(digest, signer.message_digests[0]):
            return "the signature does not match the signed data"
        signed = signer.signed_attrs
    else:
        signed = content
    try:
        key = cert.public_key()
        if signer.signature_algorithm == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                return "the signer's RSA key is too short"
            key.verify(signer.signature, signed, padding.PKCS1v15(), hash_class())
        elif signer.signature_algorithm == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                return "the signer's RSA key is too short"
            if signer.pss is None or signer.pss[:2] != (signer.digest, signer.digest):
                return "the RSA-PSS parameters do not match the digest"
            mgf = padding.MGF1(hash_class())
            key.verify(signer.signature, signed, padding.PSS(mgf, signer.pss[2]), hash_class())
        elif signer.signature_algorithm == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signer.signature, signed, ec.ECDSA(hash_class()))
        else:
            return "the signature algorithm is not supported"
    except InvalidSignature:
        return "the signature does not match the signed data"
    except (ValueError, UnsupportedAlgorithm):
        return "the signature algorithm is not supported"
    return None


# ---------------------------------------------------------------- the certificate


def _leaf_email_eku(
    _policy: verification.Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage
) -> None:
    if ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku:
        raise ValueError("emailProtection usage required")


def _ca_email_eku(
    _policy: verification.Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    if eku is not None and not {ExtendedKeyUsageOID.EMAIL_PROTECTION, _ANY_EKU} & set(eku):
        raise ValueError("CA not allowed to issue S/MIME certificates")


def _verifier(
    anchors: Sequence[x509.Certificate], when: datetime.datetime
) -> verification.ClientVerifier:
    # The client verifier's own EKU rule (clientAuth) is replaced by emailProtection
    # (RFC 8550 §4.4.4); a subjectAltName is optional in S/MIME certificates.
    agnostic = verification.Criticality.AGNOSTIC
    ee = (
        verification.ExtensionPolicy.webpki_defaults_ee()
        .require_present(x509.ExtendedKeyUsage, agnostic, _leaf_email_eku)
        .may_be_present(x509.SubjectAlternativeName, agnostic, None)
    )
    ca = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, agnostic, _ca_email_eku
    )
    return (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(when)
        .extension_policies(ca_policy=ca, ee_policy=ee)
        .build_client_verifier()
    )


def _check_certificate(
    cert: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    when: datetime.datetime,
) -> str | None:
    """None when the signer certificate is fit for S/MIME at `when`, else the reason."""
    if when < cert.not_valid_before_utc:
        return "the signer certificate is not yet valid"
    if when > cert.not_valid_after_utc:
        return "the signer certificate has expired"
    extensions = _extensions(cert)
    if extensions is None:
        return "the signer certificate cannot be parsed"
    try:
        eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "the signer certificate lacks the emailProtection usage"
    if ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku:
        return "the signer certificate lacks the emailProtection usage"
    try:
        usage: x509.KeyUsage | None = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    # RFC 8550 §4.4.2: digitalSignature or nonRepudiation when keyUsage is present.
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        return "the signer certificate may not be used for signatures"
    if not anchors:
        return "no agency CA is configured for the sender"
    try:
        _verifier(anchors, when).verify(cert, intermediates)
    except (verification.VerificationError, ValueError, TypeError):
        return _NOT_A_CA_CHAIN
    return None


# ---------------------------------------------------------------- the decision


def _verify(
    parsed: _SignedData,
    content: bytes,
    anchors: Sequence[x509.Certificate],
    registered: Sequence[x509.Certificate] | None,
    when: datetime.datetime,
) -> SignatureResult:
    outcomes: list[SignatureResult] = []
    for signer in parsed.signers:
        cert = signer.certificate
        if cert is None:
            outcomes.append(
                failure(SignatureStatus.UNKNOWN_SIGNER, "the signer certificate is not included")
            )
            continue
        problem = _check_signature(signer, cert, content)
        if problem is not None:
            outcomes.append(_identify(cert, SignatureStatus.BAD_SIGNATURE, problem))
            continue
        if registered is not None and cert not in registered:
            outcomes.append(
                _identify(
                    cert,
                    SignatureStatus.UNKNOWN_SIGNER,
                    "signed by a certificate that is not registered for the sender",
                )
            )
            continue
        intermediates = [c for c in parsed.certificates if c != cert]
        problem = _check_certificate(cert, intermediates, anchors, when)
        if problem is not None:
            outcomes.append(_identify(cert, SignatureStatus.UNTRUSTED, problem))
            continue
        return _identify(cert, SignatureStatus.VALID, "good signature")
    rank = [
        SignatureStatus.UNTRUSTED,
        SignatureStatus.BAD_SIGNATURE,
        SignatureStatus.UNKNOWN_SIGNER,
        SignatureStatus.MALFORMED,
    ]
    return min(outcomes, key=lambda r: rank.index(r.status))


def verify_cms_detached(
    data: bytes,
    signature_der: bytes,
    anchors: Sequence[x509.Certificate],
    *,
    when: datetime.datetime,
    registered: Sequence[x509.Certificate] | None = None,
) -> SignatureResult:
    """Verify a detached CMS signature (S/MIME application/pkcs7-signature, `.p7s`).

    `data` are exactly the signed bytes (for multipart/signed: the first part with
    its headers, CRLF line endings, RFC 8551 §3.5). `signature_der` is DER (or PEM).
    `anchors` are the agency CAs of the sender's agency and its parents. With
    `registered`, the signer certificate must also be one of them (else
    UNKNOWN_SIGNER); they are also used when the signature does not include the
    signer certificate. Never raises on hostile input.
    """
    check_when(when)
    if len(signature_der) > MAX_DETACHED_SIGNATURE_BYTES:
        return failure(SignatureStatus.MALFORMED, "the signature is too large")
    parsed = _parse(signature_der, registered or ())
    if isinstance(parsed, SignatureResult):
        return parsed
    if parsed.content is not None:
        return failure(SignatureStatus.MALFORMED, "expected a detached signature")
    if parsed.content_type != "data":
        return failure(SignatureStatus.MALFORMED, "unsupported signed content type")
    return _verify(parsed, data, anchors, registered, when)


def verify_cms_attached(
    p7m_der: bytes,
    anchors: Sequence[x509.Certificate],
    *,
    when: datetime.datetime,
    registered: Sequence[x509.Certificate] | None = None,
) -> tuple[SignatureResult, bytes | None]:
    """Verify CMS SignedData with encapsulated content (S/MIME signed-data, `.p7m`).

    Returns the result and, only when it is VALID, the encapsulated content
    (for S/MIME a MIME entity). The caller bounds the input size (the message
    size limit). Otherwise as `verify_cms_detached`.
    """
    check_when(when)
    parsed = _parse(p7m_der, registered or ())
    if isinstance(parsed, SignatureResult):
        return parsed, None
    if parsed.content is None:
        return failure(SignatureStatus.MALFORMED, "the signed data holds no content"), None
    if parsed.content_type != "data":
        return failure(SignatureStatus.MALFORMED, "unsupported signed content type"), None
    result = _verify(parsed, parsed.content, anchors, registered, when)
    return result, parsed.content if result.valid else None
