"""The web admin served for tests: the admin API's test world (testkit.admin_api_server)
with three people who can sign in through the pages, with a password and a real
TOTP code, and a small HTTP client that signs in through the sign-in form.

MOH's doctor is a system administrator; MOF-TAX's clerk an agency administrator of
MOF; MOH's nurse a security auditor. The session cookie is Secure; over the tests'
plain loopback HTTP the client carries it by hand, as a browser does for a loopback
address.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
from pydantic import SecretStr

from admin.services import employees
from admin.services.account_base import AccountError
from admin.services.actor import Actor
from testkit.admin_api import account_services
from testkit.admin_api_server import Served, served_world
from testkit.admin_use_cases import MOH_DOCTOR, MOH_NURSE, TAX_CLERK

CLI = Actor.local_cli()
PASSWORD = "web admin pass phrase 7 trees"
SYSTEM_ADMIN = MOH_DOCTOR
MOF_ADMIN = TAX_CLERK
AUDITOR = MOH_NURSE
PEOPLE = {
    SYSTEM_ADMIN: ("system-admin", None),
    MOF_ADMIN: ("agency-admin", "MOF"),
    AUDITOR: ("security-auditor", None),
}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class WebWorld:
    served: Served
    totp: dict[str, str]  # address -> TOTP secret

    @property
    def base(self) -> str:
        return self.served.base

    def code(self, address: str) -> str:
        return pyotp.TOTP(self.totp[address]).now()


async def confirm_enrolment(services: Any, address: str, secret: str) -> None:
    """Confirm a TOTP enrolment with the previous step's code, so the current
    one stays unused for signing in. The code is computed afresh on each try:
    on a loaded machine the confirmation may wait for the database long enough
    for the step computed before it to fall out of the allowed drift."""
    for attempt in range(3):
        try:
            await services.two_factor.confirm(CLI, address, pyotp.TOTP(secret).at(time.time() - 30))
            return
        except AccountError:
            if attempt == 2:
                raise


@contextlib.asynccontextmanager
async def web_world(data: Path) -> AsyncIterator[WebWorld]:
    async with served_world(data) as served:
        app = served.world.app
        services = account_services(app)
        secrets = {}
        for address, (role, agency) in PEOPLE.items():
            reset = employees.PasswordReset(address=address, password=SecretStr(PASSWORD))
            await employees.reset_password(CLI, app, reset)
            await services.grants.grant(CLI, address, role, agency=agency)
            enrolment = await services.two_factor.enrol(CLI, address)
            secret = enrolment.uri.split("secret=")[1].split("&")[0]
            await confirm_enrolment(services, address, secret)
            secrets[address] = secret
        yield WebWorld(served, secrets)


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def carry(client: httpx.AsyncClient, response: httpx.Response) -> None:
    """Keep the cookies `response` set (or deleted) for the next requests."""
    for name, value in response.cookies.items():
        client.cookies.set(name, value)
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0]
        if "max-age=0" in header.lower() or '=""' in header:
            client.cookies.delete(name)


async def sign_in(client: httpx.AsyncClient, address: str, code: str) -> httpx.Response:
    """Open the sign-in page and post its form; the answer to the post."""
    page = await client.get("/admin/sign-in")
    carry(client, page)
    form = {"csrf": csrf_of(page), "address": address, "password": PASSWORD, "code": code}
    answer = await client.post("/admin/sign-in", data=form)
    carry(client, answer)
    return answer
