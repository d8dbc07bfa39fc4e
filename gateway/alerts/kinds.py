"""The one table of alert kinds: which audit action is which alert.

Owns: the alert kinds (their names are the bounded label of
`barid_alerts_total{kind}`), the audit action of each, a short English
description and the facts of its details an alert shows. The admin service
layer lists and acknowledges alerts through this table; the gateway's rules and
sources write these actions. Must not: import anything above gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# The audit actions of alerts raised by sources elsewhere in the gateway. They are
# named here as text (not imported) so this table depends on nothing.
VERIFY_ALERT_ACTION = "verify.alert"
TLS_ALERT_ACTION = "federation.tls-alert"
LOCKOUT_ACTION = "auth.lockout"
# The audit actions of the rules over the audit and access trail (gateway.alerts.rules).
BODY_VOLUME_ACTION = "alert.body-volume"
AFTER_HOURS_ACTION = "alert.after-hours"
POLICY_DENIALS_ACTION = "alert.policy-denials"
NEW_CLIENT_ACTION = "alert.new-client"


class AlertKind(StrEnum):
    VERIFICATION_SPIKE = "verification-spike"
    PEER_TLS = "peer-tls"
    LOGIN_LOCKOUT = "login-lockout"
    BODY_VOLUME = "body-volume"
    AFTER_HOURS = "after-hours"
    POLICY_DENIALS = "policy-denials"
    NEW_CLIENT = "new-client"


@dataclass(frozen=True, slots=True)
class KindInfo:
    kind: AlertKind
    description: str
    facts: tuple[str, ...]  # the keys of the event's details an alert shows


# audit action -> what kind of alert it is. The only place naming them.
KINDS: dict[str, KindInfo] = {
    VERIFY_ALERT_ACTION: KindInfo(
        AlertKind.VERIFICATION_SPIKE,
        "Unusually many verification lookups of one document, or of forged tokens,"
        " in a short window",
        ("kind", "count", "window_seconds", "clients", "registry"),
    ),
    TLS_ALERT_ACTION: KindInfo(
        AlertKind.PEER_TLS,
        "A federation peer's TLS certificate did not match the trust configured for it;"
        " nothing was sent to it",
        ("remote", "error"),
    ),
    LOCKOUT_ACTION: KindInfo(
        AlertKind.LOGIN_LOCKOUT,
        "Failed logins crossed a limit: an account or a client address is slowed down"
        " or locked out for a while",
        ("kind", "failures", "protocol", "client", "events_left_out"),
    ),
    BODY_VOLUME_ACTION: KindInfo(
        AlertKind.BODY_VOLUME,
        "An employee opened many more official bodies in a day than their own baseline",
        ("window", "count", "median", "threshold", "baseline_days"),
    ),
    AFTER_HOURS_ACTION: KindInfo(
        AlertKind.AFTER_HOURS,
        "An employee opened many official bodies outside working hours in one day",
        ("window", "count", "threshold", "first", "last"),
    ),
    POLICY_DENIALS_ACTION: KindInfo(
        AlertKind.POLICY_DENIALS,
        "Submissions of one sender were refused by policy again and again within a window",
        ("window", "count", "threshold", "window_minutes", "rules"),
    ),
    NEW_CLIENT_ACTION: KindInfo(
        AlertKind.NEW_CLIENT,
        "An account read mail from a client address it had not used before",
        ("window", "client", "protocol", "known_clients", "history_days"),
    ),
}
ACTION_OF: dict[AlertKind, str] = {info.kind: action for action, info in KINDS.items()}
