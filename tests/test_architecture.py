"""The layout rules of README "## Architecture", checked on the source (ast; nothing is imported or run).

- no import cycle among the project's modules, counting imports inside functions too;
- each package imports only what its row of ALLOWED says (fracto_core nothing; eval/, training/,
  tiny_qwen3vl/ and dataset_builders/ only fracto_core; training/smoke.py, which drives the whole pipeline,
  also the builder and the tiny model);
- every stage of dataset_builders.stages.STAGE_NAMES is the module dataset_builders/<name>.py, and
  STAGE_MODULES points there;
- no .py file outside tests/ over MAX_LINES lines.
Each test lists every violation it finds, not only the first.

An import counts as an edge to the most specific project module it names (``from dataset_builders import
split`` -> dataset_builders.split; ``from fracto_core.vocabulary import FEATURES`` -> fracto_core.vocabulary),
not to the parent packages whose __init__ Python also runs; imports under ``if TYPE_CHECKING:`` do not count.
The stage registry's string imports (importlib, STAGE_MODULES) are dispatch by name and are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fracto_core", "dataset_builders", "eval", "training", "tiny_qwen3vl")
MAX_LINES = 500
# package -> project packages it may import (besides itself); README "## Architecture" has the same table
ALLOWED: dict[str, frozenset[str]] = {
    "fracto_core": frozenset(),
    "dataset_builders": frozenset({"fracto_core"}),
    "eval": frozenset({"fracto_core"}),
    "training": frozenset({"fracto_core"}),
    "tiny_qwen3vl": frozenset({"fracto_core"}),
}
# module -> extra packages it may import: the CPU smoke run drives the builder and the tiny model
EXCEPTIONS: dict[str, frozenset[str]] = {
    "training.smoke": frozenset({"dataset_builders", "tiny_qwen3vl"}),
}
SKIP_DIRS = {"tests", "__pycache__", "node_modules", "output", "build", "dist", "venv"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Module name -> file, for every .py file of the project's packages."""
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))
            if "__pycache__" not in p.parts}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions, classes, try blocks), except under TYPE_CHECKING."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return sorted(found, key=lambda n: n.lineno)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The most specific project module that a dotted name is or lies in (None: not the project's)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_edges(modules: dict[str, Path]) -> dict[str, list[tuple[str, int]]]:
    """Module -> [(imported project module, line)], one entry per import target."""
    edges: dict[str, list[tuple[str, int]]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        out: list[tuple[str, int]] = []
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's own package upwards
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join(package + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    out.append((resolved, node.lineno))
        edges[name] = out
    return edges


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _cycles(edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), each sorted."""
    graph = {m: sorted({t for t, _ in targets}) for m, targets in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_cycles():
    modules = project_modules()
    edges = import_edges(modules)
    problems = []
    for component in _cycles(edges):
        members = set(component)
        lines = [f"  {_rel(modules[m])}:{line} imports {t}" for m in component for t, line in edges[m]
                 if t in members]
        problems.append(f"import cycle among {', '.join(component)}:\n" + "\n".join(lines))
    assert not problems, "\n".join(problems)


def test_packages_import_only_what_they_may():
    modules = project_modules()
    problems = []
    for name, targets in import_edges(modules).items():
        package = name.split(".")[0]
        allowed = ALLOWED[package] | EXCEPTIONS.get(name, frozenset()) | {package}
        for target, line in targets:
            if target.split(".")[0] not in allowed:
                may = ", ".join(sorted(allowed - {package}))
                problems.append(f"{_rel(modules[name])}:{line} imports {target}; {package}/ may import "
                                + (f"only {may}" if may else "nothing of the project"))
    assert not problems, "\n".join(problems)


def _literal_assignment(tree: ast.Module, name: str) -> ast.expr | None:
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node.value
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
    return None


def test_every_stage_is_a_module_of_its_name():
    path = REPO / "dataset_builders" / "stages.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    stage_modules = ast.literal_eval(_literal_assignment(tree, "STAGE_MODULES"))
    names_node = _literal_assignment(tree, "STAGE_NAMES")
    # STAGE_NAMES is tuple(STAGE_MODULES) or a literal tuple
    if isinstance(names_node, ast.Call) and getattr(names_node.func, "id", "") == "tuple":
        stage_names = tuple(stage_modules)
    else:
        stage_names = tuple(ast.literal_eval(names_node))
    assert stage_names, f"{_rel(path)}: no STAGE_NAMES"
    problems = []
    for stage in stage_names:
        if not (REPO / "dataset_builders" / f"{stage}.py").is_file():
            problems.append(f"stage {stage!r}: no module dataset_builders/{stage}.py")
        if stage_modules.get(stage) != f"dataset_builders.{stage}":
            problems.append(f"stage {stage!r}: STAGE_MODULES maps it to {stage_modules.get(stage)!r}, "
                            f"not 'dataset_builders.{stage}'")
    assert not problems, "\n".join(problems)


def _source_files() -> list[Path]:
    files = []
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel[:-1]):
            continue
        files.append(path)
    return files


def test_no_module_over_500_lines():
    problems = []
    for path in _source_files():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            problems.append(f"{_rel(path)}: {n} lines (max {MAX_LINES})")
    assert not problems, "\n".join(problems)


def test_the_checks_see_the_project():
    """The walkers find the packages and the imports (so an empty result above means something)."""
    modules = project_modules()
    assert {"fracto_core.vocabulary", "dataset_builders.build", "eval.tasks", "training.smoke",
            "tiny_qwen3vl.build"} <= set(modules)
    edges = import_edges(modules)
    assert "fracto_core.vocabulary" in {t for t, _ in edges["fracto_core.phrases"]}
    # a function-level import is an edge too (label.main imports the stage runner inside the function)
    assert "dataset_builders.stages" in {t for t, _ in edges["dataset_builders.label"]}
    assert any(p.name == "build.py" and p.parent.name == "dataset_builders" for p in _source_files())
    assert not any("tests" in p.relative_to(REPO).parts for p in _source_files())
    assert _cycles({"a": [("b", 1)], "b": [("c", 1)], "c": [("a", 1)], "d": [("a", 1)]}) == [["a", "b", "c"]]
