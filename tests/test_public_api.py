"""The shape of the package: its public names, its import graph, and what importing it costs."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import abpool

PACKAGE = Path(abpool.__file__).parent
# Packages that must know models only through the registry of abpool.result.
MODEL_AGNOSTIC = ("abpool.store", "abpool.report", "abpool.plots", "abpool.cli", "abpool.outputs", "abpool.result")
MODELS = ("abpool.variants", "abpool.segments")


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → modules of the package it imports, counting imports inside functions and TYPE_CHECKING blocks."""
    top = root.name
    modules = {
        ".".join((top, *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): path
        for path in root.rglob("*.py")
    }
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rsplit(".", 1)[0] if "." in target else ""
                # A module's own parent packages are imported by Python anyway; they are not edges.
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " → ".join(cycle)


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_counts_imports_inside_functions(tmp_path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("def f():\n    from pkg import two\n")
    (package / "two.py").write_text("from pkg.one import f\n")
    graph = import_graph(package)
    assert graph["pkg.one"] == {"pkg.two"} and find_cycle(graph)


def test_store_report_plots_and_cli_know_models_only_through_the_registry() -> None:
    graph = import_graph()
    for module, imports in graph.items():
        if module.startswith(MODEL_AGNOSTIC):
            named = sorted(t for t in imports if t.startswith(MODELS))
            assert not named, f"{module} imports {named}; find models through abpool.result's registry"


def test_all_lists_every_public_name_and_only_names_that_exist() -> None:
    exported = set(abpool.__all__)
    assert all(hasattr(abpool, name) for name in exported)
    public = {
        name
        for name, value in vars(abpool).items()
        if not name.startswith("_") and not (inspect.ismodule(value) and name not in exported)
    }
    assert public == exported - {"__version__"}, sorted(public ^ (exported - {"__version__"}))


def test_errors_form_one_hierarchy() -> None:
    assert issubclass(abpool.InvalidDataError, abpool.AbpoolError)
    assert issubclass(abpool.InvalidDataError, ValueError)
    assert issubclass(abpool.InvalidArgumentError, abpool.AbpoolError)
    assert issubclass(abpool.ConvergenceError, abpool.AbpoolError)
    assert issubclass(abpool.ConvergenceWarning, UserWarning)


def test_import_is_light_and_exposes_datasets_and_plots() -> None:
    code = (
        "import sys, abpool\n"
        "frame = abpool.datasets.make_dataframe(10, [3, 5, 5, 6])\n"
        "assert callable(abpool.plots.plot_posterior) and len(frame) == 40\n"
        "print(sorted(m for m in ('pymc', 'pytensor', 'nutpie', 'arviz', 'matplotlib', 'jinja2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
