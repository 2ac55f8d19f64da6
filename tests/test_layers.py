"""The package's layers, as folders, each importing only from below (DESIGN.md, issues 15, 22).

Read from the source with ``ast`` (every import, at module level or inside a function, typing
blocks included), so a lazy upward import is caught as well as an eager one; so is a circle
between modules of one folder (``a`` imports ``b``, which imports ``a``), which no lazy import
may hide; and imports of our own modules sit at the top of the file, but for the few named in
``LAZY`` with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "autotalk_prefect"

#: bottom to top; a module may import its own layer and those before it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "autotalk_prefect._version",
            "autotalk_prefect._lazy",
            "autotalk_prefect.serving",
            "autotalk_prefect._compat",
        ),
    ),
    ("api client", ("autotalk_prefect.api",)),
    (
        "prefect glue",
        (
            "autotalk_prefect.credentials",
            "autotalk_prefect.tasks",
            "autotalk_prefect.ratelimit",
            "autotalk_prefect.concurrency_limits",
        ),
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
            "autotalk_prefect.cli.errors",
            "autotalk_prefect.cli.consent",
            "autotalk_prefect.doctor",
        ),
    ),
]
ROOT = "autotalk_prefect"  # the package root re-exports lazily from any layer


#: (module, the module it imports inside a function): why it may not import it at the top
LAZY: dict[tuple[str, str], str] = {
    **dict.fromkeys(
        [
            ("autotalk_prefect.sandbox.pytest_plugin", "autotalk_prefect.sandbox.config"),
            ("autotalk_prefect.sandbox.pytest_plugin", "autotalk_prefect.sandbox.server"),
        ],
        "pytest loads the plugin in every run of every project that installs the package: "
        "the sandbox is imported only when a test asks for a fixture",
    ),
    **dict.fromkeys(
        [
            ("autotalk_prefect.cli.demo", "autotalk_prefect.demo.context"),
            ("autotalk_prefect.cli.demo", "autotalk_prefect.demo.report"),
            ("autotalk_prefect.cli.demo", "autotalk_prefect.demo.steps"),
        ],
        "Prefect is imported only after the demo has set its environment (PREFECT_HOME)",
    ),
    **dict.fromkeys(
        [
            ("autotalk_prefect.flows.sync.flow", "autotalk_prefect.flows.sync.source"),
        ],
        "the source imports dlt, an optional extra (autotalk-prefect[dlt])",
    ),
    ("autotalk_prefect.cli.main", "autotalk_prefect.cli.commands"): (
        "the commands that need Prefect load when one is asked for: `autotalk-prefect sandbox` "
        "and `webhooks` start without importing Prefect"
    ),
    ("autotalk_prefect.sandbox.server", "autotalk_prefect.credentials"): (
        "the credentials block imports Prefect; a sandbox started from the command line "
        "never builds one"
    ),
}


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


# ---- circles and lazy imports ------------------------------------------------------------------

NAMES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The package module ``name`` is, or lives in (``a.b.Thing`` -> ``a.b``)."""
    while name and name not in NAMES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> set[str]:
    """The package modules one import statement loads (``from a import b``: the module ``a.b``
    when there is one, else ``a``; relative imports resolved against the module's package)."""
    if isinstance(node, ast.Import):
        return {t for alias in node.names if (t := _resolve(alias.name))}
    base = node.module or ""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    found = set()
    for alias in node.names:
        target = _resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in NAMES else None
        if target is None:
            target = _resolve(base)
        if target:
            found.add(target)
    return found


def _graph() -> dict[str, dict[str, int]]:
    """module -> {module it imports: the line of the first such import}, over the package."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in NAMES.items():
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, module, path):
                    if target not in (module, ROOT):
                        edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's components of more than one module (each holds at least one circle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _a_circle(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    """One circle through the component's first module, each hop with its line."""
    start, members = component[0], set(component)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for successor in sorted(graph[node]):
            if successor == start:
                hops = [*paths[node], start]
                return " -> ".join(
                    f"{a} (line {graph[a][b]})" if b else a
                    for a, b in zip(hops, [*hops[1:], ""], strict=True)
                )
            if successor in members and successor not in paths:
                paths[successor] = [*paths[node], successor]
                queue.append(successor)
    raise AssertionError(f"no circle through {start}")  # pragma: no cover - Tarjan found one


def test_no_circle_between_modules() -> None:
    graph = _graph()
    circles = [_a_circle(graph, component) for component in _strongly_connected(graph)]
    assert circles == [], "modules that import each other (move the shared part down):\n" + (
        "\n".join(circles)
    )


def test_the_circle_finder_names_a_circle() -> None:
    graph = {"a": {"b": 3}, "b": {"c": 7}, "c": {"a": 1}, "d": {"a": 2}}
    assert _strongly_connected(graph) == [["a", "b", "c"]]
    assert _a_circle(graph, ["a", "b", "c"]) == "a (line 3) -> b (line 7) -> c (line 1) -> a"
    assert _strongly_connected({"a": {"b": 1}, "b": {}}) == []


def _lazy_imports(path: Path) -> list[tuple[str, int]]:
    """Imports of our own modules inside a function (or a class body) of ``path``."""
    module = _module_name(path)
    nested: dict[int, ast.Import | ast.ImportFrom] = {}
    for scope in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for node in ast.walk(scope):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    nested[id(node)] = node
    return [
        (target, node.lineno)
        for node in sorted(nested.values(), key=lambda n: n.lineno)
        for target in sorted(_targets(node, module, path))
        if target != module
    ]


def test_our_imports_are_at_the_top() -> None:
    lazy = [
        f"{_module_name(path)} line {line}: {target}"
        for path in MODULES
        for target, line in _lazy_imports(path)
        if (_module_name(path), target) not in LAZY
    ]
    assert lazy == [], (
        "import these at the top of the file (or name the reason in LAZY): " + "; ".join(lazy)
    )


def test_every_lazy_import_named_is_still_lazy() -> None:
    actual = {(_module_name(p), target) for p in MODULES for target, _ in _lazy_imports(p)}
    assert sorted(set(LAZY) - actual) == []
