"""No import runs back up the flow: source -> planner -> engine -> store, search reads the store.

Each part talks to the others only through the values of :mod:`indexer.core`; the pipeline wires
them together and the API and CLI drive it. Every import in every module is checked (lazy and
``TYPE_CHECKING`` imports included), so a shortcut taken in a hurry fails here, not in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "indexer"

#: The parts the rule is about, and which of them each may import. Modules outside these parts
#: (errors, aws, ratelimit, config, the attribute registry...) are shared helpers anyone may use.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "indexer.sources": frozenset(),
    "indexer.planner": frozenset({"indexer.store"}),  # it asks the store what is already indexed
    "indexer.engines": frozenset(),
    "indexer.store": frozenset(),
    "indexer.locking": frozenset({"indexer.store"}),
    "indexer.query": frozenset({"indexer.store"}),
    "indexer.bitsets": frozenset({"indexer.query", "indexer.store"}),
    "indexer.search": frozenset({"indexer.bitsets", "indexer.query", "indexer.store"}),
    "indexer.pipeline": frozenset(
        {"indexer.sources", "indexer.planner", "indexer.engines", "indexer.store", "indexer.locking"}
    ),
}
#: What drives a run (may import any part, but no part may import them). The demo drives the API
#: as a script of its own would.
DRIVERS = ("indexer.pipeline", "indexer.api", "indexer.demo", "indexer.cli", "indexer.__main__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``indexer`` name the module imports, as an absolute dotted name."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # a name may be a submodule
    return {name for name in found if name == "indexer" or name.startswith("indexer.")}


def _part(name: str) -> str | None:
    """The part (of :data:`MAY_IMPORT` or :data:`DRIVERS`) a dotted name belongs to, if any."""
    for part in (*MAY_IMPORT, *DRIVERS):
        if name == part or name.startswith(part + "."):
            return part
    return None


def _allowed(part: str | None) -> set[str | None]:
    """The parts a module of ``part`` may import (None: shared helpers, open to everyone)."""
    everything: set[str | None] = {None, *MAY_IMPORT, *DRIVERS}
    if part in ("indexer.cli", "indexer.__main__"):
        return everything
    if part in ("indexer.api", "indexer.demo"):
        return everything - {"indexer.cli"}
    if part is None:  # a helper cannot depend on what drives a run
        return everything - set(DRIVERS)
    return {None, part, *MAY_IMPORT[part]}


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[_module_name(path) for path in MODULES])
def test_imports_follow_the_flow(path: Path):
    module = _module_name(path)
    if module == "indexer.core":
        assert _imports(path) == set(), "the values of a run depend on nothing else of the indexer"
        return
    own = _part(module)
    allowed = _allowed(own)
    wrong = sorted(name for name in _imports(path) if _part(name) not in allowed)
    names = sorted(part or "shared helpers" for part in allowed)
    assert not wrong, f"{module} imports {wrong}: {own or 'a shared helper'} may import only {names}"


def test_the_checker_sees_relative_and_lazy_imports():
    """The checker itself: a relative import inside a function resolves to the module it names."""
    imports = _imports(PACKAGE / "api.py")
    assert {"indexer.pipeline.run_index", "indexer.search", "indexer.store.repository.Store"} <= imports
    assert "indexer.core.ImageRef" in _imports(PACKAGE / "engines" / "rekognition" / "engine.py")
