"""The admin sign-in shares the running gateway's login throttle with SMTP AUTH:
wrong passwords over a real SMTP connection lock that address's admin sign-in,
and wrong TOTP codes at the admin sign-in lock that address's SMTP AUTH."""

from __future__ import annotations

from typing import Any

import aiosmtplib
import pyotp
import pytest

from admin.services.account_base import AccountKeys
from admin.services.account_services import AccountServices
from admin.services.actor import Actor, Role
from admin.services.login import LoginRefused

MINISTER = "minister@mof.gov.example"
ATTACKER, OTHER = "127.0.0.2", "127.0.0.3"


async def smtp_login(live: Any, source: str, user: str, secret: str) -> str:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=live.gateway.smtp_ports["submission"], start_tls=True,
        tls_context=live.tls, timeout=10, source_address=(source, 0),
    )  # fmt: skip
    await client.connect()
    try:
        await client.ehlo()
        await client.auth_plain(user, secret)
        return "ok"
    except aiosmtplib.SMTPAuthenticationError as exc:
        return "failed" if exc.code == 535 else "throttled"
    finally:
        client.close()


async def test_one_throttle_for_smtp_and_admin_sign_in(live: Any) -> None:
    gateway = live.gateway
    assert gateway.authenticator is not None
    services = AccountServices.build(
        gateway.sessions,
        AccountKeys.from_gateway(live.gateway_keys),
        authenticator=gateway.authenticator,
    )
    assert services.logins is not None
    cli = Actor("cli:tester", Role.SYSTEM_ADMIN)
    await services.grants.grant(cli, MINISTER, "agency-admin", agency="MOF")
    enrolment = await services.two_factor.enrol(cli, MINISTER)
    totp = pyotp.parse_uri(enrolment.uri)
    await services.two_factor.confirm(cli, MINISTER, totp.now())
    right = str(live.credentials[MINISTER]["password"])

    for _ in range(5):
        assert await smtp_login(live, ATTACKER, MINISTER, "wrong guess") == "failed"
    with pytest.raises(LoginRefused) as refused:
        await services.logins.authenticate_password_totp(MINISTER, right, totp.now(), ATTACKER)
    assert refused.value.reason == "throttled"

    assert await smtp_login(live, OTHER, MINISTER, right) == "ok"  # a known address
    for _ in range(5):
        with pytest.raises(LoginRefused) as refused:
            await services.logins.authenticate_password_totp(MINISTER, right, "000000x", OTHER)
        assert refused.value.detail == "wrong-code"
    assert await smtp_login(live, OTHER, MINISTER, right) == "throttled"
    await gateway.authenticator.drain()
