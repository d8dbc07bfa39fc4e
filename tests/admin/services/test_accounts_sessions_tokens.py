"""Sessions (idle and absolute expiry on an injected clock), API tokens (shown once,
stored hashed, expired and revoked refused), and the login throttle shared with SMTP."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import text

from admin.services.account_base import AccountError, Conflict, UnknownObject
from admin.services.account_services import AccountServices
from admin.services.actor import Actor, Forbidden, OutOfScope, Role
from admin.services.login import ABSOLUTE, IDLE, LoginRefused, SessionRefused
from admin.services.tokens import TokenRefused
from gateway.config import AdminSettings
from gateway.intake.login import Outcome
from testkit.accounts import AUDITOR, CLI, MOF_ADMIN, PASSWORD, World, code_for

ALI = "ali@mof.example"
CLIENT = "198.51.100.4"


async def signed_in_actor(world: World) -> Actor:
    grant = await world.services.grants.grant(CLI, ALI, "agency-admin", agency="MOF")
    return grant.actor(client=CLIENT, channel="web")


async def dump(world: World) -> str:
    """Every row of every table, as text: what a stolen database would show."""
    out = []
    async with world.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
        for name in names:
            rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).all()  # noqa: S608
            out.extend(repr(tuple(row)) for row in rows)
    return "\n".join(out)


async def test_session_lives_while_used_and_ends_when_idle(world: World) -> None:
    started = await world.logins.start_session(await signed_in_actor(world))
    assert started.session_id not in await dump(world)
    for _ in range(4):  # used every 10 minutes: stays alive past the idle limit
        world.clock.advance(IDLE.total_seconds() - 300)
        state = await world.logins.touch_session(started.session_id, CLIENT)
        assert state.actor.account == ALI and state.actor.role is Role.AGENCY_ADMIN
    assert state.csrf_ok(started.csrf_secret) and not state.csrf_ok("forged")
    assert not state.csrf_ok(None)
    world.clock.advance(IDLE.total_seconds())
    with pytest.raises(SessionRefused, match="idle"):
        await world.logins.touch_session(started.session_id, CLIENT)
    with pytest.raises(SessionRefused, match="unknown"):  # ended means gone
        await world.logins.touch_session(started.session_id, CLIENT)


async def test_session_ends_at_its_absolute_expiry_however_busy(world: World) -> None:
    started = await world.logins.start_session(await signed_in_actor(world))
    step = IDLE.total_seconds() / 2
    elapsed = 0.0
    while elapsed + step < ABSOLUTE.total_seconds():
        world.clock.advance(step)
        elapsed += step
        await world.logins.touch_session(started.session_id, CLIENT)
    world.clock.advance(ABSOLUTE.total_seconds() - elapsed)
    with pytest.raises(SessionRefused, match="expired"):
        await world.logins.touch_session(started.session_id, CLIENT)


async def test_sign_out_and_expiry_sweep(world: World) -> None:
    actor = await signed_in_actor(world)
    first = await world.logins.start_session(actor)
    await world.logins.start_session(actor)
    await world.logins.end_session(first.session_id, CLIENT)
    with pytest.raises(SessionRefused):
        await world.logins.touch_session(first.session_id, CLIENT)
    world.clock.advance(IDLE.total_seconds() + 1)
    assert await world.logins.expire_sessions() == 1
    actions = [e["action"] for e in await world.events()]
    assert actions == ["admin.grant", "admin.login", "admin.login", "admin.logout"]
    await world.audit_ok()


async def test_login_then_session(world: World) -> None:
    await world.services.grants.grant(CLI, ALI, "agency-admin", agency="MOF")
    enrolment = await world.services.two_factor.enrol(CLI, ALI)
    await world.services.two_factor.confirm(CLI, ALI, code_for(enrolment.uri, world.clock))
    world.clock.advance(30)
    started = await world.logins.login(ALI, PASSWORD, code_for(enrolment.uri, world.clock), CLIENT)
    state = await world.logins.touch_session(started.session_id, "198.51.100.5")
    assert state.actor.client == "198.51.100.5" and state.actor.agency == "MOF"
    login = (await world.events("admin.login"))[0]
    assert login["details"]["by"]["client"] == CLIENT


async def test_password_failures_over_smtp_throttle_admin_sign_in(world: World) -> None:
    """One throttle: five wrong SMTP passwords from an address lock that address's
    admin sign-in for the account too, even with the right password and code."""
    await world.services.grants.grant(CLI, ALI, "agency-admin", agency="MOF")
    enrolment = await world.services.two_factor.enrol(CLI, ALI)
    await world.services.two_factor.confirm(CLI, ALI, code_for(enrolment.uri, world.clock))
    world.clock.advance(30)
    other = "198.51.100.99"
    for address in (CLIENT, other):  # known addresses: spared the account's slow-down
        result = await world.authenticator.check(address, ALI, PASSWORD, protocol="smtp")
        assert result.outcome is Outcome.OK
    for _ in range(world.authenticator.throttle.rules.per_pair):
        result = await world.authenticator.check(CLIENT, ALI, "guess", protocol="smtp")
        assert result.outcome is Outcome.FAILED
    with pytest.raises(LoginRefused) as refused:
        await world.logins.authenticate_password_totp(
            ALI, PASSWORD, code_for(enrolment.uri, world.clock), CLIENT
        )
    assert refused.value.reason == "throttled"
    # Wrong second factors count as failed logins for SMTP and IMAP too.
    for _ in range(world.authenticator.throttle.rules.per_pair):
        with pytest.raises(LoginRefused):
            await world.logins.authenticate_password_totp(ALI, PASSWORD, "nope", other)
    result = await world.authenticator.check(other, ALI, PASSWORD, protocol="imap")
    assert result.outcome is Outcome.THROTTLED


async def test_token_is_shown_once_stored_hashed_and_acts_in_its_scope(world: World) -> None:
    made = await world.services.tokens.create(
        CLI, role="agency-admin", agency="mof", name="nightly import", expires_days=30
    )
    assert made.secret.startswith("barid_") and len(made.secret) > 40
    assert made.secret not in await dump(world)
    assert made.secret[6:] not in await dump(world)
    assert made.token.expires_at == "2026-07-01T10:00:00.000000Z"
    listed = await world.services.tokens.list_tokens(CLI)
    assert [t.as_dict() for t in listed] == [made.token.as_dict()]
    assert "secret" not in listed[0].as_dict()
    actor = await world.services.tokens.authenticate_token(made.secret, CLIENT)
    assert (actor.role, actor.agency, actor.channel) == (Role.AGENCY_ADMIN, "MOF", "api")
    assert actor.account == f"token:{made.token.id}:nightly import"
    used = (await world.services.tokens.list_tokens(CLI))[0]
    assert (used.last_used_at, used.last_used_from) == ("2026-06-01T10:00:00.000000Z", CLIENT)
    world.clock.advance(30)  # a busy token's last use is written once a minute
    await world.services.tokens.authenticate_token(made.secret, CLIENT)
    assert (await world.services.tokens.list_tokens(CLI))[0].last_used_at == used.last_used_at
    world.clock.advance(30)
    await world.services.tokens.authenticate_token(made.secret, CLIENT)
    later = (await world.services.tokens.list_tokens(CLI))[0]
    assert later.last_used_at == "2026-06-01T10:01:00.000000Z"
    # The token acts as its role: it may grant inside MOF, nothing outside.
    await world.services.grants.grant(actor, "sara@mof.example", "registrar", agency="MOF-TAX")
    with pytest.raises(OutOfScope):
        await world.services.grants.grant(actor, "omar@moh.example", "registrar", agency="MOH")
    event = (await world.events("admin.token.create"))[0]
    assert event["target"] == f"token:{made.token.id}"
    assert made.secret not in repr(event)
    await world.audit_ok()


async def test_expired_revoked_and_unknown_tokens_are_refused(world: World) -> None:
    made = await world.services.tokens.create(
        CLI, role="security-auditor", name="siem", expires_days=1
    )
    world.clock.advance(86_400)
    with pytest.raises(TokenRefused, match="expired"):
        await world.services.tokens.authenticate_token(made.secret, CLIENT)
    other = await world.services.tokens.create(CLI, role="system-admin", name="ops")
    await world.services.tokens.authenticate_token(other.secret, CLIENT)
    revoked = await world.services.tokens.revoke(CLI, other.token.id)
    assert revoked.revoked_at is not None
    with pytest.raises(TokenRefused, match="revoked"):
        await world.services.tokens.authenticate_token(other.secret, CLIENT)
    with pytest.raises(Conflict, match="already revoked"):
        await world.services.tokens.revoke(CLI, other.token.id)
    with pytest.raises(TokenRefused, match="unknown"):
        await world.services.tokens.authenticate_token(other.secret + "x", CLIENT)
    with pytest.raises(UnknownObject):
        await world.services.tokens.revoke(CLI, 999)
    actions = [e["action"] for e in await world.events()]
    assert actions == ["admin.token.create", "admin.token.create", "admin.token.revoke"]
    await world.audit_ok()


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"role": "agency-admin", "name": "x"}, "needs an agency"),
        ({"role": "system-admin", "name": " "}, "token name"),
        ({"role": "system-admin", "name": "x", "expires_days": 0}, "1 to 366 days"),
        ({"role": "system-admin", "name": "x", "expires_days": 400}, "1 to 366 days"),
    ],
)
async def test_bad_token_requests_change_nothing(
    world: World, kwargs: dict[str, object], text: str
) -> None:
    with pytest.raises(AccountError, match=text):
        await world.services.tokens.create(CLI, **kwargs)  # type: ignore[arg-type]
    assert await world.services.tokens.list_tokens(CLI) == []


async def test_token_scope_rules(world: World) -> None:
    tokens = world.services.tokens
    mine = await tokens.create(MOF_ADMIN, role="registrar", agency="MOF-TAX", name="tracker")
    theirs = await tokens.create(CLI, role="registrar", agency="MOH", name="moh")
    top = await tokens.create(CLI, role="security-auditor", name="siem")
    assert [t.id for t in await tokens.list_tokens(MOF_ADMIN)] == [mine.token.id]
    assert len(await tokens.list_tokens(AUDITOR)) == 3
    with pytest.raises(Forbidden):  # a role above its own: a fact about roles (403)
        await tokens.create(MOF_ADMIN, role="system-admin", name="up")
    with pytest.raises(OutOfScope):
        await tokens.create(MOF_ADMIN, role="registrar", agency="MOH", name="out")
    with pytest.raises(Forbidden):
        await tokens.create(AUDITOR, role="registrar", agency="MOH", name="no")
    for other in (theirs, top):  # not found, as if it did not exist
        with pytest.raises(UnknownObject):
            await tokens.revoke(MOF_ADMIN, other.token.id)
    await tokens.revoke(MOF_ADMIN, mine.token.id)


async def test_a_suspended_employees_sessions_end(world: World) -> None:
    from policies.directory import EmployeeStatus

    started = await world.logins.start_session(await signed_in_actor(world))
    await world.directory.set_status(ALI, EmployeeStatus.SUSPENDED, actor="t")
    with pytest.raises(SessionRefused, match="revoked"):
        await world.logins.touch_session(started.session_id, CLIENT)
    with pytest.raises(SessionRefused, match="unknown"):
        await world.logins.touch_session(started.session_id, CLIENT)


async def test_configured_limits_shorten_sessions_and_token_lifetimes(world: World) -> None:
    """`[admin]` settings: a 5-minute idle session, a 1-hour absolute one, 30-day tokens."""
    limits = AdminSettings(session_idle_minutes=5, session_absolute_hours=1, token_max_days=30)
    services = AccountServices.build(
        world.sessions, world.keys, authenticator=world.authenticator, clock=world.clock,
        limits=limits,
    )  # fmt: skip
    assert services.logins is not None
    actor = await signed_in_actor(world)
    started = await services.logins.start_session(actor)
    world.clock.advance(6 * 60)  # within the default 15 minutes, past the configured 5
    with pytest.raises(SessionRefused, match="idle"):
        await services.logins.touch_session(started.session_id, CLIENT)
    busy = await services.logins.start_session(actor)
    for _ in range(15):  # used every 4 minutes for an hour: still ends at 1 hour
        world.clock.advance(4 * 60)
        with contextlib.suppress(SessionRefused):
            await services.logins.touch_session(busy.session_id, CLIENT)
    with pytest.raises(SessionRefused):
        await services.logins.touch_session(busy.session_id, CLIENT)
    with pytest.raises(AccountError, match="1 to 30 days"):
        await services.tokens.create(CLI, role="security-auditor", name="x", expires_days=31)
    made = await services.tokens.create(CLI, role="security-auditor", name="x", expires_days=30)
    assert made.secret
