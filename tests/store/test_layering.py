"""`Store` is the only door to the database: no module outside `fledgling.store` reaches for a
store's engine, the tables, or SQLAlchemy itself; and the store imports nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

import fledgling

PACKAGE = Path(fledgling.__file__).parent
STORE = PACKAGE / "store"
ABOVE_STORE = ("fledgling.curate", "fledgling.models", "fledgling.evals", "fledgling.train",
               "fledgling.ui", "fledgling.gateway", "fledgling.swap", "fledgling.swap.rollout",
               "fledgling.report", "fledgling.contracts", "fledgling.capture", "fledgling.cli",
               "fledgling.demo")


def _modules(inside_store: bool) -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if (STORE in p.parents) == inside_store)


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
    return sorted(out)


def _engine_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """`<anything>.engine` and `getattr(<anything>, "engine")`, in line order."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "engine":
            out.append((node.lineno, ast.unparse(node)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and node.args[1].value == "engine"):
            out.append((node.lineno, ast.unparse(node)))
    return sorted(out)


def _where(path: Path, line: int, what: str) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"


def test_no_module_outside_the_store_touches_the_engine_or_the_tables() -> None:
    found = []
    for path in _modules(inside_store=False):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found += [_where(path, n, f"uses {what}; add a repository method in fledgling/store/")
                  for n, what in _engine_uses(tree)]
        found += [_where(path, n, f"imports {name}; go through the Store and its repositories")
                  for n, name in _imported(tree)
                  if name.split(".")[0] == "sqlalchemy" or name == "fledgling.store.schema"]
    assert found == []


def test_the_store_imports_nothing_above_it() -> None:
    found = []
    for path in _modules(inside_store=True):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found += [_where(path, n, f"imports {name}") for n, name in _imported(tree)
                  if any(name == up or name.startswith(up + ".") for up in ABOVE_STORE)]
    assert found == []


def test_the_checks_see_what_they_look_for() -> None:
    tree = ast.parse("import sqlalchemy.orm\nfrom fledgling.store.schema import calls\n"
                     "with store.engine.connect(): pass\nx = self._store.engine\n"
                     "getattr(s, 'engine')\nfrom fledgling.evals.runs import EvalRun\n")
    assert [n for n, _ in _engine_uses(tree)] == [3, 4, 5]
    assert _imported(tree) == [(1, "sqlalchemy.orm"), (2, "fledgling.store.schema"),
                               (6, "fledgling.evals.runs")]
