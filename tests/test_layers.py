"""The package's sub-packages follow the flow; imports only run downwards.

    errors, config, urls, pb  <  protocol  <  lua  <  connect  <  client  <  functions, worker
    <  dev  <  cli

(``functions`` and ``worker`` are side by side: neither imports the other.)  Also the size
limits the project keeps: no module over 350 lines, no function over 40.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick  # no server: `make quick`

PACKAGE = Path(__file__).resolve().parent.parent / "oprc_redis_events"
LAYERS: dict[str, int] = {
    "errors": 0,
    "config": 0,
    "urls": 0,
    "pb": 0,
    "protocol": 1,
    "lua": 2,
    "connect": 3,
    "client": 4,
    "functions": 5,
    "worker": 5,
    "dev": 6,
    "cli": 7,
}
GENERATED = ("pb", "client/command_table.py")
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 40


def _modules() -> list[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if not any(str(p.relative_to(PACKAGE)).startswith(g) for g in GENERATED)
    )


def _part(path: Path) -> str:
    """The top-level sub-package (or module) of the package that ``path`` belongs to."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_parts(path: Path) -> set[str]:
    """The package's top-level parts that module ``path`` imports."""
    here = path.relative_to(PACKAGE).parent.parts
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[: len(here) - (node.level - 1)])
            target = base + (node.module.split(".") if node.module else [])
            names = target or [a.name for a in node.names]
            parts.update([names[0]] if target else names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "oprc_redis_events."
        ):
            parts.add(node.module.split(".")[1])  # type: ignore[union-attr]
    return parts


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downwards(path: Path) -> None:
    part = _part(path)
    if part == "__init__" or part == "__main__":
        return  # the public surface re-exports from everywhere
    mine = LAYERS[part]
    for other in _imported_parts(path) - {part}:
        assert other in LAYERS, f"{path.name} imports {other}, which has no layer"
        downwards = LAYERS[other] < mine or LAYERS[other] == mine == 0  # the base: one layer
        assert downwards, f"{part} (layer {mine}) imports {other} ({LAYERS[other]})"


def test_every_sub_package_says_what_lives_there() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 20, f"{init.parent.name}/__init__.py needs a docstring"
        if init.parent.name != "pb":
            assert "import" in doc, f"{init.parent.name}: say what it may import"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{node.name} is {length} lines"
