"""Thunderbird autoconfig: the Mozilla ISPDB "clientConfig version 1.1" document
served at /mail/config-v1.1.xml and /.well-known/autoconfig/mail/config-v1.1.xml.

Owns: that XML (ElementTree; every value escaped by the serializer). Must not:
name the employee (the username is Thunderbird's %EMAILADDRESS% placeholder, so
a known and an unknown address get the same document).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gateway.http.clientconfig.model import Endpoint, MailDomain, MailEndpoints, Security

CLIENT_CONFIG_VERSION = "1.1"
USERNAME_PLACEHOLDER = "%EMAILADDRESS%"
SOCKET_TYPES = {Security.IMPLICIT: "SSL", Security.STARTTLS: "STARTTLS"}
CONTENT_TYPE = "application/xml; charset=utf-8"


def autoconfig_xml(domain: MailDomain, endpoints: MailEndpoints) -> bytes:
    """The clientConfig document for `domain` (UTF-8, with an XML declaration)."""
    root = ET.Element("clientConfig", version=CLIENT_CONFIG_VERSION)
    provider = ET.SubElement(root, "emailProvider", id=domain.domain)
    _text(provider, "domain", domain.domain)
    _text(provider, "displayName", domain.display_name)
    _text(provider, "displayShortName", domain.code)
    for endpoint in endpoints.incoming:
        _server(provider, "incomingServer", "imap", endpoints.hostname, endpoint)
    for endpoint in endpoints.outgoing:
        _server(provider, "outgoingServer", "smtp", endpoints.hostname, endpoint)
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _server(parent: ET.Element, tag: str, kind: str, host: str, endpoint: Endpoint) -> None:
    server = ET.SubElement(parent, tag, type=kind)
    _text(server, "hostname", host)
    _text(server, "port", str(endpoint.port))
    _text(server, "socketType", SOCKET_TYPES[endpoint.security])
    _text(server, "authentication", "password-cleartext")  # inside TLS only
    _text(server, "username", USERNAME_PLACEHOLDER)


def _text(parent: ET.Element, tag: str, value: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = value
    return element
