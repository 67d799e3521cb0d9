"""dvc.yaml lists as deps exactly the code each stage runs (so only what changed reruns)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] not in ("worldmodel", "stages"):
        return None
    base = REPO.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (imports for annotations; never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    skip = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def code_closure(entry: Path) -> set[str]:
    """Project files reachable through imports (also those inside functions) from ``entry``."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for name in _imports(f):
            for k in range(1, len(name.split(".")) + 1):  # a package's __init__ runs too
                target = _module_file(".".join(name.split(".")[:k]))
                if target is not None and target not in seen:
                    todo.append(target)
    return {str(p.relative_to(REPO)) for p in seen if not _docstring_only(p)}


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def _covered(file: str, deps: list[str]) -> bool:
    return any(file == d or file.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage", list(DVC["stages"]))
def test_stage_deps_are_exactly_its_code(stage: str) -> None:
    spec = DVC["stages"][stage]
    entry = REPO / "stages" / f"{spec['cmd'].split('stages.')[1].split()[0]}.py"
    used = code_closure(entry)
    code_deps = [d for d in spec["deps"] if d.startswith(("stages/", "worldmodel/"))]
    missing = sorted(f for f in used if not _covered(f, code_deps))
    unused = sorted(d for d in code_deps if not any(_covered(f, [d]) for f in used))
    assert not missing, f"{stage} runs code not in its deps: {missing}"
    assert not unused, f"{stage} lists deps it does not run: {unused}"


@pytest.mark.parametrize("stage", list(DVC["stages"]))
def test_stage_params_are_sections(stage: str) -> None:
    from worldmodel.config import Params

    for section in DVC["stages"][stage]["params"]:
        assert section in Params.model_fields, section
