"""The admin-account tests' world: a small agency tree, employees with passwords, the
account services over a real database and a clock the test moves by hand."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import pyotp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from admin.services.account_base import AccountKeys
from admin.services.account_services import AccountServices
from admin.services.actor import Actor, Role
from admin.services.login import Logins
from gateway.intake.login import Authenticator
from gateway.store import audit, migrate
from gateway.store.db import create_engine, session_factory
from gateway.store.directory import AgencyInput, Directory, EmployeeInput
from keys.passwords import PasswordHasherProfile, hash_password

PASSWORD = "correct horse battery staple"
START = dt.datetime(2026, 6, 1, 10, 0, 0, tzinfo=dt.UTC)

# GOV
# ├── MOF
# │   └── MOF-TAX
# └── MOH
AGENCIES = [
    AgencyInput("GOV", "Government", "الحكومة", "entity", "gov.example"),
    AgencyInput("MOF", "Finance", "المالية", "ministry", "mof.example", "GOV"),
    AgencyInput("MOF-TAX", "Tax", "الضرائب", "directorate", "mof.example", "MOF"),
    AgencyInput("MOH", "Health", "الصحة", "ministry", "moh.example", "GOV"),
]
STAFF = [
    ("root@gov.example", "GOV"),
    ("ali@mof.example", "MOF"),
    ("sara@mof.example", "MOF-TAX"),
    ("omar@moh.example", "MOH"),
    ("gone@moh.example", "MOH"),
]

CLI = Actor("cli:tester", Role.SYSTEM_ADMIN)
MOF_ADMIN = Actor("ali@mof.example", Role.AGENCY_ADMIN, "MOF", client="192.0.2.7", channel="api")
AUDITOR = Actor("root@gov.example", Role.SECURITY_AUDITOR, client="192.0.2.8", channel="api")


class Clock:
    """The time the services see; tests move it, nothing reads the wall clock."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)

    def timestamp(self) -> float:
        return self.now.timestamp()


@dataclass
class World:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keys: AccountKeys
    directory: Directory
    clock: Clock
    authenticator: Authenticator
    services: AccountServices

    @property
    def logins(self) -> Logins:
        assert self.services.logins is not None
        return self.services.logins

    async def audit_ok(self) -> int:
        async with self.sessions() as session:
            report = await audit.verify(session, self.keys.audit)
        assert report.ok, report.problems
        return report.events

    async def events(self, prefix: str = "admin.") -> list[dict[str, object]]:
        async with self.sessions() as session:
            found = await audit.recent(session, limit=1000)
        return [e for e in found if str(e["action"]).startswith(prefix)]


def code_for(secret_uri: str, clock: Clock) -> str:
    """The current code, from an independent TOTP implementation (pyotp)."""
    totp = pyotp.parse_uri(secret_uri)
    assert isinstance(totp, pyotp.TOTP)
    return totp.at(clock.now)


async def make_world(db_url: str) -> World:
    engine = create_engine(db_url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    keys = AccountKeys.from_master(os.urandom(32))
    directory = Directory(sessions, keys.audit)
    for agency in AGENCIES:
        await directory.add_agency(agency, actor="t")
    stored = hash_password(PASSWORD, PasswordHasherProfile.TEST)
    for address, agency_code in STAFF:
        await directory.add_employee(
            EmployeeInput(address, agency_code, address.split("@")[0], password_hash=stored),
            actor="t",
        )
    clock = Clock()
    authenticator = Authenticator(directory, clock=clock.timestamp)
    services = AccountServices.build(sessions, keys, authenticator=authenticator, clock=clock)
    return World(engine, sessions, keys, directory, clock, authenticator, services)
