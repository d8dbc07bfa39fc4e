"""The CLI acts through the service layer as the local system administrator: its
audit events name the local user, the role, the client and the channel."""

from __future__ import annotations

import getpass
import json
from typing import Any


def test_a_cli_change_is_audited_as_the_local_system_admin(barid: Any) -> None:
    added = barid("agency", "add", "MOH", "--name-en", "Health", "--kind", "ministry",
                  "--domain", "moh.gov.example", "--json")  # fmt: skip
    assert added.code == 0, added.err
    result = barid("audit", "log", "--action", "agency.add", "--json")
    assert result.code == 0, result.err
    [event] = json.loads(result.out)
    assert event["actor"] == f"cli:{getpass.getuser()}" and event["target"] == "MOH"
    assert event["details"]["acting"] == {"role": "system-admin", "client": "local",
                                          "channel": "cli"}  # fmt: skip
    verified = barid("audit", "verify", "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"], verified.out


def test_a_refusal_keeps_the_cli_reason(barid: Any) -> None:
    result = barid("employee", "show", "nobody@moh.gov.example")
    assert result.code == 1
    assert result.err.strip() == "barid: unknown employee 'nobody@moh.gov.example'"
