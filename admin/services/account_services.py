"""The admin-account services as one value, for the CLI and the admin API.

Owns: building the parts (grants, second factor, tokens, sign-in and sessions)
over one session factory, one set of derived keys and one clock. Must not: add
behaviour of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin.services.account_base import AccountKeys, Clock, system_clock
from admin.services.accounts import Grants
from admin.services.login import Logins
from admin.services.tokens import Tokens
from admin.services.totp import TwoFactor
from gateway.config import AdminSettings
from gateway.intake.login import Authenticator


@dataclass(frozen=True)
class AccountServices:
    grants: Grants
    two_factor: TwoFactor
    tokens: Tokens
    logins: Logins | None  # only where people sign in (needs the gateway's Authenticator)

    @classmethod
    def build(
        cls,
        sessions: async_sessionmaker[AsyncSession],
        keys: AccountKeys,
        *,
        authenticator: Authenticator | None = None,
        clock: Clock = system_clock,
        limits: AdminSettings | None = None,
    ) -> AccountServices:
        """`limits`: session expiry and the longest token lifetime (config `[admin]`)."""
        limits = limits or AdminSettings()
        logins = None
        if authenticator is not None:
            logins = Logins(
                sessions, keys, authenticator=authenticator, clock=clock,
                idle=dt.timedelta(minutes=limits.session_idle_minutes),
                absolute=dt.timedelta(hours=limits.session_absolute_hours),
            )  # fmt: skip
        return cls(
            grants=Grants(sessions, keys, clock=clock),
            two_factor=TwoFactor(sessions, keys, clock=clock),
            tokens=Tokens(sessions, keys, clock=clock, max_days=limits.token_max_days),
            logins=logins,
        )
