"""The demo's administrator: one directory employee granted system-admin, with a
confirmed TOTP secret, so that the web admin and the admin API can be tried at
once after `barid demo`.

Owns: choosing the employee, granting the role and enrolling the second factor
through the account services (audited like any grant), and the facts printed for
the newcomer (address, the TOTP secret and its otpauth URI, recovery codes),
which `barid demo` keeps in the demo's 0600 credentials folder. Must not: be used
outside the demo: a real administrator enrols their own secret.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from typing import Any

from admin.context import App
from admin.services.account_base import AccountKeys
from admin.services.account_services import AccountServices
from admin.services.actor import Actor, Role
from keys import otp

DEMO_ADMIN = "director@cab.gov.example"


def _secret_of(uri: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]


async def make_demo_administrator(app: App) -> dict[str, Any]:
    """Grant DEMO_ADMIN system-admin and enrol a confirmed TOTP secret; the facts to print."""
    services = AccountServices.build(
        app.sessions, AccountKeys.from_gateway(app.keys), limits=app.settings.admin
    )
    demo = Actor("demo", Role.SYSTEM_ADMIN)
    await services.grants.grant(demo, DEMO_ADMIN, Role.SYSTEM_ADMIN.value)
    enrolment = await services.two_factor.enrol(demo, DEMO_ADMIN)
    secret = _secret_of(enrolment.uri)
    raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    # Confirmed with the previous time step's code (one step of drift is accepted), so
    # the code an authenticator shows now is still unused for the first sign-in.
    await services.two_factor.confirm(demo, DEMO_ADMIN, otp.code_at(raw, time.time() - 30))
    return {
        "address": DEMO_ADMIN,
        "role": Role.SYSTEM_ADMIN.value,
        "totp_secret": secret,
        "totp_uri": enrolment.uri,
        "recovery_codes": enrolment.recovery_codes,
    }
