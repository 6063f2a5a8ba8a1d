"""The package's structure, read from its source with ``ast``.

- no import cycle between modules, counting imports inside functions;
- imports run one way between the stages: families and data → design and engine → fitting →
  postfit and bayes → the top-level modules (a lazy import of the Bayesian side from a fit's
  ``to_inference_data`` is the one edge from postfit into bayes, and it is inside a method);
- no module imports a private name (``_x``) from another module;
- ``engine/`` imports neither pandas nor PyMC (nor ArviZ, nutpie or bambi);
- no module is longer than 800 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "glmm_ppl"

# the stage of each subpackage; an import may go to the same stage or a lower one
STAGES = {
    "families": 0,
    "data": 0,
    "design": 1,
    "engine": 1,
    "fitting": 2,
    "postfit": 3,
    "bayes": 3,
    "distributed": 4,
    "": 4,  # __init__, api, __main__, fit_result
}
# (importing module, imported module): the edges allowed against the order above
ALLOWED_UPWARD = {("glmm_ppl.postfit.results", "glmm_ppl.bayes.sampling")}
ENGINE_FORBIDDEN = {"pandas", "pymc", "arviz", "nutpie", "bambi", "matplotlib"}
MAX_LINES = 800


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = modules()


def imports(name: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, imported names, line)`` of every import in module ``name``, at any
    depth (inside functions too); relative imports resolved."""
    path = MODULES[name]
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [alias.name for alias in node.names]
            # "from . import engine": the names are modules of the package
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:
                out += [(m, [], node.lineno) for m in submodules]
                names = [n for n in names if f"{target}.{n}" not in MODULES]
                if not names:
                    continue
            out.append((target, names, node.lineno))
    return out


def internal_graph() -> dict[str, set[str]]:
    graph = {}
    for name in MODULES:
        graph[name] = {t for t, _, _ in imports(name) if t in MODULES and t != name}
    return graph


def stage(name: str) -> int:
    parts = name.split(".")
    sub = parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else ""
    return STAGES[sub]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, first repeated last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_is_read():
    assert {"glmm_ppl.engine.agq", "glmm_ppl.fitting.graph", "glmm_ppl.api"} <= set(MODULES)
    assert "glmm_ppl.engine.agq" in internal_graph()["glmm_ppl.fitting.graph"]


def test_no_import_cycles():
    assert find_cycle(internal_graph()) is None, " -> ".join(find_cycle(internal_graph()))


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_follow_the_stages():
    wrong = [
        f"{name} imports {target} (line {line})"
        for name in MODULES
        for target, _, line in imports(name)
        if target in MODULES
        and stage(target) > stage(name)
        and (name, target) not in ALLOWED_UPWARD
    ]
    assert wrong == []


def test_no_private_names_from_other_modules():
    wrong = []
    for name in MODULES:
        for target, names, line in imports(name):
            if not target.startswith("glmm_ppl"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                wrong.append(f"{name}:{line} takes {', '.join(private)} from {target}")
    assert wrong == []


def test_no_private_attributes_of_other_objects():
    """``obj._name`` only on ``self``/``cls``/``other`` (a class's own instances), never on
    another module's objects: an attribute read like ``graph._X`` or ``fit._blocks()``."""
    wrong = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id not in ("self", "cls", "other")
                and node.value.id not in _own_names(tree)
            ):
                wrong.append(f"{name}:{node.lineno} reads {node.value.id}.{node.attr}")
    assert wrong == []


def _own_names(tree: ast.Module) -> set[str]:
    """Names of the classes a module defines (their private attributes are its own) and of
    third-party modules whose private API it uses knowingly."""
    own = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    return own | {"numba", "np", "pt", "ps", "os", "sys", "warnings", "CacheImpl"}


def test_engine_imports_neither_pandas_nor_pymc():
    wrong = [
        f"{name} imports {target} (line {line})"
        for name in MODULES
        if name.startswith("glmm_ppl.engine")
        for target, _, line in imports(name)
        if target.split(".")[0] in ENGINE_FORBIDDEN
    ]
    assert wrong == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_small(name):
    n = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines (at most {MAX_LINES})"


def test_stages_are_subpackages():
    subpackages = {name.split(".")[1] for name in MODULES if name.count(".") >= 2}
    assert {"design", "engine", "fitting", "postfit", "bayes", "families"} <= subpackages
    assert set(STAGES) - {""} == subpackages
