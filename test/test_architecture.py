"""Architecture rules, checked statically over the source: the public API, no import cycles,
no imports of another module's private names, and a ROS-free library."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("s2m_model", "s2m_ros")
PUBLIC_API = ("Pipeline", "PipelineConfig", "PersonResult", "Camera", "load_body_model",
              "get_format", "dik")  # fmt: skip


# ---------------------------------------------------------------------------- source model


@cache
def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every Python file of the project packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks (never executed)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if _is_type_checking(node):
            stack.extend(node.orelse)  # type: ignore[attr-defined]
            continue
        stack.extend(ast.iter_child_nodes(node))


def _base(module: str, node: ast.ImportFrom) -> str | None:
    """The absolute module a ``from ... import`` reads from."""
    if not node.level:
        return node.module
    parts = module.split(".")
    if modules()[module].name != "__init__.py":
        parts.pop()
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _known(name: str) -> str | None:
    """The project module ``name`` is, or lies in (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@cache
def tree(module: str) -> ast.Module:
    return ast.parse(modules()[module].read_text(), filename=str(modules()[module]))


def imports(module: str) -> set[str]:
    """Project modules ``module`` imports anywhere (top level or inside functions)."""
    out = set()
    for node in _runtime_nodes(tree(module)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, node)
            if base is None:
                continue
            targets = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            found = _known(target)
            if found and found != module:
                out.add(found)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _package(module: str) -> str:
    return module if modules()[module].name == "__init__.py" else module.rpartition(".")[0]


def private_uses(module: str) -> list[str]:
    """``from M import _x``, ``M._x`` and imports of a private module ``P._m`` from outside
    its package ``P``, where ``M`` is another project module."""
    found = []
    aliases: dict[str, str] = {}  # local name -> project module it is bound to
    for node in _runtime_nodes(tree(module)):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _known(a.name) == a.name:
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, node)
            if base is None or _known(base) is None:
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in modules():
                    aliases[a.asname or a.name] = full
                elif _is_private(a.name) and _known(base) != module:
                    found.append(f"{module}:{node.lineno}: from {base} import {a.name}")
    for node in _runtime_nodes(tree(module)):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            dotted = _dotted(node.value)
            target = aliases.get(dotted) if dotted else None
            if target is None and dotted in modules():
                target = dotted
            if target is not None and target != module:
                found.append(f"{module}:{node.lineno}: {dotted}.{node.attr}")
    for target in imports(module):
        parent, _, last = target.rpartition(".")
        # A private module (``pkg/_common.py``) is for its own package only.
        if _is_private(last) and not module.startswith(parent + "."):
            found.append(f"{module}: imports the private module {target}")
    return found


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


# ---------------------------------------------------------------------------- the rules


def test_import_s2m_model_is_cheap():
    code = (
        "import sys, s2m_model\n"
        "assert 'torch' not in sys.modules, 'import s2m_model imported torch'\n"
        "eager = [m for m in sys.modules if m.startswith('s2m_model.')]\n"
        "assert not eager, f'import s2m_model imported {eager}'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]


def test_public_api_names_resolve():
    import s2m_model as s
    from s2m_model import dik
    from s2m_model.body import load_body_model
    from s2m_model.camera import Camera
    from s2m_model.pipeline import PersonResult, Pipeline, PipelineConfig
    from s2m_model.skeletons import get_format

    expected = {"Pipeline": Pipeline, "PipelineConfig": PipelineConfig,
                "PersonResult": PersonResult, "Camera": Camera,
                "load_body_model": load_body_model, "get_format": get_format, "dik": dik}
    assert sorted(s.__all__) == sorted(PUBLIC_API) == sorted(expected)
    for name, obj in expected.items():
        assert getattr(s, name) is obj, name
        assert name in dir(s)
    with pytest.raises(AttributeError, match="no_such_name"):
        s.no_such_name  # noqa: B018 - the attribute access is the test


def test_no_import_cycles():
    """Function-level (lazy) imports count too: a cycle through them is still a cycle."""
    graph = {m: imports(m) for m in modules()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _top_level_imports(module: str) -> set[str]:
    """First components of every absolute import of ``module`` (``rclpy``, ``numpy``...)."""
    out = set()
    for node in _runtime_nodes(tree(module)):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_the_library_never_imports_ros():
    offenders = {
        m: sorted(_top_level_imports(m) & {"s2m_ros", "rclpy", "rosbags", "launch"})
        for m in modules() if m.startswith("s2m_model")
    }  # fmt: skip
    assert {m: v for m, v in offenders.items() if v} == {}


def test_no_module_uses_another_modules_private_names():
    found = [line for m in modules() for line in private_uses(m)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    "source, expect",
    [
        ("from s2m_model.dik import _world_from_local\n", "from s2m_model.dik import _world"),
        ("from s2m_model import dik\nx = dik._rest_points\n", "dik._rest_points"),
        ("import s2m_model.dik as d\nx = d._rest_points\n", "d._rest_points"),
        ("import s2m_model.dik\nx = s2m_model.dik._rest_points\n", "s2m_model.dik._rest"),
        ("from s2m_model.data.datasets._common import require\n", "private module"),
        ("from s2m_model.dik import solve\nx = solve.__doc__\n", None),
        ("import numpy as np\nx = np._NoValue\n", None),
    ],
)
def test_the_private_name_check_catches_each_form(tmp_path, monkeypatch, source, expect):
    fake = tmp_path / "s2m_model" / "eval" / "probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(source)
    table = {**modules(), "s2m_model.eval.probe": fake}
    monkeypatch.setattr(sys.modules[__name__], "modules", lambda: table)
    tree.cache_clear()
    try:
        found = private_uses("s2m_model.eval.probe")
    finally:
        tree.cache_clear()
    if expect is None:
        assert found == []
    else:
        assert len(found) == 1 and expect in found[0], found
