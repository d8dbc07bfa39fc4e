"""A real Dovecot for tests and benchmarks: Debian's `/usr/sbin/dovecot` on 127.0.0.1, TLS only.

`dovecot_server(path, users)` (a context manager) writes a minimal configuration
in a short temporary directory under /tmp (Dovecot's unix sockets need short
paths) and starts `dovecot -F` in the foreground:

- a test CA made with `cryptography` (P-256) and a server certificate it issued
  for `localhost` and `127.0.0.1` (DNS and IP SANs); `Dovecot.ca_file` is the CA's
  PEM file, the trust anchor a client needs; `make_ca()` makes other CAs (e.g.
  one a client must not trust);
- `imaps_port`: implicit TLS; `imap_port`: plain IMAP that offers STARTTLS;
  `ssl = required`, so no LOGIN is accepted before TLS on either;
- users from a passwd-file passdb/userdb (`{PLAIN}` passwords, fine in tests)
  with maildir storage under the temporary directory, and a master user in a
  passwd-file master passdb with `auth_master_user_separator = *`: logging in as
  `user@domain*barid` with the master password opens user@domain's mailboxes;
- the quota plugin with `quota_max_mail_size = max_mail_size` (a bigger APPEND
  gets `NO [LIMIT]`), unless `quota=False`; `extra_config` is appended verbatim;
- with `lmtp=True` an LMTP listener too (`lmtp_port`, for delivery baselines);
  `password_hash` stores each password as its result (e.g. Argon2id) instead of
  `{PLAIN}`, so LOGIN costs what it costs elsewhere;
- everything logged to `Dovecot.log` (read it with `log_text()` when a test fails).

After a failed login Dovecot's auth penalty delays the next login from the same
address by seconds (`auth_failure_delay = 0` only removes the delay of the failure
itself): tests of wrong passwords want a server of their own, and `maildir_files()`
looks into a mailbox without logging in.

As root, Dovecot runs as the `dovecot` account (never root); otherwise as the
current user, which is then also its default login and internal user. Start-up waits at most `START_TIMEOUT` seconds for the
ports; the server is stopped (SIGTERM, then SIGKILL) and the directory removed at
the end. `find_dovecot()` returns the binary's path or None: the caller decides
to skip (tests use conftest's `need_tool`).
"""

from __future__ import annotations

import datetime as dt
import imaplib
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testkit.ports import free_port

DOVECOT = "/usr/sbin/dovecot"
START_TIMEOUT = 15.0  # seconds for both ports to listen
STOP_TIMEOUT = 10.0
MASTER_USER = "barid"
MASTER_PASSWORD = "master-secret-Q7"


def find_dovecot() -> str | None:
    """Path of the dovecot binary (PATH first, then Debian's /usr/sbin), or None."""
    found = shutil.which("dovecot")
    if found:
        return found
    return DOVECOT if os.access(DOVECOT, os.X_OK) else None


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class TestCa:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    pem: Path  # the CA certificate, PEM

    __test__ = False  # not a pytest test class


def make_ca(directory: Path, name: str = "Barid Test CA") -> TestCa:
    """A self-signed CA (P-256), its certificate written to `directory/<name>.pem`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = directory / (name.replace(" ", "-").lower() + ".pem")
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TestCa(key, cert, pem)


def issue_server_cert(
    ca: TestCa, names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> tuple[bytes, bytes]:
    """(certificate PEM, PKCS#8 key PEM) for a TLS server, issued by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


# ---------------------------------------------------------------- the server


@dataclass(frozen=True)
class Dovecot:
    host: str
    imaps_port: int  # implicit TLS
    imap_port: int  # STARTTLS
    ca_file: Path  # the test CA that issued the server certificate (PEM)
    base: Path
    log: Path
    users: Mapping[str, str]  # address -> password
    master_user: str
    master_password: str
    version: str
    lmtp_port: int = 0  # 0: no LMTP listener

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def _account() -> tuple[int, int, str]:
    """(uid, gid, name) to run Dovecot as: the `dovecot` account as root, else ourselves."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name
    account = pwd.getpwnam("dovecot")  # KeyError: Debian's package creates it
    return account.pw_uid, account.pw_gid, account.pw_name


def _quota(max_mail_size: str) -> str:
    return f"""mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_max_mail_size = {max_mail_size}
}}
"""


def _lmtp(port: int) -> str:
    return f"""service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


