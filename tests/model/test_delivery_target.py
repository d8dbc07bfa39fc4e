"""The delivery target: its text form read and written by one module, and the
routing decision made once from each kind of recipient."""

from __future__ import annotations

import pytest

from gateway.model.message import Recipient
from gateway.model.target import (
    LOCAL,
    REMOTE_KINDS,
    DeliveryTarget,
    TargetKind,
    agency_server,
    column_prefix,
    peer_gateway,
    target_for,
)


@pytest.mark.parametrize(
    ("target", "text"),
    [
        (LOCAL, "local"),
        (peer_gateway("region"), "peer:region"),
        (agency_server("mof"), "imap:mof"),
        (peer_gateway("a:b"), "peer:a:b"),  # a name may hold the separator
    ],
)
def test_the_text_form_round_trips(target: DeliveryTarget, text: str) -> None:
    assert target.column == str(target) == text
    assert DeliveryTarget.parse(text) == target
    assert DeliveryTarget.parse(target.column).kind is target.kind


@pytest.mark.parametrize(
    "text", ["", "LOCAL", "peer", "peer:", "imap:", "smtp:x", "local:x", ":x", "region"]
)
def test_an_unknown_text_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"local, peer:<name> or imap:<name>"):
        DeliveryTarget.parse(text)


def test_a_target_is_well_formed() -> None:
    with pytest.raises(ValueError):
        DeliveryTarget(TargetKind.LOCAL, "x")
    for kind in REMOTE_KINDS:
        with pytest.raises(ValueError):
            DeliveryTarget(kind)
    assert not LOCAL.remote and peer_gateway("x").remote and agency_server("x").remote


def test_the_sql_prefix_matches_every_remote_target_of_its_kind_only() -> None:
    assert peer_gateway("region").column.startswith(column_prefix(TargetKind.PEER))
    assert agency_server("mof").column.startswith(column_prefix(TargetKind.IMAP))
    assert not agency_server("mof").column.startswith(column_prefix(TargetKind.PEER))
    assert not LOCAL.column.startswith(tuple(column_prefix(k) for k in REMOTE_KINDS))
    with pytest.raises(ValueError):
        column_prefix(TargetKind.LOCAL)


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        (Recipient("a@moh.gov.example", True), LOCAL),
        (Recipient("b@mof.gov.example", True, mailserver="mof"), agency_server("mof")),
        (Recipient("c@krg.gov.example", False, peer="krg"), peer_gateway("krg")),
        # a remote recipient's mail server is not ours to use: its peer gets the copy
        (Recipient("d@krg.gov.example", False, peer="krg", mailserver="x"), peer_gateway("krg")),
    ],
)
def test_each_kind_of_recipient_is_routed(recipient: Recipient, expected: DeliveryTarget) -> None:
    assert target_for(recipient) == expected


def test_a_remote_recipient_without_a_peer_has_no_target() -> None:
    with pytest.raises(ValueError, match="has no federation peer"):
        target_for(Recipient("e@far.example", False))
