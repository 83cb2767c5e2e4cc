"""The package's shape: data flows one way (schemas -> crawler -> synth -> filters -> report -> training -> cli), and
no modules import each other in a loop. Every import counts, those inside functions too: a lazy import is still a
dependency. The root package `wdtk` is the Python API over them all (`wdtk.run`, `wdtk.stages`, imported lazily), so
it sits on top; what the floors take from it is `__version__`, a constant, not the API."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repo root is the `wdtk` package
FLOORS = ("schemas", "crawler", "synth", "filters", "report", "training", "cli")


def module_name(path: Path) -> str:
    parts = ["wdtk", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    skip = {"tests", "bench", "scripts", "build", "dist", ".venv"}
    files = [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]
    return {module_name(p): p for p in files}


def absolute(path: Path, level: int, module: str | None) -> str:
    """The absolute name of `from <level dots><module> import ...` written in `path`."""
    if not level:
        return module or ""
    package = module_name(path).split(".")
    package = package if path.name == "__init__.py" else package[:-1]
    base = package[: len(package) - level + 1]
    return ".".join(base + ([module] if module else []))


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The wdtk modules `path` imports, anywhere in the file; `from pkg import sub` counts as importing pkg.sub."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute(path, node.level, node.module)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
                     if (base, a.name) != ("wdtk", "__version__")]  # fmt: skip
        else:
            continue
        found.update(n for n in names if n in modules)
    return found


def floor(module: str) -> int:
    parts = module.split(".")
    if module == "wdtk":  # the Python API, above every floor
        return len(FLOORS)
    return FLOORS.index(parts[1]) if len(parts) > 1 and parts[1] in FLOORS else -1


def graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports(path, modules) - {name} for name, path in modules.items()}


def test_no_floor_imports_a_higher_one():
    upward = [f"{a} -> {b}" for a, targets in graph().items() for b in targets if floor(b) > floor(a)]
    assert not upward, "imports that run up the floors:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    edges, index, low, stack, on_stack, cycles = graph(), {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other in a loop: {cycles}"


def test_the_checks_see_what_they_check():
    """The walk finds the package and its lazy imports (else the tests above would pass on nothing)."""
    edges = graph()
    assert len(edges) > 60 and floor("wdtk.training.rl") > floor("wdtk.synth.llm.base")
    assert "wdtk.synth.llm.openai" in edges["wdtk.synth.llm.factory"]  # imported inside make_llm
    assert "wdtk.synth.llm.factory" not in edges["wdtk.synth.llm.openai"]


def test_click_stays_in_the_command_modules():
    """Logic raises WdtkError; only cli.py, commands.py and the shared options turn input into clicks."""
    allowed = {"wdtk.cli", "wdtk.synth.options", "wdtk.schemas.runlog"}  # runlog reads the running command
    offenders = [
        name
        for name, path in package_modules().items()
        if "click" in {n.split(".")[0] for n in _all_imported(path)}
        and not name.endswith(".commands")
        and name not in allowed
    ]
    assert not offenders, f"click used outside the command modules: {offenders}"


def _all_imported(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out
