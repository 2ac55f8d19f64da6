"""The package's layers, as folders, each importing only from below (DESIGN.md, issue 15).

Read from the source with ``ast`` (every import, at module level or inside a function, typing
blocks included), so a lazy upward import is caught as well as an eager one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "autotalk_prefect"

#: bottom to top; a module may import its own layer and those before it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("autotalk_prefect._version", "autotalk_prefect._lazy", "autotalk_prefect.serving")),
    ("api client", ("autotalk_prefect.api",)),
    (
        "prefect glue",
        ("autotalk_prefect.credentials", "autotalk_prefect.tasks", "autotalk_prefect.ratelimit"),
    ),
    ("ledger", ("autotalk_prefect.ledger",)),
    ("flows", ("autotalk_prefect.flows",)),
    ("event receiver", ("autotalk_prefect.webhooks",)),
    ("sandbox", ("autotalk_prefect.sandbox",)),
    (
        "apps",
        (
            "autotalk_prefect.demo",
            "autotalk_prefect.cli",
            "autotalk_prefect.cli_errors",
            "autotalk_prefect.cli_consent",
            "autotalk_prefect.doctor",
        ),
    ),
]
ROOT = "autotalk_prefect"  # the package root re-exports lazily from any layer


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer_of(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name == ROOT or name.startswith(ROOT + ".")]


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _module_name(p) != ROOT)


def test_every_module_belongs_to_a_layer() -> None:
    orphans = [_module_name(p) for p in MODULES if _layer_of(_module_name(p)) is None]
    assert orphans == [], f"modules outside every layer (add them to LAYERS): {orphans}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_upward_import(path: Path) -> None:
    module = _module_name(path)
    own = _layer_of(module)
    assert own is not None
    upward = []
    for imported in _imports(path):
        if imported == ROOT:
            upward.append(f"{imported} (the package root: import the module itself)")
            continue
        layer = _layer_of(imported)
        if layer is not None and layer > own:
            upward.append(f"{imported} ({LAYERS[layer][0]})")
    assert upward == [], f"{module} ({LAYERS[own][0]}) imports from above: {upward}"


def test_the_api_client_never_imports_prefect() -> None:
    offenders = {}
    for path in MODULES:
        if _layer_of(_module_name(path)) != 1:
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            bad = [n for n in names if n == "prefect" or n.startswith("prefect.")]
            if bad:
                offenders[_module_name(path)] = bad
    assert offenders == {}
