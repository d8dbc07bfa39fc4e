"""More people for the web admin's tests: any employee of the test world given a
role (a security auditor, a registrar of MOF), a password and a confirmed TOTP
secret, so the pages can be tried as every role, as testkit.admin_web does for
its two people."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from pydantic import SecretStr

from admin.services import employees
from admin.web.session import LANG_COOKIE
from testkit.admin_api import account_services
from testkit.admin_use_cases import MOH_NURSE, TAX_OTHER
from testkit.admin_web import CLI, PASSWORD, WebWorld, confirm_enrolment, sign_in

AUDITOR = MOH_NURSE
MOF_REGISTRAR = TAX_OTHER


async def add_person(web: WebWorld, address: str, role: str, agency: str | None) -> None:
    """Give `address` `role` (at `agency`), the test password and a TOTP secret
    (nothing to do for the people the world already signs in)."""
    if address in web.totp:
        return
    app = web.served.world.app
    services = account_services(app)
    reset = employees.PasswordReset(address=address, password=SecretStr(PASSWORD))
    await employees.reset_password(CLI, app, reset)
    await services.grants.grant(CLI, address, role, agency=agency)
    enrolment = await services.two_factor.enrol(CLI, address)
    secret = enrolment.uri.split("secret=")[1].split("&")[0]
    await confirm_enrolment(services, address, secret)
    web.totp[address] = secret


@contextlib.asynccontextmanager
async def signed_in_as(
    web: WebWorld, address: str, lang: str = "en"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as `address` through the sign-in form, its pages in `lang`."""
    async with httpx.AsyncClient(base_url=web.base, timeout=30) as client:
        client.cookies.set(LANG_COOKIE, lang)
        answer = await sign_in(client, address, web.code(address))
        assert answer.status_code == 303, answer.text
        yield client
