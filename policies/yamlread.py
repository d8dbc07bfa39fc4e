"""Strict YAML reading with line numbers for policy and cases files.

Owns: composing YAML into nodes (refusing aliases, anchors, tags, several
documents and duplicate keys) and typed reads that record problems with lines.
Must not: know what a rule is; it never builds Python objects from tags.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from policies.problems import Problem

# libyaml when present (same results, much faster); both keep line marks.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})
_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def line_of(node: Node) -> int:
    """1-based line where the node starts."""
    return int(node.start_mark.line) + 1


def compose_strict(text: str, file: str) -> tuple[Node | None, list[Problem]]:
    """Compose one YAML document; problems for syntax errors and refused features."""
    problems: list[Problem] = []
    documents = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            line = 1 if event.start_mark is None else int(event.start_mark.line) + 1
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents == 2:
                    problems.append(Problem(file, line, None, "only one YAML document is allowed"))
            elif isinstance(event, yaml.AliasEvent):
                problems.append(
                    Problem(file, line, None, f"YAML aliases (*{event.anchor}) are not allowed")
                )
            elif isinstance(event, yaml.NodeEvent):
                if event.anchor is not None:
                    problems.append(
                        Problem(file, line, None, f"YAML anchors (&{event.anchor}) are not allowed")
                    )
                tag = getattr(event, "tag", None)
                if tag is not None:
                    problems.append(Problem(file, line, None, f"YAML tags ({tag}) are not allowed"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        error_line = None if mark is None else int(mark.line) + 1
        what = exc.problem or exc.context or "syntax error"
        problems.append(Problem(file, error_line, None, f"YAML syntax error: {what}"))
        return None, problems
    except yaml.YAMLError as exc:
        problems.append(Problem(file, None, None, f"YAML error: {exc}"))
        return None, problems
    if problems:
        return None, problems
    return yaml.compose(text, Loader=_Loader), problems


class NodeReader:
    """Typed reads from composed nodes; each mistake becomes a Problem with its line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, node: Node | int | None, rule: str | None, message: str) -> None:
        line = line_of(node) if isinstance(node, Node) else node
        self.problems.append(Problem(self.file, line, rule, message))

    def mapping(
        self,
        node: Node,
        what: str,
        allowed: Collection[str],
        rule: str | None = None,
        required: Collection[str] = (),
    ) -> dict[str, tuple[Node, Node]] | None:
        """Keys to (key node, value node); reports unknown, duplicate and missing keys."""
        if not isinstance(node, MappingNode):
            self.problem(node, rule, f"{what} must be a mapping")
            return None
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, rule, f"{what}: keys must be plain words")
                continue
            key = str(key_node.value)
            if key in out:
                self.problem(key_node, rule, f"{what}: duplicate key {key!r}")
                continue
            if key not in allowed:
                hint = difflib.get_close_matches(key, list(allowed), n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                known = ", ".join(sorted(allowed))
                self.problem(
                    key_node, rule, f"{what}: unknown key {key!r}{extra}; expected one of: {known}"
                )
                continue
            out[key] = (key_node, value_node)
        for key in required:
            if key not in out:
                self.problem(node, rule, f"{what}: missing required key {key!r}")
        return out

    def sequence(self, node: Node, what: str, rule: str | None = None) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.problem(node, rule, f"{what} must be a list")
            return None
        return list(node.value)

    def text(self, node: Node, what: str, rule: str | None = None) -> str | None:
        """A non-empty string scalar."""
        if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, rule, f"{what} must be a text value")
            return None
        value = str(node.value).strip()
        if not value:
            self.problem(node, rule, f"{what} must not be empty")
            return None
        return value

    def texts(self, node: Node, what: str, rule: str | None = None) -> list[tuple[str, int]]:
        """One text or a non-empty list of texts, each with its line."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        if isinstance(node, SequenceNode) and not items:
            self.problem(node, rule, f"{what} must not be an empty list")
        out: list[tuple[str, int]] = []
        for item in items:
            value = self.text(item, what, rule)
            if value is not None:
                out.append((value, line_of(item)))
        return out

    def boolean(self, node: Node, what: str, rule: str | None = None) -> bool | None:
        if isinstance(node, ScalarNode):
            word = str(node.value).strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        self.problem(node, rule, f"{what} must be true or false")
        return None

    def count(
        self, node: Node, what: str, rule: str | None = None, units: bool = False
    ) -> int | None:
        """A non-negative integer; with `units`, also "10MB", "512KiB" (KB=1000, KiB=1024)."""
        if isinstance(node, ScalarNode):
            raw = str(node.value).strip().replace("_", "")
            number, unit = raw, ""
            if units:
                digits = raw.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")
                number, unit = digits.strip(), raw[len(digits) :].strip().lower()
            if number.isdigit() and (unit == "" or unit in _UNITS):
                return int(number) * _UNITS.get(unit, 1)
        suffix = " (units: B, KB, MB, GB, KiB, MiB, GiB)" if units else ""
        self.problem(node, rule, f"{what} must be a whole number >= 0{suffix}")
        return None
