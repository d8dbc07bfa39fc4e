"""Packaging: what product code imports is what a plain `pip install .` brings.

A runtime import that is declared only in the `test` extra gives a `barid` that
dies on its first import (`.ci/run` also checks a real plain install); the lock
file must pin every runtime dependency, with hashes, at a version the
declaration allows; files the commands read at run time ship inside a package.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("gateway", "policies", "keys", "admin")
# Imported lazily by a dependency, so no `import` line of ours names them:
# dkimpy needs PyNaCl for Ed25519 DKIM keys (signing and verifying).
LAZY = {"nacl": "pynacl"}


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _runtime_requirements() -> dict[str, Requirement]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    reqs = [Requirement(line) for line in project["dependencies"]]
    return {canonicalize_name(r.name): r for r in reqs}


def _third_party_imports() -> dict[str, str]:
    """Top-level module -> first product file that imports it."""
    seen: dict[str, str] = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in PRODUCT or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    seen.setdefault(top, str(path.relative_to(ROOT)))
    return seen


def test_every_runtime_import_is_a_runtime_dependency() -> None:
    declared = set(_runtime_requirements())
    distributions = metadata.packages_distributions()
    modules = _third_party_imports()
    missing = []
    for module, where in sorted(modules.items()):
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing.append(f"{module} (imported in {where})")
    for module, dist in LAZY.items():
        if canonicalize_name(dist) not in declared:
            missing.append(f"{module} (imported lazily; distribution {dist})")
    assert not missing, "not in [project].dependencies: " + ", ".join(missing)
    # The scan itself found the imports it must (a broken scan would pass vacuously).
    assert {"aiosmtpd", "sqlalchemy", "aiosmtplib", "pysasl", "proxyprotocol"} <= set(modules)


def test_security_floors_on_exposed_code_paths() -> None:
    reqs = _runtime_requirements()
    floors = {
        "starlette": "0.49.1",  # multipart parsing on the public verify routes
        "cryptography": "44.0.1",
        "pillow": "11.0",  # decodes untrusted photos
        "python-multipart": "0.0.22",
    }
    for name, floor in floors.items():
        spec = reqs[name].specifier
        lowest = [s.version for s in spec if s.operator == ">="]
        assert lowest, f"{name} has no lower bound"
        from packaging.version import Version

        assert Version(lowest[0]) >= Version(floor), f"{name} floor {lowest[0]} < {floor}"


def _lock_pins() -> dict[str, tuple[str, int]]:
    """Package -> (pinned version, number of hashes) from requirements.lock."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pins: dict[str, tuple[str, int]] = {}
    entry = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)")
    current: str | None = None
    for line in text.splitlines():
        found = entry.match(line)
        if found:
            current = canonicalize_name(found.group(1))
            pins[current] = (found.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif not line.startswith(" "):
            current = None
    return pins


def test_lock_file_pins_every_runtime_dependency_with_hashes() -> None:
    pins = _lock_pins()
    problems = []
    for name, req in sorted(_runtime_requirements().items()):
        if name not in pins:
            problems.append(f"{name} is not in requirements.lock (run `make lock`)")
            continue
        version, hashes = pins[name]
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{name}=={version} does not satisfy {req.specifier} (`make lock`)")
        if hashes == 0:
            problems.append(f"{name} has no hash in requirements.lock")
    assert all(hashes for _, hashes in pins.values()), "every pin carries a hash"
    assert not problems, "; ".join(problems)


def test_files_read_at_run_time_ship_inside_the_package() -> None:
    from admin.init import SHIPPED_POLICY

    assert SHIPPED_POLICY.is_file()
    assert Path(__file__).resolve().parents[2] / "admin" in SHIPPED_POLICY.resolve().parents
    package_data = _pyproject()["tool"]
    assert isinstance(package_data, dict)
    patterns = package_data["setuptools"]["package-data"]["admin"]
    assert any(SHIPPED_POLICY.match(f"admin/{pattern}") for pattern in patterns)
    # The example in config/ is the same file, not a copy that could drift.
    assert (ROOT / "config" / "policies.yaml").resolve() == SHIPPED_POLICY.resolve()
