"""Apple configuration profile (.mobileconfig) for Mail on iOS, iPadOS and macOS:
one com.apple.mail.managed payload with the IMAP and SMTP settings.

Owns: the property list (plistlib). The profile is unsigned and carries no
password: the device asks for it while installing. Its identifiers are derived
from host and address, so installing it again replaces the earlier copy.
Must not: read the clock or the directory (the caller decides who may have one).
"""

from __future__ import annotations

import plistlib
import uuid
from typing import Any

from gateway.http.clientconfig.model import MailDomain, MailEndpoints

CONTENT_TYPE = "application/x-apple-aspen-config"
_NAMESPACE = uuid.UUID("5b0f2b8e-6f5a-4c39-9a59-0c3e9b6f6d11")  # Barid's own uuid5 namespace


def mobileconfig(address: str, domain: MailDomain, endpoints: MailEndpoints) -> bytes:
    """The profile for `address` (already checked) in XML plist form."""
    host = endpoints.hostname
    identifier = ".".join(reversed(host.split("."))) + ".barid.mail"
    imap = endpoints.incoming[0]  # implicit TLS: Mail's "Use SSL" means TLS from the start
    smtp = endpoints.outgoing[0]
    account: dict[str, Any] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.account.{_uuid('account', host, address)}",
        "PayloadUUID": _uuid("account", host, address),
        "PayloadDisplayName": f"{domain.display_name} ({address})",
        "EmailAccountDescription": f"{domain.display_name}",
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": host,
        "IncomingMailServerPortNumber": imap.port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": host,
        "OutgoingMailServerPortNumber": smtp.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
        "SMIMEEnabled": False,
    }
    profile: dict[str, Any] = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.profile.{_uuid('profile', host, address)}",
        "PayloadUUID": _uuid("profile", host, address),
        "PayloadDisplayName": f"{domain.display_name}: {address}",
        "PayloadDescription": "Official mail account (Barid) / حساب البريد الرسمي (بريد)",
        "PayloadOrganization": domain.display_name,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def _uuid(kind: str, host: str, address: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}\n{host}\n{address}")).upper()
