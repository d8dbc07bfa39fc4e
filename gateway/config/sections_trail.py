"""Configuration sections of the security trail: the audit chain's checkpoints and
the alert rules over the audit and access trail.

Owns: the `[audit]` and `[alerts]` models, their defaults, limits and one-line
documentation (rendered into barid.toml). Must not: read files or the environment.
"""

from __future__ import annotations

from pydantic import field_validator, model_validator

from gateway.config import security_mailboxes
from gateway.config.sections import Section, _f


class AuditSettings(Section):
    checkpoint_every_events: int = _f(
        1000,
        "The running gateway signs an audit checkpoint after this many new audit events"
        " (0: no count trigger).",
        ge=0,
        le=10_000_000,
    )
    checkpoint_every_minutes: float = _f(
        60.0,
        "The running gateway also signs one this many minutes after the last checkpoint"
        " when there are new audit events (0: no time trigger); `barid audit checkpoint`"
        " signs one at once.",
        ge=0,
        le=7 * 24 * 60,
    )


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _clock_minutes(value: str) -> int:
    hours, sep, minutes = value.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError("must be a time of day as HH:MM")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > 24 * 60:
        raise ValueError("must be a time of day between 00:00 and 24:00")
    return total


class AlertsSettings(Section):
    """Alert rules over the audit and access trail (docs/SECURITY-TEAMS.md §4)."""

    scan_every_seconds: float = _f(
        60.0,
        "The running gateway evaluates the alert rules over new audit events this often"
        " (0: never; `barid alerts scan` runs them at once).",
        ge=0,
        le=86400,
    )
    time_zone: str = _f("Asia/Riyadh", "The agency's time zone (IANA name) for days and hours.")
    weekend: str = _f(
        "friday,saturday", "Days outside the working week, comma-separated (English names)."
    )
    workday_start: str = _f("08:00", "Start of the working day (HH:MM, local time).")
    workday_end: str = _f("16:00", "End of the working day (HH:MM, local time).")
    volume_min_bodies: int = _f(
        50,
        "Body volume: an employee opening more distinct official bodies in a day than"
        " max(this, volume_factor x their median daily count) is an alert.",
        ge=1,
        le=1_000_000,
    )
    volume_factor: float = _f(
        5.0, "Body volume: how many times the employee's median day is unusual.", gt=0, le=1000
    )
    volume_baseline_days: int = _f(
        14, "Body volume: days before today the median is taken over.", ge=1, le=90
    )
    after_hours_bodies: int = _f(
        20,
        "After hours: an employee opening more distinct official bodies than this in one"
        " day outside working hours (evenings, nights, the weekend) is an alert.",
        ge=1,
        le=1_000_000,
    )
    denials: int = _f(
        10,
        "Policy denials: this many submissions of one sender refused by policy within"
        " denials_window_minutes is an alert.",
        ge=1,
        le=1_000_000,
    )
    denials_window_minutes: int = _f(
        60, "Policy denials: the window, fixed and aligned to midnight UTC.", ge=1, le=1440
    )
    new_client_history_days: int = _f(
        30,
        "New client address: an account reading mail from an address it did not use in"
        " this many days before (and that has history in them) is an alert.",
        ge=1,
        le=365,
    )
    webhook_url: str = _f(
        "", "Each alert is also POSTed as JSON to this http(s) URL (empty: no webhook)."
    )
    webhook_timeout_seconds: float = _f(
        5.0, "Give up a webhook delivery after this long (logged and counted).", gt=0, le=60
    )
    security_mailboxes: str = _f(
        "",
        "Each alert is filed into its agency's security mailbox (a directory employee):"
        ' "MOH=security@moh.gov.example; MOF=ciso@mof.gov.example" (empty: none).',
    )
    default_security_mailbox: str = _f(
        "",
        "The mailbox for alerts that concern no configured agency (verification spikes,"
        " peer TLS, lockouts); empty: such alerts are not filed.",
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone name such as Asia/Riyadh") from None
        return value

    @field_validator("weekend")
    @classmethod
    def _weekend(cls, value: str) -> str:
        days = [day.strip().lower() for day in value.split(",") if day.strip()]
        if any(day not in _WEEKDAYS for day in days) or len(days) >= 7:
            raise ValueError("must be English weekday names, comma-separated, not all seven")
        return ",".join(days)

    @field_validator("workday_start", "workday_end")
    @classmethod
    def _clock(cls, value: str) -> str:
        _clock_minutes(value)
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, or empty")
        return value

    @field_validator("security_mailboxes")
    @classmethod
    def _mailboxes(cls, value: str) -> str:
        security_mailboxes.mailboxes(value)
        return value

    @field_validator("default_security_mailbox")
    @classmethod
    def _default_mailbox(cls, value: str) -> str:
        return security_mailboxes.address(value)

    @model_validator(mode="after")
    def _day(self) -> AlertsSettings:
        if _clock_minutes(self.workday_end) <= _clock_minutes(self.workday_start):
            raise ValueError("workday_end must be after workday_start")
        return self

    @property
    def weekend_days(self) -> frozenset[int]:
        """The weekend as Python weekday numbers (Monday 0)."""
        return frozenset(_WEEKDAYS.index(day) for day in self.weekend.split(",") if day)

    @property
    def mailboxes(self) -> dict[str, str]:
        """The security mailbox of each configured agency code."""
        return security_mailboxes.mailboxes(self.security_mailboxes)

    @property
    def workday_minutes(self) -> tuple[int, int]:
        """(start, end) of the working day in minutes after local midnight."""
        return _clock_minutes(self.workday_start), _clock_minutes(self.workday_end)
