"""IMAP LOGIN for pymap: credentials against the directory, the logged-in identity.

Owns: pymap's `LoginInterface` and `IdentityInterface` (pymap 0.36.7, pinned)
over `gateway.intake.login` (the same throttles and Argon2id as SMTP AUTH); a session
starts with the standard folders ensured. Must not: check passwords itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator

from pymap.config import IMAPConfig
from pymap.exceptions import (
    AuthorizationFailure,
    InvalidAuth,
    NotAllowedError,
)
from pymap.interfaces.login import IdentityInterface, LoginInterface
from pymap.interfaces.token import TokensInterface
from pymap.token import AllTokens
from pymap.user import UserMetadata
from pysasl.creds.server import ServerCredentials

from gateway.imap.context import ImapContext, Unavailable, client_address, guard
from gateway.imap.session import Session
from gateway.intake.login import Outcome
from gateway.store.mailbox.store import StoreUnavailable


class _SecretCatcher:
    """A pysasl identity that keeps the presented secret, so the password can be
    checked against the directory's Argon2id hash (pysasl compares it otherwise)."""

    def __init__(self) -> None:
        self.secret: str | None = None

    def compare_authcid(self, authcid: str) -> bool:
        return True

    def compare_secret(self, value: str) -> bool:
        self.secret = value
        return True


class Login(LoginInterface):
    def __init__(self, ctx: ImapContext, config: IMAPConfig, protocol: str) -> None:
        self._ctx = ctx
        self._config = config
        self._protocol = protocol
        self._tokens = AllTokens(config)

    @property
    def tokens(self) -> TokensInterface:
        return self._tokens

    async def authenticate(self, credentials: ServerCredentials) -> Identity:
        catcher = _SecretCatcher()
        credentials.verify(catcher)  # type: ignore[arg-type]
        if catcher.secret is None:
            raise InvalidAuth()
        result = await self._ctx.authenticator.check(
            client_address(), credentials.authcid, catcher.secret, protocol=self._protocol
        )
        if result.outcome is Outcome.UNAVAILABLE:
            raise Unavailable()
        if not result.ok:
            raise InvalidAuth()
        try:
            employee_id = await self._ctx.employee_id(result.account)
        except StoreUnavailable:
            raise Unavailable() from None
        if employee_id is None:
            raise InvalidAuth()
        return Identity(result.account, employee_id, self._ctx, self._config, self._protocol)

    async def authorize(self, authenticated: IdentityInterface, authzid: str) -> Identity:
        if not isinstance(authenticated, Identity):
            raise AuthorizationFailure()
        if authzid and authzid.strip().lower() != authenticated.name:
            raise AuthorizationFailure()
        return authenticated


class Identity(IdentityInterface):
    def __init__(
        self, address: str, employee_id: int, ctx: ImapContext, config: IMAPConfig, protocol: str
    ) -> None:
        self._address = address
        self.employee_id = employee_id
        self._ctx = ctx
        self._config = config
        self._protocol = protocol

    @property
    def name(self) -> str:
        return self._address

    @property
    def roles(self) -> frozenset[str]:
        return frozenset()

    @contextlib.asynccontextmanager
    async def new_session(self) -> AsyncIterator[Session]:
        await guard(self._ctx.store.ensure_folders(self.employee_id))
        yield Session(self, self._ctx, self._config, self._protocol)

    async def new_token(self, *, expiration: dt.datetime | None = None) -> str | None:
        return None

    async def get(self) -> UserMetadata:
        raise NotAllowedError("Account data is managed by the directory.")

    async def set(self, metadata: UserMetadata) -> int | None:
        raise NotAllowedError("Account data is managed by the directory.")

    async def delete(self) -> None:
        raise NotAllowedError("Account data is managed by the directory.")
