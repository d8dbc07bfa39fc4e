"""Mailbox names and standard folders (gateway.store.mailbox.folders): pure, no database."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.store.mailbox.folders import (
    DELIMITER,
    INBOX,
    MAX_DEPTH,
    MAX_NAME_CHARS,
    STANDARD_FOLDERS,
    STANDARD_NAMES,
    MailboxNameError,
    check_name,
    is_protected,
    normalize,
)


@pytest.mark.parametrize(
    "name",
    [
        "Projects",
        "Sent",
        "Receipts",
        "A/B",
        "A/B/C",
        "Budget 2026",
        "المراسلات",
        "المراسلات/الواردة",
        "Ünïcödé/名前",
        "x" * MAX_NAME_CHARS,
        DELIMITER.join(["L"] * MAX_DEPTH),
        "a.b-c_d+e",
    ],
)
def test_normal_names_are_accepted_unchanged(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("INBOX", "INBOX"),
        ("inbox", "INBOX"),
        ("InBoX", "INBOX"),
        ("inbox/Projects", "INBOX/Projects"),
        ("Inbox/sub/deeper", "INBOX/sub/deeper"),
    ],
)
def test_inbox_in_any_case_is_normalized(name: str, expected: str) -> None:
    assert check_name(name) == expected
    assert normalize(name) == expected


def test_other_names_stay_case_sensitive() -> None:
    assert check_name("sent") == "sent"
    assert check_name("Projects/inbox") == "Projects/inbox"  # only the first level
    assert normalize("INBOXES") == "INBOXES"
    assert normalize("myinbox") == "myinbox"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * (MAX_NAME_CHARS + 1),
        DELIMITER.join(["L"] * (MAX_DEPTH + 1)),
        "A//B",
        "/A",
        "A/",
        "/",
        "A/ /B",
        " ",
        "A\rB",
        "A\nB",
        "A\r\nB",
        "A\x00B",
        "\x00",
        "A\tB",
        "A\x01",
        "A\x1bB",
        "A\x1f",
        "A\x7fB",
        "A\x80B",
        "A\x85B",
        "A\x9fB",
        "A*",
        "*",
        "A%",
        "%",
        "A/*/B",
    ],
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(MailboxNameError):
        check_name(name)


@pytest.mark.parametrize("code", [*range(0x20), 0x7F, *range(0x80, 0xA0)])
def test_every_control_character_is_refused(code: int) -> None:
    with pytest.raises(MailboxNameError, match="control character"):
        check_name(f"Box{chr(code)}Name")


def test_characters_next_to_the_control_ranges_are_allowed() -> None:
    for ch in (" ", "~", "\xa0", "\xa1", "ÿ"):
        assert check_name(f"A{ch}B") == f"A{ch}B"


def test_refusal_texts_are_safe_to_show() -> None:
    with pytest.raises(MailboxNameError) as err:
        check_name("secret\r\nA001 LOGOUT")
    assert "\r" not in str(err.value) and "secret" not in str(err.value)


@given(st.text(max_size=300))
def test_no_accepted_name_contains_a_control_character(name: str) -> None:
    try:
        accepted = check_name(name)
    except MailboxNameError:
        return
    assert accepted
    assert not any(unicodedata.category(ch) == "Cc" for ch in accepted)
    assert "*" not in accepted and "%" not in accepted
    assert len(accepted) <= MAX_NAME_CHARS
    levels = accepted.split(DELIMITER)
    assert len(levels) <= MAX_DEPTH and all(level.strip() for level in levels)


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/*%"),
            min_size=1,
            max_size=12,
        ).filter(lambda s: s.strip() != ""),
        min_size=1,
        max_size=MAX_DEPTH,
    )
)
def test_clean_names_are_accepted_and_normalizing_is_stable(levels: list[str]) -> None:
    name = DELIMITER.join(levels)
    accepted = check_name(name)
    assert check_name(accepted) == accepted
    if levels[0].upper() != INBOX:
        assert accepted == name


def test_standard_folders() -> None:
    assert [(f.name, f.special_use) for f in STANDARD_FOLDERS] == [
        ("INBOX", None),
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Receipts", None),
    ]
    assert frozenset({"INBOX", "Sent", "Drafts", "Trash", "Receipts"}) == STANDARD_NAMES
    for folder in STANDARD_FOLDERS:
        assert check_name(folder.name) == folder.name


@pytest.mark.parametrize("name", ["INBOX", "inbox", "Inbox", "Sent", "Drafts", "Trash", "Receipts"])
def test_standard_folders_are_protected(name: str) -> None:
    assert is_protected(name)


@pytest.mark.parametrize(
    "name", ["sent", "TRASH", "drafts", "receipts", "Projects", "Sent/2026", "INBOX/sub", "Junk"]
)
def test_other_folders_are_not_protected(name: str) -> None:
    assert not is_protected(name)
