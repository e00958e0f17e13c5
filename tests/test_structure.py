"""The house stays easy to extend: no import circles between sws's modules, and small functions."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "sws"

# Argument-parser builders list flags one after another; they may run long.
LONG_FUNCTIONS_ALLOWED = {"build_parser", "add_study_arguments"}


def _module_name(path: Path) -> str:
    return "sws" if path.stem == "__init__" else f"sws.{path.stem}"


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the sws modules it imports, at module level or inside functions alike."""
    modules = {_module_name(p) for p in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        name = _module_name(path)
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module in modules:
                edges.add(node.module)
                # ``from sws import layout`` imports the module sws.layout
                edges |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or ``None``."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_circle_between_sws_modules() -> None:
    graph = import_graph()
    assert len(graph) > 20 and "sws.learngene" in graph["sws.extraction"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path) -> None:
    (tmp_path / "__init__.py").write_text("from sws.a import x\n")
    (tmp_path / "a.py").write_text("from sws.b import y\nx = 1\n")
    (tmp_path / "b.py").write_text("def f():\n    from sws.a import x\n    return x\ny = 2\n")
    assert find_cycle(import_graph(tmp_path)) == ["sws.a", "sws.b", "sws.a"]


def test_the_learngene_file_format_sits_below_what_produces_learngenes() -> None:
    graph = import_graph()
    below = graph["sws.learngene"]
    assert not below & {"sws.expansion", "sws.official", "sws.tleg", "sws.checkpoint", "sws.extraction", "sws"}


def test_no_function_over_60_lines_except_argument_parser_builders() -> None:
    long = []
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in LONG_FUNCTIONS_ALLOWED:
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long.append(f"{path.name}:{node.name} ({length} lines)")
    assert not long, long


def test_no_module_over_600_lines() -> None:
    long = [f"{p.name} ({n} lines)" for p in PACKAGE.glob("*.py") if (n := len(p.read_text().splitlines())) > 600]
    assert not long, long


def test_no_private_argparse_attribute_is_read() -> None:
    """Settings travel as values (``sws.train_config``): nothing reads argparse's private table of actions."""
    readers = []
    for path in [*PACKAGE.glob("*.py"), *PACKAGE.parents[1].joinpath("tests").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "_actions":
                readers.append(f"{path.name}:{node.lineno}")
    assert not readers, readers