def _config(base: Path, name: str, uid: int, gid: int, imap: int, imaps: int,
            features: str, extra: str) -> str:  # fmt: skip
    return f"""# Generated by testkit/dovecot.py
protocols = imap{" lmtp" if "service lmtp" in features else ""}
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
instance_name = barid-test-{base.name}
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
auth_verbose = yes
auth_failure_delay = 0
ssl = required
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
ssl_min_protocol = TLSv1.2
default_login_user = {name}
default_internal_user = {name}
default_internal_group = {name}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:~/Maildir
postmaster_address = postmaster@test.example
auth_mechanisms = plain login
auth_master_user_separator = *
{features}
passdb {{
  driver = passwd-file
  master = yes
  args = username_format=%u {base}/master-users
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"""


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline: float, log: Path) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"dovecot exited with {proc.returncode} at start-up:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"dovecot did not listen on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


@contextmanager
def dovecot_server(
    dovecot: str,
    users: Mapping[str, str],
    *,
    master_user: str = MASTER_USER,
    master_password: str = MASTER_PASSWORD,
    max_mail_size: str = "64k",
    userdb_extra: Mapping[str, str] | None = None,
    extra_config: str = "",
    quota: bool = True,
    lmtp: bool = False,
    password_hash: Callable[[str], str] | None = None,
) -> Iterator[Dovecot]:
    """Dovecot (binary `dovecot`) with `users` (address -> password); see the module doc.

    `userdb_extra` maps an address to extra passwd-file fields, e.g.
    `"userdb_quota_rule=*:messages=1"` (a quota of one message).
    """
    uid, gid, name = _account()
    base = Path(tempfile.mkdtemp(prefix="bdc", dir="/tmp"))  # short: unix socket paths
    proc: subprocess.Popen[bytes] | None = None
    try:
        for sub_dir in ("run", "state", "home"):
            (base / sub_dir).mkdir()
        ca = make_ca(base)
        cert, key = issue_server_cert(ca)
        (base / "cert.pem").write_bytes(cert)
        (base / "key.pem").write_bytes(key)
        extra = userdb_extra or {}
        stored = password_hash or (lambda p: "{PLAIN}" + p)
        lines = [f"{a}:{stored(p)}:{uid}:{gid}::{base}/home/{a}::{extra.get(a, '')}"
                 for a, p in users.items()]  # fmt: skip
        (base / "passwd").write_text("\n".join(lines) + "\n")
        (base / "master-users").write_text(f"{master_user}:{{PLAIN}}{master_password}\n")
        imap, imaps = free_port(), free_port()
        while imaps == imap:
            imaps = free_port()
        lmtp_port = 0
        while lmtp and lmtp_port in (0, imap, imaps):
            lmtp_port = free_port()
        features = (_quota(max_mail_size) if quota else "") + (_lmtp(lmtp_port) if lmtp else "")
        conf = base / "dovecot.conf"
        conf.write_text(_config(base, name, uid, gid, imap, imaps, features, extra_config))
        for path in (base, *base.rglob("*")):
            os.chown(path, uid, gid)
        version = subprocess.run([dovecot, "--version"], capture_output=True, text=True,
                                 timeout=15, check=False).stdout.strip()  # fmt: skip
        log = base / "dovecot.log"
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            as_user = {"user": uid, "group": gid, "extra_groups": []}
        with (base / "stderr.log").open("wb") as out:
            proc = subprocess.Popen(
                [dovecot, "-F", "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(base)},
                **as_user,
            )
        deadline = time.monotonic() + START_TIMEOUT
        _wait_for_port(proc, imaps, deadline, base / "stderr.log")
        _wait_for_port(proc, imap, deadline, base / "stderr.log")
        if lmtp:
            _wait_for_port(proc, lmtp_port, deadline, base / "stderr.log")
        yield Dovecot("127.0.0.1", imaps, imap, ca.pem, base, log, dict(users),
                      master_user, master_password, version, lmtp_port)  # fmt: skip
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


def maildir_files(server: Dovecot, user: str, folder: str = "INBOX") -> list[Path]:
    """The message files of `user`'s `folder`, from the disk (no IMAP login: after a
    failed login Dovecot delays the next one from the same address by seconds)."""
    root = server.base / "home" / user / "Maildir"
    if folder != "INBOX":
        root = root / f".{folder}"
    return sorted(
        p for sub in ("new", "cur") if (root / sub).is_dir() for p in (root / sub).iterdir()
    )


def read_messages(server: Dovecot, user: str, folder: str = "INBOX") -> list[bytes]:
    """Every message of `user`'s `folder`, in UID order, read as `user` himself over
    verified implicit TLS (Python's imaplib); [] when the folder does not exist."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    conn = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=context, timeout=10)
    try:
        conn.login(user, server.users[user])
        typ, _ = conn.select(folder, readonly=True)
        if typ != "OK":
            return []
        typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[])")
        if typ != "OK":
            raise AssertionError(f"UID FETCH failed: {data!r}")
        return [item[1] for item in data if isinstance(item, tuple)]
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            conn.shutdown()
