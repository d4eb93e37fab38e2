"""The rooms and which way their doors open (README, Layout): every import, lazy ones and type-only ones
included, points down a floor — cli → server/evals → agents → retrieval → store → core — or stays in
its room; server and evals never import each other; nothing imports cli; only tests and benchmarks
import harness (the stand-ins); and no two files import each other, directly or around a circle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

FLOOR = {"core": 0, "store": 1, "retrieval": 2, "agents": 3, "evals": 4, "server": 4, "cli": 5, "harness": 5}


def _modules() -> dict[str, Path]:
    found = {}
    for room in FLOOR:
        for path in (REPO / room).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """What a file imports, of ours: `from pkg import submodule` counts as the submodule only."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
            found |= subs | ({node.module} if len(subs) < len(node.names) else set())
    return found & modules.keys()


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_every_import_points_down_a_floor() -> None:
    wrong = []
    for module, imported in _graph().items():
        room = module.split(".")[0]
        for other in imported:
            there = other.split(".")[0]
            if there == room:
                continue
            if FLOOR[there] >= FLOOR[room] or there == "harness":
                wrong.append(f"{module} -> {other}")
    assert not wrong, wrong


def test_no_two_files_import_each_other_around_a_circle() -> None:
    graph, index, low, stack, on_stack, circles = _graph(), {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                on_stack.discard(top)
                component.append(top)
            on_stack.discard(node)
            if component:
                circles.append(sorted([node, *component]))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, circles


def test_production_code_does_not_import_the_test_harness() -> None:
    production = ("core", "store", "retrieval", "agents", "evals", "server", "cli")
    offenders = [m for m, imported in _graph().items() if m.split(".")[0] in production
                 and any(i.split(".")[0] == "harness" for i in imported)]
    assert not offenders, offenders
