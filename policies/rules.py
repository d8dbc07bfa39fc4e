"""The declarative policy as parsed: rules, selectors, conditions, reasons.

Owns: plain immutable values describing what a policy file says. Must not:
parse YAML, look at the directory or decide anything (see parser, engine).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from policies.directory import AgencyKind, Clearance

FORMAT_VERSION = 1


class Effect(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class Mode(enum.StrEnum):
    ENFORCE = "enforce"  # the rule decides
    AUDIT = "audit"  # the rule is logged when it would have denied; never blocks


class Relation(enum.StrEnum):
    """How the recipient's agency stands to the sender's agency."""

    SAME_AGENCY = "same-agency"  # the very same agency
    SAME_SUBTREE = "same-subtree"  # the sender's agency or one below it
    SAME_TREE = "same-tree"  # both under the same top-level agency
    PARENT = "parent"  # the sender's agency's parent
    CHILD = "child"  # a child of the sender's agency
    CHAIN_OF_COMMAND = "chain-of-command"  # parent or child
    ANCESTOR = "ancestor"  # any agency above the sender's


@dataclass(frozen=True, slots=True)
class Reason:
    """Text shown to the user, in English and Arabic."""

    en: str
    ar: str

    def to_dict(self) -> dict[str, str]:
        return {"en": self.en, "ar": self.ar}


@dataclass(frozen=True, slots=True)
class ClearanceRange:
    at_least: Clearance | None = None
    at_most: Clearance | None = None

    def contains(self, value: Clearance) -> bool:
        if self.at_least is not None and value < self.at_least:
            return False
        return self.at_most is None or value <= self.at_most

    def __str__(self) -> str:
        parts = []
        if self.at_least is not None:
            parts.append(f"at least {self.at_least.label}")
        if self.at_most is not None:
            parts.append(f"at most {self.at_most.label}")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class IntRange:
    at_least: int | None = None
    at_most: int | None = None

    def contains(self, value: int) -> bool:
        if self.at_least is not None and value < self.at_least:
            return False
        return self.at_most is None or value <= self.at_most

    def __str__(self) -> str:
        parts = []
        if self.at_least is not None:
            parts.append(f"at least {self.at_least}")
        if self.at_most is not None:
            parts.append(f"at most {self.at_most}")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class AgencyRef:
    """`MOH` (that agency only) or `MOH/**` (MOH and everything below it)."""

    code: str
    subtree: bool = False

    def __str__(self) -> str:
        return f"{self.code}/**" if self.subtree else self.code


@dataclass(frozen=True, slots=True)
class Selector:
    """Which parties a rule applies to. Keys combine with AND; list entries with OR.

    An empty tuple or None means "no constraint on this key". `relations` is only
    used on the recipient side (relative to the sender).
    """

    agencies: tuple[AgencyRef, ...] = ()
    kinds: tuple[AgencyKind, ...] = ()
    roles: tuple[str, ...] = ()
    clearance: ClearanceRange | None = None
    addresses: tuple[str, ...] = ()
    address_patterns: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    local: bool | None = None
    relations: tuple[Relation, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self == EMPTY_SELECTOR

    @property
    def local_only(self) -> bool:
        """True when only a directory employee can match (remote parties never do)."""
        return bool(
            self.agencies
            or self.kinds
            or self.roles
            or self.clearance is not None
            or self.relations
            or self.local is True
        )


EMPTY_SELECTOR = Selector()


@dataclass(frozen=True, slots=True)
class Conditions:
    """Facts about the message a rule needs. All must hold (AND)."""

    classification: ClearanceRange | None = None
    attachments_any: tuple[str, ...] = ()  # some attachment has one of these types
    attachments_only: tuple[str, ...] = ()  # every attachment has one of these types
    size: IntRange | None = None  # bytes
    recipients: IntRange | None = None  # recipients of the message
    rate_per_hour: IntRange | None = None  # sender's messages in the last hour

    @property
    def is_empty(self) -> bool:
        return self == NO_CONDITIONS


NO_CONDITIONS = Conditions()


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule as written. `line` is 1-based; `lines` maps "sender.agency" etc. to lines."""

    id: str
    description: str
    effect: Effect
    sender: Selector = EMPTY_SELECTOR
    recipient: Selector = EMPTY_SELECTOR
    conditions: Conditions = NO_CONDITIONS
    reason: Reason | None = None
    mode: Mode = Mode.ENFORCE
    line: int | None = None
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key, self.line)

    @property
    def unconditional(self) -> bool:
        return self.conditions.is_empty


DEFAULT_DENY_REASON = Reason(
    en="No routing policy allows this sender to address this recipient.",
    ar="لا توجد سياسة توجيه تسمح لهذا المرسل بمراسلة هذا المستلم.",
)
DEFAULT_ALLOW_REASON = Reason(
    en="Allowed by the routing policy.",
    ar="مسموح بموجب سياسة التوجيه.",
)


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """A whole policy file: ordered rules and the final default."""

    rules: tuple[RuleSpec, ...] = ()
    default_effect: Effect = Effect.DENY
    default_reason: Reason = DEFAULT_DENY_REASON
    default_line: int | None = None
    roles: tuple[str, ...] = ()  # roles declared ahead of the directory
    version: int = FORMAT_VERSION
    source_name: str = "<policy>"
    source_hash: str = ""  # sha256 of the file bytes, hex
