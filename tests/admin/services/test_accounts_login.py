"""Signing in with password + TOTP on a real database, with codes from pyotp."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from admin.services.account_base import AccountError, Conflict
from admin.services.actor import Actor, Forbidden, OutOfScope, Role
from admin.services.login import LoginRefused
from gateway.store.admin_models import AdminRecoveryCode, AdminTotp
from gateway.store.models import AuditEvent
from testkit.accounts import CLI, PASSWORD, World, code_for

ALI = "ali@mof.example"
CLIENT = "198.51.100.4"


async def enrolled(world: World, address: str = ALI) -> tuple[str, list[str]]:
    """Grant agency-admin at MOF, enrol and confirm TOTP; (otpauth URI, recovery codes)."""
    await world.services.grants.grant(CLI, address, "agency-admin", agency="MOF")
    enrolment = await world.services.two_factor.enrol(CLI, address)
    await world.services.two_factor.confirm(CLI, address, code_for(enrolment.uri, world.clock))
    world.clock.advance(30)  # the confirming code's step is used; sign in at the next one
    return enrolment.uri, enrolment.recovery_codes


async def test_enrolment_shows_the_secret_once_and_seals_it(world: World) -> None:
    await world.services.grants.grant(CLI, ALI, "agency-admin", agency="MOF")
    enrolment = await world.services.two_factor.enrol(CLI, ALI)
    assert enrolment.uri.startswith("otpauth://totp/Barid:ali@mof.example?secret=")
    assert "issuer=Barid" in enrolment.uri
    # The QR codes say exactly the URI.
    image = Image.open(io.BytesIO(enrolment.qr_png))
    assert [b.text for b in zxingcpp.read_barcodes(image)] == [enrolment.uri]
    assert enrolment.qr_svg.lstrip().startswith("<?xml") and "<svg" in enrolment.qr_svg
    assert len(enrolment.recovery_codes) == 10 == len(set(enrolment.recovery_codes))
    secret_b32 = enrolment.uri.split("secret=")[1].split("&")[0]
    async with world.sessions() as session:
        row = await session.scalar(select(AdminTotp))
        hashes = (await session.scalars(select(AdminRecoveryCode.code_hash))).all()
        details = (await session.scalars(select(AuditEvent.details))).all()
    assert row is not None and row.confirmed_at is None
    import base64

    secret = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    assert secret not in row.sealed_secret
    everything = " ".join([*details, *hashes])
    assert secret_b32 not in everything
    for code in enrolment.recovery_codes:
        assert code not in everything and code.replace("-", "") not in everything
    assert (await world.services.two_factor.status(CLI, ALI))["totp"] == "pending"


async def test_confirm_needs_the_current_code(world: World) -> None:
    await world.services.grants.grant(CLI, ALI, "agency-admin", agency="MOF")
    enrolment = await world.services.two_factor.enrol(CLI, ALI)
    world.clock.advance(0)
    wrong = "000000" if code_for(enrolment.uri, world.clock) != "000000" else "111111"
    with pytest.raises(AccountError, match="does not match"):
        await world.services.two_factor.confirm(CLI, ALI, wrong)
    await world.services.two_factor.confirm(CLI, ALI, code_for(enrolment.uri, world.clock))
    with pytest.raises(Conflict, match="already confirmed"):
        await world.services.two_factor.confirm(CLI, ALI, code_for(enrolment.uri, world.clock))
    assert (await world.services.two_factor.status(CLI, ALI))["totp"] == "confirmed"


async def test_right_code_signs_in_and_a_replayed_code_is_refused(world: World) -> None:
    uri, _codes = await enrolled(world)
    code = code_for(uri, world.clock)
    actor = await world.logins.authenticate_password_totp(ALI, PASSWORD, code, CLIENT)
    assert actor == Actor(ALI, Role.AGENCY_ADMIN, "MOF", client=CLIENT, channel="web")
    with pytest.raises(LoginRefused) as refused:
        await world.logins.authenticate_password_totp(ALI, PASSWORD, code, CLIENT)
    assert (refused.value.reason, refused.value.detail) == ("refused", "replayed-code")
    assert str(refused.value) == "sign-in refused: wrong address, password or code"
    # The code of the previous step is inside the drift window but older: refused too.
    world.clock.advance(30)
    await world.logins.authenticate_password_totp(ALI, PASSWORD, code_for(uri, world.clock), CLIENT)
    world.clock.advance(-30)
    with pytest.raises(LoginRefused, match="wrong address"):
        await world.logins.authenticate_password_totp(
            ALI, PASSWORD, code_for(uri, world.clock), CLIENT
        )


@pytest.mark.parametrize(
    ("password", "code", "detail"),
    [
        (PASSWORD, "wrong", "wrong-code"),
        (PASSWORD, "123", "wrong-code"),
        ("not the password", None, "password"),
    ],
)
async def test_wrong_credentials_are_refused_alike(
    world: World, password: str, code: str | None, detail: str
) -> None:
    uri, _codes = await enrolled(world)
    right = code_for(uri, world.clock)
    if code == "wrong":
        code = f"{(int(right) + 1) % 1_000_000:06d}"
        world.clock.advance(0)
    with pytest.raises(LoginRefused) as refused:
        await world.logins.authenticate_password_totp(ALI, password, code or right, CLIENT)
    assert (refused.value.reason, refused.value.detail) == ("refused", detail)


async def test_a_code_far_from_now_is_refused(world: World) -> None:
    uri, _codes = await enrolled(world)
    world.clock.advance(-120)
    old = code_for(uri, world.clock)
    world.clock.advance(120)
    with pytest.raises(LoginRefused) as refused:
        await world.logins.authenticate_password_totp(ALI, PASSWORD, old, CLIENT)
    assert refused.value.detail in {"wrong-code", "replayed-code"}


async def test_no_role_or_no_enrolment_refuses(world: World) -> None:
    with pytest.raises(LoginRefused) as refused:
        await world.logins.authenticate_password_totp(ALI, PASSWORD, "123456", CLIENT)
    assert refused.value.detail == "no-role"
    await world.services.grants.grant(CLI, ALI, "agency-admin", agency="MOF")
    await world.services.two_factor.enrol(CLI, ALI)  # never confirmed
    with pytest.raises(LoginRefused) as refused:
        await world.logins.authenticate_password_totp(ALI, PASSWORD, "123456", CLIENT)
    assert refused.value.detail == "not-enrolled"


async def test_recovery_code_works_once(world: World) -> None:
    _uri, codes = await enrolled(world)
    typed = codes[3].upper().replace("-", " ")
    actor = await world.logins.authenticate_password_totp(ALI, PASSWORD, typed, CLIENT)
    assert actor.role is Role.AGENCY_ADMIN
    with pytest.raises(LoginRefused) as refused:
        await world.logins.authenticate_password_totp(ALI, PASSWORD, codes[3], CLIENT)
    assert refused.value.detail == "used-recovery-code"
    with pytest.raises(LoginRefused) as refused:
        await world.logins.authenticate_password_totp(ALI, PASSWORD, "aaaa-bbbb-cccc-dddd", CLIENT)
    assert refused.value.detail == "wrong-code"
    used = await world.events("admin.recovery-code.use")
    assert [(e["actor"], e["details"]["after"]) for e in used] == [(ALI, {"unused": 9})]
    assert (await world.services.two_factor.status(CLI, ALI))["recovery_codes_left"] == 9
    fresh = await world.services.two_factor.new_recovery_codes(CLI, ALI)
    with pytest.raises(LoginRefused):  # the old codes stop working
        await world.logins.authenticate_password_totp(ALI, PASSWORD, codes[4], CLIENT)
    await world.logins.authenticate_password_totp(ALI, PASSWORD, fresh[0], CLIENT)
    await world.audit_ok()


async def test_several_grants_sign_in_under_the_one_named(world: World) -> None:
    uri, _codes = await enrolled(world)
    await world.services.grants.grant(CLI, ALI, "registrar", agency="MOF-TAX")
    actor = await world.logins.authenticate_password_totp(
        ALI, PASSWORD, code_for(uri, world.clock), CLIENT, role="registrar"
    )
    assert (actor.role, actor.agency) == (Role.REGISTRAR, "MOF-TAX")
    world.clock.advance(30)
    actor = await world.logins.authenticate_password_totp(
        ALI, PASSWORD, code_for(uri, world.clock), CLIENT
    )
    assert actor.role is Role.AGENCY_ADMIN  # the first in ROLE_ORDER


async def test_enrolling_someone_else_needs_the_right_to_grant_their_roles(world: World) -> None:
    mof_admin = Actor(ALI, Role.AGENCY_ADMIN, "MOF", client=CLIENT, channel="api")
    await world.services.grants.grant(CLI, "sara@mof.example", "registrar", agency="MOF-TAX")
    await world.services.two_factor.enrol(mof_admin, "sara@mof.example")
    await world.services.grants.grant(CLI, "sara@mof.example", "system-admin")
    with pytest.raises(Forbidden):  # a role above the enroller's own (403)
        await world.services.two_factor.enrol(mof_admin, "sara@mof.example")
    with pytest.raises(OutOfScope):
        await world.services.two_factor.enrol(mof_admin, "omar@moh.example")
    # Oneself, always.
    sara = Actor("sara@mof.example", Role.REGISTRAR, "MOF-TAX", client=CLIENT, channel="web")
    await world.services.two_factor.enrol(sara, "sara@mof.example")
    await world.audit_ok()


async def test_two_nodes_racing_with_one_code_sign_in_once(world: World) -> None:
    """Two gateway nodes (own engine, own throttle) get the same code at the same time."""
    import asyncio

    from admin.services.login import Logins
    from gateway.intake.login import Authenticator
    from gateway.store.db import create_engine, session_factory
    from gateway.store.directory import Directory

    uri, _codes = await enrolled(world)
    engine = create_engine(world.engine.url.render_as_string(hide_password=False))
    try:
        sessions = session_factory(engine)
        other = Logins(
            sessions,
            world.keys,
            authenticator=Authenticator(Directory(sessions, world.keys.audit)),
            clock=world.clock,
        )
        code = code_for(uri, world.clock)
        results = await asyncio.gather(
            world.logins.authenticate_password_totp(ALI, PASSWORD, code, CLIENT),
            other.authenticate_password_totp(ALI, PASSWORD, code, "198.51.100.5"),
            return_exceptions=True,
        )
    finally:
        await engine.dispose()
    assert sorted(type(r).__name__ for r in results) == ["Actor", "LoginRefused"]
    refused = next(r for r in results if isinstance(r, LoginRefused))
    assert refused.detail == "replayed-code"
