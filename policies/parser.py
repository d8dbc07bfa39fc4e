"""Policy file text -> `PolicyDocument`, with every shape and value mistake found.

Owns: the file format (keys, value syntax) and the checks that need no
directory: unknown keys, bad values, malformed patterns, duplicate ids.
Must not: look up agencies, roles or addresses (see validate) or decide anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType

from yaml.nodes import MappingNode, Node, ScalarNode

from policies.codes import AGENCY_CODE_RE
from policies.decision import RESERVED_RULE_IDS
from policies.directory import AgencyKind, Clearance
from policies.problems import Problem
from policies.rules import (
    DEFAULT_DENY_REASON,
    FORMAT_VERSION,
    AgencyRef,
    ClearanceRange,
    Conditions,
    Effect,
    IntRange,
    Mode,
    PolicyDocument,
    Reason,
    Relation,
    RuleSpec,
    Selector,
)
from policies.yamlread import NodeReader, compose_strict, line_of

TOP_KEYS = ("version", "default", "roles", "rules")
RULE_KEYS = ("id", "description", "sender", "recipient", "conditions", "effect", "reason", "mode")
SENDER_KEYS = ("agency", "kind", "role", "clearance", "address", "address_pattern", "peer", "local")
RECIPIENT_KEYS = (*SENDER_KEYS, "relation")
CONDITION_KEYS = ("classification", "attachments", "size", "recipients", "rate_per_hour")
RANGE_KEYS = ("at_least", "at_most")
ATTACHMENT_KEYS = ("any_of", "only")
REASON_KEYS = ("en", "ar")
DEFAULT_KEYS = ("effect", "reason")

RULE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ADDRESS_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EXTENSION_RE = re.compile(r"^\.?[a-z0-9][a-z0-9_+-]{0,15}$")
MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$")


def _values(enum_type: type[Effect] | type[Mode] | type[Relation] | type[AgencyKind]) -> str:
    return ", ".join(member.value for member in enum_type)


def glob_problem(pattern: str) -> str | None:
    """Why an address glob is malformed, or None. Globs use *, ? and [...]."""
    if not pattern:
        return "address pattern is empty"
    if any(ch.isspace() for ch in pattern):
        return f"address pattern {pattern!r} contains white space"
    if pattern.count("@") != 1:
        return f"address pattern {pattern!r} must contain exactly one '@' (e.g. *@moh.gov.example)"
    depth = 0
    for ch in pattern:
        if ch == "[":
            if depth:
                return f"address pattern {pattern!r} has a nested '['"
            depth = 1
        elif ch == "]" and depth:
            depth = 0
    if depth:
        return f"address pattern {pattern!r} has an unclosed '['"
    return None


def attachment_type_problem(entry: str) -> str | None:
    """Why an attachment type (extension like `pdf` or MIME type like `image/*`) is bad."""
    if "/" in entry:
        return None if MIME_RE.fullmatch(entry) else f"malformed MIME type {entry!r}"
    if EXTENSION_RE.fullmatch(entry):
        return None
    return f"malformed attachment type {entry!r} (use an extension like pdf or a MIME type)"


def normalize_attachment_type(entry: str) -> str:
    entry = entry.strip().lower()
    return entry if "/" in entry else entry.lstrip(".")


@dataclass
class _RuleContext:
    rule: str | None
    lines: dict[str, int] = field(default_factory=dict)


class PolicyParser:
    """Reads one policy file; `parse()` returns the document and all problems found."""

    def __init__(self, text: str, file: str, source_hash: str = "") -> None:
        self.text = text
        self.file = file
        self.source_hash = source_hash
        self.reader = NodeReader(file)

    def parse(self) -> tuple[PolicyDocument | None, list[Problem]]:
        root, problems = compose_strict(self.text, self.file)
        if root is None:
            if not problems:
                problems.append(Problem(self.file, None, None, "the policy file is empty"))
            return None, problems
        doc = self._document(root)
        return doc, self.reader.problems

    # -- top level -------------------------------------------------------------

    def _document(self, root: Node) -> PolicyDocument | None:
        r = self.reader
        keys = r.mapping(root, "policy file", TOP_KEYS, required=("version", "rules"))
        if keys is None:
            return None
        version = FORMAT_VERSION
        if "version" in keys:
            value = r.count(keys["version"][1], "version")
            if value is not None and value != FORMAT_VERSION:
                r.problem(keys["version"][1], None, f"unsupported version {value} (expected 1)")
            version = value if value is not None else version
        roles: list[str] = []
        if "roles" in keys:
            roles = [role for role, _ in r.texts(keys["roles"][1], "roles")]
        default_effect, default_reason, default_line = Effect.DENY, DEFAULT_DENY_REASON, None
        if "default" in keys:
            default_effect, default_reason, default_line = self._default(keys["default"][1])
        rules: list[RuleSpec] = []
        if "rules" in keys:
            items = r.sequence(keys["rules"][1], "rules") or []
            seen: dict[str, int] = {}
            for item in items:
                rule = self._rule(item)
                if rule is None:
                    continue
                if rule.id in seen:
                    r.problem(
                        rule.line,
                        rule.id,
                        f"duplicate rule id (first used on line {seen[rule.id]})",
                    )
                    continue
                seen[rule.id] = rule.line or 0
                rules.append(rule)
        return PolicyDocument(
            rules=tuple(rules),
            default_effect=default_effect,
            default_reason=default_reason,
            default_line=default_line,
            roles=tuple(roles),
            version=version,
            source_name=self.file,
            source_hash=self.source_hash,
        )

    def _default(self, node: Node) -> tuple[Effect, Reason, int]:
        r = self.reader
        line = line_of(node)
        if isinstance(node, ScalarNode):
            effect = self._effect(node, "default", None)
            return effect or Effect.DENY, DEFAULT_DENY_REASON, line
        keys = r.mapping(node, "default", DEFAULT_KEYS, required=("effect",))
        if keys is None:
            return Effect.DENY, DEFAULT_DENY_REASON, line
        effect = Effect.DENY
        if "effect" in keys:
            effect = self._effect(keys["effect"][1], "default effect", None) or Effect.DENY
        reason = DEFAULT_DENY_REASON
        if "reason" in keys:
            reason = self._reason(keys["reason"][1], None) or reason
        return effect, reason, line

    # -- one rule --------------------------------------------------------------

    def _rule(self, node: Node) -> RuleSpec | None:
        r = self.reader
        rule_id = self._peek_id(node)
        keys = r.mapping(node, "rule", RULE_KEYS, rule_id, required=("id", "description", "effect"))
        if keys is None:
            return None
        ctx = _RuleContext(rule_id)
        ok = True
        if "id" in keys:
            id_node = keys["id"][1]
            value = r.text(id_node, "id", rule_id)
            if value is None:
                ok = False
            elif not RULE_ID_RE.fullmatch(value):
                r.problem(
                    id_node, rule_id, "rule id: use letters, digits, '.', '_' and '-' (max 64)"
                )
                ok = False
            elif value in RESERVED_RULE_IDS:
                reserved = ", ".join(sorted(RESERVED_RULE_IDS))
                r.problem(id_node, rule_id, f"rule id {value!r} is reserved ({reserved})")
                ok = False
        description = ""
        if "description" in keys:
            description = r.text(keys["description"][1], "description", rule_id) or ""
        effect = None
        if "effect" in keys:
            effect = self._effect(keys["effect"][1], "effect", rule_id)
        mode = Mode.ENFORCE
        if "mode" in keys:
            mode_node = keys["mode"][1]
            word = r.text(mode_node, "mode", rule_id)
            if word is not None:
                try:
                    mode = Mode(word)
                except ValueError:
                    r.problem(
                        mode_node, rule_id, f"unknown mode {word!r} (expected {_values(Mode)})"
                    )
                    ok = False
            if mode is Mode.AUDIT and effect is Effect.ALLOW:
                r.problem(
                    mode_node,
                    rule_id,
                    "mode audit only applies to deny rules (it logs what would have been denied)",
                )
                ok = False
        reason = None
        if "reason" in keys:
            reason = self._reason(keys["reason"][1], rule_id)
        elif effect is Effect.DENY:
            r.problem(node, rule_id, "a deny rule needs a reason: {en: ..., ar: ...}")
        sender = self._selector(keys, "sender", SENDER_KEYS, ctx)
        recipient = self._selector(keys, "recipient", RECIPIENT_KEYS, ctx)
        conditions = self._conditions(keys, ctx)
        if not ok or effect is None or rule_id is None:
            return None
        return RuleSpec(
            id=rule_id,
            description=description,
            effect=effect,
            sender=sender,
            recipient=recipient,
            conditions=conditions,
            reason=reason,
            mode=mode,
            line=line_of(node),
            lines=MappingProxyType(ctx.lines),
        )

    def _peek_id(self, node: Node) -> str | None:
        """The rule's id, if readable, so that every problem in the rule can name it."""
        if not isinstance(node, MappingNode):
            return None
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == "id" and isinstance(value, ScalarNode):
                text = str(value.value).strip()
                return text or None
        return None

    def _effect(self, node: Node, what: str, rule: str | None) -> Effect | None:
        word = self.reader.text(node, what, rule)
        if word is None:
            return None
        try:
            return Effect(word)
        except ValueError:
            self.reader.problem(node, rule, f"unknown {what} {word!r} (expected {_values(Effect)})")
            return None

    def _reason(self, node: Node, rule: str | None) -> Reason | None:
        keys = self.reader.mapping(node, "reason", REASON_KEYS, rule, required=REASON_KEYS)
        if keys is None or len(keys) != 2:
            return None
        en = self.reader.text(keys["en"][1], "reason en", rule)
        ar = self.reader.text(keys["ar"][1], "reason ar", rule)
        return Reason(en, ar) if en and ar else None

    # -- selectors -------------------------------------------------------------

    def _selector(
        self,
        keys: dict[str, tuple[Node, Node]],
        side: str,
        allowed: tuple[str, ...],
        ctx: _RuleContext,
    ) -> Selector:
        if side not in keys:
            return Selector()
        r, rule = self.reader, ctx.rule
        ctx.lines[side] = line_of(keys[side][0])
        sub = r.mapping(keys[side][1], side, allowed, rule)
        if not sub:
            if sub is not None and not keys[side][1].value:
                r.problem(keys[side][1], rule, f"{side}: give at least one selector or omit it")
            return Selector()
        for key, (key_node, _) in sub.items():
            ctx.lines[f"{side}.{key}"] = line_of(key_node)
        selector = Selector(**self._selector_fields(sub, side, rule))  # type: ignore[arg-type]
        remote_only = selector.local is False or bool(selector.peers)
        if remote_only and selector.local_only:
            r.problem(
                keys[side][1],
                rule,
                f"{side}: peer/local: false select remote parties, which have no agency, kind,"
                " role, clearance or relation; this selector can never match",
            )
        return selector

    def _selector_fields(
        self, sub: dict[str, tuple[Node, Node]], side: str, rule: str | None
    ) -> dict[str, object]:
        """The `Selector` fields one sender or recipient mapping gives, each value checked."""
        r = self.reader
        fields: dict[str, object] = {}
        if "agency" in sub:
            fields["agencies"] = tuple(self._agency_refs(sub["agency"][1], side, rule))
        if "kind" in sub:
            fields["kinds"] = self._enum_words(sub["kind"][1], side, "kind", AgencyKind, rule)
        if "role" in sub:
            fields["roles"] = tuple(w for w, _ in r.texts(sub["role"][1], f"{side}.role", rule))
        if "clearance" in sub:
            fields["clearance"] = self._clearance_range(
                sub["clearance"][1], f"{side}.clearance", rule
            )
        if "address" in sub:
            fields["addresses"] = self._addresses(sub["address"][1], side, rule)
        if "address_pattern" in sub:
            fields["address_patterns"] = self._address_patterns(
                sub["address_pattern"][1], side, rule
            )
        if "peer" in sub:
            fields["peers"] = tuple(w for w, _ in r.texts(sub["peer"][1], f"{side}.peer", rule))
        if "local" in sub:
            fields["local"] = r.boolean(sub["local"][1], f"{side}.local", rule)
        if "relation" in sub:
            fields["relations"] = self._enum_words(
                sub["relation"][1], side, "relation", Relation, rule
            )
        return fields

    def _enum_words(
        self,
        node: Node,
        side: str,
        key: str,
        enum_type: type[AgencyKind] | type[Relation],
        rule: str | None,
    ) -> tuple[AgencyKind | Relation, ...]:
        """The words under `side.key` as members of `enum_type`; unknown words are problems."""
        found: list[AgencyKind | Relation] = []
        for word, line in self.reader.texts(node, f"{side}.{key}", rule):
            try:
                found.append(enum_type(word))
            except ValueError:
                self.reader.problem(
                    line,
                    rule,
                    f"{side}.{key}: unknown {key} {word!r} (expected {_values(enum_type)})",
                )
        return tuple(found)

    def _addresses(self, node: Node, side: str, rule: str | None) -> tuple[str, ...]:
        addresses = []
        for word, line in self.reader.texts(node, f"{side}.address", rule):
            if ADDRESS_RE.fullmatch(word):
                addresses.append(word.lower())
            else:
                self.reader.problem(line, rule, f"{side}.address: malformed address {word!r}")
        return tuple(addresses)

    def _address_patterns(self, node: Node, side: str, rule: str | None) -> tuple[str, ...]:
        patterns = []
        for word, line in self.reader.texts(node, f"{side}.address_pattern", rule):
            why = glob_problem(word)
            if why is None:
                patterns.append(word.lower())
            else:
                self.reader.problem(line, rule, f"{side}.address_pattern: {why}")
        return tuple(patterns)

    def _agency_refs(self, node: Node, side: str, rule: str | None) -> list[AgencyRef]:
        refs = []
        for word, line in self.reader.texts(node, f"{side}.agency", rule):
            code, subtree = (word[:-3], True) if word.endswith("/**") else (word, False)
            if not AGENCY_CODE_RE.fullmatch(code):
                self.reader.problem(
                    line,
                    rule,
                    f"{side}.agency: malformed agency {word!r} (use CODE or CODE/** for a subtree)",
                )
                continue
            refs.append(AgencyRef(code, subtree))
        return refs

    def _clearance_range(self, node: Node, what: str, rule: str | None) -> ClearanceRange | None:
        keys = self.reader.mapping(node, what, RANGE_KEYS, rule)
        if keys is None:
            return None
        if not keys:
            self.reader.problem(node, rule, f"{what}: give at_least and/or at_most")
            return None
        bounds: dict[str, Clearance] = {}
        for key, (_, value_node) in keys.items():
            word = self.reader.text(value_node, f"{what}.{key}", rule)
            if word is None:
                continue
            try:
                bounds[key] = Clearance.parse(word)
            except ValueError as exc:
                self.reader.problem(value_node, rule, f"{what}.{key}: {exc}")
        if len(bounds) != len(keys):
            return None
        low, high = bounds.get("at_least"), bounds.get("at_most")
        if low is not None and high is not None and low > high:
            self.reader.problem(node, rule, f"{what}: at_least is above at_most (matches nothing)")
            return None
        return ClearanceRange(low, high)

    def _int_range(self, node: Node, what: str, rule: str | None, units: bool) -> IntRange | None:
        keys = self.reader.mapping(node, what, RANGE_KEYS, rule)
        if keys is None:
            return None
        if not keys:
            self.reader.problem(node, rule, f"{what}: give at_least and/or at_most")
            return None
        bounds: dict[str, int] = {}
        for key, (_, value_node) in keys.items():
            value = self.reader.count(value_node, f"{what}.{key}", rule, units=units)
            if value is not None:
                bounds[key] = value
        if len(bounds) != len(keys):
            return None
        low, high = bounds.get("at_least"), bounds.get("at_most")
        if low is not None and high is not None and low > high:
            self.reader.problem(node, rule, f"{what}: at_least is above at_most (matches nothing)")
            return None
        return IntRange(low, high)

    # -- conditions ------------------------------------------------------------

    def _conditions(self, keys: dict[str, tuple[Node, Node]], ctx: _RuleContext) -> Conditions:
        if "conditions" not in keys:
            return Conditions()
        r, rule = self.reader, ctx.rule
        ctx.lines["conditions"] = line_of(keys["conditions"][0])
        sub = r.mapping(keys["conditions"][1], "conditions", CONDITION_KEYS, rule)
        if not sub:
            if sub is not None and not keys["conditions"][1].value:
                r.problem(keys["conditions"][1], rule, "conditions: give at least one or omit it")
            return Conditions()
        for key, (key_node, _) in sub.items():
            ctx.lines[f"conditions.{key}"] = line_of(key_node)
        fields: dict[str, object] = {}
        if "classification" in sub:
            fields["classification"] = self._clearance_range(
                sub["classification"][1], "conditions.classification", rule
            )
        if "attachments" in sub:
            node = sub["attachments"][1]
            att = r.mapping(node, "conditions.attachments", ATTACHMENT_KEYS, rule)
            if att is not None and not node.value:
                r.problem(node, rule, "conditions.attachments: give any_of and/or only")
            for key, field_name in (("any_of", "attachments_any"), ("only", "attachments_only")):
                if att and key in att:
                    types = []
                    for word, line in r.texts(att[key][1], f"conditions.attachments.{key}", rule):
                        entry = normalize_attachment_type(word)
                        why = attachment_type_problem(entry)
                        if why is None:
                            types.append(entry)
                        else:
                            r.problem(line, rule, f"conditions.attachments.{key}: {why}")
                    fields[field_name] = tuple(types)
        for key, units in (("size", True), ("recipients", False), ("rate_per_hour", False)):
            if key in sub:
                fields[key] = self._int_range(sub[key][1], f"conditions.{key}", rule, units)
        return Conditions(**fields)  # type: ignore[arg-type]


def parse_policy(
    text: str, file: str, source_hash: str = ""
) -> tuple[PolicyDocument | None, list[Problem]]:
    """Parse policy text; the document is None only when the file is unreadable as a whole."""
    return PolicyParser(text, file, source_hash).parse()
