"""The import graph follows the design: ``pipeline -> stage1/2/3 -> data``.

Every module's imports are read with ``ast`` (nothing is imported, so no side effects) and each
edge between the project's packages is checked against ``ALLOWED``; stage 3 may reach the earlier
stages only through their public faces. A failure names the file, the line and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "stage1_encode", "stage2_train", "stage3_eval", "data")

ALLOWED = {  # the project packages each package may import, besides itself
    "pipeline": {"stage1_encode", "stage2_train", "stage3_eval", "data"},
    "stage1_encode": {"data"},
    "stage2_train": {"data"},  # never stage 1: training must not load the teacher
    "stage3_eval": {"stage1_encode", "stage2_train", "data"},
    "data": set(),
}
PUBLIC_FACES = {  # the modules of an earlier stage that stage 3 may import
    "stage1_encode": {"stage1_encode.teacher", "stage1_encode.onednn"},
    "stage2_train": {
        "stage2_train",  # Student, StudentConfig
        "stage2_train.model",
        "stage2_train.config",  # the training defaults (the probe's held-out share)
        "stage2_train.layout",  # the student directory's file names
        "stage2_train.hub",  # a student on the Hub: telling it from an encoder, reading it back
        "stage2_train.optim",  # the training recipe GLUE fine-tuning shares
    },
}


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, the nested ones included; a relative import
    is resolved against the file's package, so ``from .. import x`` cannot hide an edge."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = list(path.relative_to(root).parent.parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
    return found


def violations(path: Path, root: Path = ROOT) -> list[str]:
    """Each import in ``path`` that breaks the layering, as ``file:line imports X: why``."""
    source = path.relative_to(root).parts[0]
    problems = []
    for line, module in imports(path, root):
        target = module.split(".")[0]
        if target not in PACKAGES or target == source:
            continue
        where = f"{path.relative_to(root)}:{line} imports {module}"
        if target not in ALLOWED[source]:
            problems.append(f"{where}: {source} may not import {target}")
        elif source != "pipeline" and target in PUBLIC_FACES and module not in PUBLIC_FACES[target]:
            problems.append(f"{where}: not a public face of {target}")
    return problems


def project_files(root: Path = ROOT) -> list[Path]:
    """Every module of the layered packages (bench/ and tests/ sit above them and may use all)."""
    return sorted(p for package in PACKAGES for p in (root / package).rglob("*.py"))


@pytest.mark.parametrize("path", project_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_one_way(path: Path) -> None:
    problems = violations(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("package", "planted", "why"),
    [
        ("data", "from stage2_train.model import Student", "data may not import stage2_train"),
        ("stage1_encode", "import pipeline.runtime", "stage1_encode may not import pipeline"),
        ("stage2_train", "from stage1_encode import teacher", "may not import stage1_encode"),
        ("stage3_eval", "from stage2_train.train import train", "not a public face"),
        ("stage3_eval", "import pipeline.cli", "stage3_eval may not import pipeline"),
        ("data", "from ..stage3_eval import sts", "data may not import stage3_eval"),
    ],
)
def test_a_planted_back_edge_is_caught(tmp_path: Path, package: str, planted: str, why: str):
    module = tmp_path / package / "planted.py"
    module.parent.mkdir()
    module.write_text(f"def f():\n    {planted}\n", encoding="utf-8")
    (problem,) = violations(module, root=tmp_path)
    assert problem.startswith(f"{package}/planted.py:2 imports ") and why in problem
