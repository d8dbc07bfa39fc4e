"""The admin API's `Authenticator` over the account services: tokens and sessions.

Owns: turning a bearer token or a session cookie into an `Actor` through
`admin.services.tokens` and `admin.services.login`, and their refusals into
`NotAuthenticated` (one answer for unknown, expired and revoked alike).
"""

from __future__ import annotations

from admin.api.auth import NotAuthenticated, SessionActor
from admin.services.account_services import AccountServices
from admin.services.actor import Actor
from admin.services.login import SessionRefused
from admin.services.tokens import TokenRefused


class AccountAuthenticator:
    def __init__(self, services: AccountServices) -> None:
        self._services = services

    async def by_token(self, secret: str, client: str) -> Actor:
        try:
            actor = await self._services.tokens.authenticate_token(secret, client)
        except TokenRefused:
            raise NotAuthenticated from None
        return Actor(actor.account, actor.role, actor.agency, client=client, channel="api")

    async def by_session(self, session_id: str, client: str) -> SessionActor:
        logins = self._services.logins
        if logins is None:
            raise NotAuthenticated
        try:
            state = await logins.touch_session(session_id, client)
        except SessionRefused:
            raise NotAuthenticated from None
        return SessionActor(state.actor, state.csrf_secret)
