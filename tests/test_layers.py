"""The package's layers, in order: a module imports only from its own layer or those below it,
and no two modules import each other, directly or around a loop (imports inside functions
count: they run too). The order is the one the package docstring explains."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import ml_tracelens

PACKAGE = Path(ml_tracelens.__file__).resolve().parent

#: Lowest first. A module's layer is the first entry its dotted name starts with.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("exceptions", "limits", "durations", "otlp_values", "schema")),
    ("core", ("core",)),
    ("readers", ("readers",)),
    ("ingest", ("ingest",)),
    ("gates", ("gates",)),
    ("reports", ("reports",)),
    ("render", ("render",)),
    # The Spark engine sits beside the library it mirrors; only the CLI imports it.
    ("api", ("api", "spark")),
    ("cli", ("cli", "__main__")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for index, (_, prefixes) in enumerate(LAYERS):
        if top in prefixes:
            return index
    raise AssertionError(f"ml_tracelens.{module} is in no layer: add it to LAYERS")


def imports_of(path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported module of the package, line) for every import in the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module != "ml_tracelens" and not node.module.startswith("ml_tracelens."):
                continue
            base = node.module.removeprefix("ml_tracelens").removeprefix(".")
            for alias in node.names:
                submodule = f"{base}.{alias.name}".lstrip(".")
                if submodule in known:
                    yield submodule, node.lineno
                elif base and alias.name != "__version__":
                    yield base, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ml_tracelens."):
                    yield alias.name.removeprefix("ml_tracelens."), node.lineno


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for module, path in known.items():
        edges[module] = {target for target, _ in imports_of(path, known) if target != module}
    return edges


def test_every_module_is_in_a_layer() -> None:
    for module in modules():
        if module:
            layer_of(module)


def test_no_module_imports_from_a_higher_layer() -> None:
    known = modules()
    upward = []
    for module, path in known.items():
        if not module:
            continue
        for target, line in imports_of(path, known):
            if target and layer_of(target) > layer_of(module):
                upward.append(f"{module}:{line} imports {target}")
    assert upward == []


def test_there_are_no_import_cycles() -> None:
    edges = graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert cycles == []


def test_only_the_cli_imports_the_spark_engine() -> None:
    edges = graph()
    importers = sorted(
        module
        for module, targets in edges.items()
        if any(t == "spark" or t.startswith("spark.") for t in targets)
        and not (module == "spark" or module.startswith(("spark.", "cli")))
    )
    assert importers == []


def test_pyspark_is_imported_only_inside_the_spark_engine() -> None:
    """pyspark is optional (the ``spark`` extra): no module outside ``ml_tracelens.spark``
    imports it, and there only inside functions or for type checking."""
    found = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if not module.startswith("spark") and any(
                n == "pyspark" or n.startswith("pyspark.") for n in names
            ):
                found.append(f"{module}:{node.lineno}")
        for node in tree.body:  # module level: only under `if TYPE_CHECKING:`
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                if any(n.startswith("pyspark") for n in names):
                    found.append(f"{module}:{node.lineno} at module level")
    assert found == []
