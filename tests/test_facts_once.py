"""Each fact once (issue 34): a default, a name or a table is defined in one module, the lowest
layer that needs it, and imported everywhere else.

The library and the benchmarks are read with ``ast`` (nothing is imported by the scan) and every
check names the file and line of a fact that reappeared. Each scanner is first shown to fire on a
snippet that re-spells its fact, so a scanner that silently finds nothing fails too.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from data.batching import MAX_LENGTH
from data.glue import TASKS
from stage2_train.layout import RUN_FILES

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("pipeline", "stage1_encode", "stage2_train", "stage3_eval", "data", "bench")

HOMES = {  # a fact's name: the one module that assigns it
    "MAX_LENGTH": "data/batching.py",
    "TEACHER_MAX_TOKENS": "data/batching.py",
    "STUDENT_MAX_TOKENS": "data/batching.py",
    "MAX_LENGTH_LIMIT": "pipeline/options.py",
    "TOKENIZER_DIR": "data/shards.py",
    "TEACHER_POOLINGS": "stage1_encode/teacher.py",
    "STUDENT_POOLINGS": "stage2_train/config.py",
}
BUDGETS = (8192, 16384)  # the token budgets, and the --max-length bound that equals one
BUDGET_OWNERS = {  # (module, assigned name) that may spell one of BUDGETS, and why
    ("data/batching.py", "TEACHER_MAX_TOKENS"): "its home",
    ("data/batching.py", "STUDENT_MAX_TOKENS"): "its home",
    ("pipeline/options.py", "MAX_LENGTH_LIMIT"): "its home",
    ("data/corpus.py", "_SNIFF_BYTES"): "bytes read to guess a corpus file's format",
    ("stage2_train/config.py", "hidden_size"): "the student's widest hidden size",
}
GLUE_SUBSETS = {  # (module, assigned name) that may spell a comma list of GLUE tasks
    ("bench/ablation.py", "PROBE_TASKS"): "the frozen probe's tasks, which bench/scaling.py reuses",
}
OTHER_FOLDERS = {  # (bench module, literal): a file of some other folder than a student's
    ("bench/fetch_mpnet.py", "config.json"): "a Hub sentence-transformers folder",
    ("bench/fetch_mpnet.py", "model.safetensors"): "a Hub sentence-transformers folder",
    ("bench/teachers.py", "model.safetensors"): "the embedded teacher's folder",
    ("bench/figures.py", "README.md"): "the repository's README",
}

Scanner = Callable[[str, ast.Module], list[str]]


@functools.cache
def parsed() -> dict[str, ast.Module]:
    """Every scanned module by its path from the repository root."""
    return {
        path.relative_to(ROOT).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for package in SCANNED
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def named_values(tree: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    """(name, value) wherever code gives a name a value: assignments, keyword arguments,
    parameter defaults, string-keyed dict entries and ``mapping.get(key, default)``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from ((name, node.value) for name in _target_names(target))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            yield from ((name, node.value) for name in _target_names(node.target))
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.arg, node.value
        elif isinstance(node, ast.arguments):
            yield from _defaults(node)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield key.value, value
        elif _is_get_with_default(node):
            yield node.args[0].value, node.args[1]


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Attribute):
        return [target.attr]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for item in target.elts for name in _target_names(item)]
    return []


def _defaults(node: ast.arguments) -> Iterator[tuple[str, ast.expr]]:
    positional = [*node.posonlyargs, *node.args]
    defaulted = positional[len(positional) - len(node.defaults) :]
    yield from zip((a.arg for a in defaulted), node.defaults, strict=True)
    for arg, default in zip(node.kwonlyargs, node.kw_defaults, strict=True):
        if default is not None:
            yield arg.arg, default


def _is_get_with_default(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and len(node.args) == 2
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def _is_int(node: ast.AST, *values: int) -> bool:
    return (
        isinstance(node, ast.Constant)
        and type(node.value) is int
        and (not values or node.value in values)
    )


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes: prose may name a file or a task, code may not."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            found.add(id(first.value))
    return found


def max_length_literals(path: str, tree: ast.Module) -> list[str]:
    """A max length of 128 given as a number instead of ``data.batching.MAX_LENGTH``."""
    return [
        f"{path}:{value.lineno}: {name} = {value.value}"
        for name, value in named_values(tree)
        if name.lower() == "max_length"
        and _is_int(value, MAX_LENGTH)
        and path != HOMES["MAX_LENGTH"]
    ]


def owners(tree: ast.Module) -> dict[int, set[str]]:
    """For the id of every node inside a named value, the names it is (part of) the value of."""
    found: dict[int, set[str]] = {}
    for name, value in named_values(tree):
        for node in ast.walk(value):
            found.setdefault(id(node), set()).add(name)
    return found


def budget_literals(path: str, tree: ast.Module) -> list[str]:
    """8192 or 16384 spelled outside the constant that names it (or an unrelated, listed one)."""
    named = owners(tree)
    return [
        f"{path}:{node.lineno}: {node.value} (in {sorted(named.get(id(node), [])) or 'code'})"
        for node in ast.walk(tree)
        if _is_int(node, *BUDGETS)
        and not any((path, owner) in BUDGET_OWNERS for owner in named.get(id(node), ()))
    ]


def misplaced_definitions(path: str, tree: ast.Module) -> list[str]:
    """A fact of ``HOMES`` assigned outside its home, or the ambiguous bare ``POOLINGS``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for name in (n for t in targets for n in _target_names(t)):
                if name in HOMES and HOMES[name] != path:
                    found.append(f"{path}:{node.lineno}: {name} defined again")
        if isinstance(node, ast.Name) and node.id == "POOLINGS":
            found.append(f"{path}:{node.lineno}: bare POOLINGS (teacher's or student's?)")
        if isinstance(node, ast.alias) and node.name == "POOLINGS":
            found.append(f"{path}:{node.lineno}: imports a bare POOLINGS")
    return found


def student_file_literals(path: str, tree: ast.Module) -> list[str]:
    """A benchmark re-spelling a student folder's file name that ``stage2_train.layout`` owns."""
    if not path.startswith("bench/"):
        return []
    prose = docstrings(tree)
    return [
        f"{path}:{node.lineno}: {node.value!r}; import it from stage2_train.layout"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and node.value in RUN_FILES
        and id(node) not in prose
        and (path, node.value) not in OTHER_FOLDERS
    ]


def glue_task_tables(path: str, tree: ast.Module) -> list[str]:
    """Per-task numbers keyed by task name, or a list of task names, outside ``data/glue.py``."""
    if path == "data/glue.py":
        return []
    found = []
    prose, named = docstrings(tree), owners(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keyed = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in TASKS]
            if len(keyed) >= 3 and all(_is_int(v) for v in node.values):
                found.append(f"{path}:{node.lineno}: a per-task table; put it on GlueTask")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            names = [w for w in re.split(r"[^a-z0-9]+", node.value) if w in TASKS]
            listed = any((path, owner) in GLUE_SUBSETS for owner in named.get(id(node), ()))
            if len(names) >= 3 and not listed:
                found.append(f"{path}:{node.lineno}: task names spelled out; join data.glue.TASKS")
    return found


SCANNERS = (
    max_length_literals,
    budget_literals,
    misplaced_definitions,
    student_file_literals,
    glue_task_tables,
)

# Each scanner against code that re-spells its fact, as it would be written in the module given.
REAPPEARING = [
    (max_length_literals, "stage2_train/config.py", "class C:\n    max_length: int = 128\n"),
    (max_length_literals, "stage2_train/train.py", 'n = teacher.get("max_length", 128)\n'),
    (max_length_literals, "bench/x.py", "tokenizer(texts, max_length=128)\n"),
    (max_length_literals, "stage3_eval/x.py", "def f(*, max_length=128):\n    pass\n"),
    (max_length_literals, "stage1_encode/teacher.py", "MAX_LENGTH = 128\n"),
    (budget_literals, "stage1_encode/encode.py", "class C:\n    max_tokens: int = 8192\n"),
    (budget_literals, "data/stream.py", "def plan(*, max_tokens=16384):\n    pass\n"),
    (budget_literals, "pipeline/encode_cmd.py", "t = click.IntRange(8, 8192)\n"),
    (budget_literals, "stage2_train/config.py", 'INFERENCE = {"max_tokens": 16384}\n'),
    (misplaced_definitions, "stage2_train/layout.py", 'TOKENIZER_DIR = "tokenizer"\n'),
    (misplaced_definitions, "stage2_train/config.py", 'POOLINGS = ("max", "mean")\n'),
    (misplaced_definitions, "pipeline/train_cmd.py", "from stage2_train.config import POOLINGS\n"),
    (misplaced_definitions, "stage1_encode/teacher.py", "MAX_LENGTH: int = 128\n"),
    (student_file_literals, "bench/scaling.py", 'rows = (student / "metrics.jsonl").open()\n'),
    (student_file_literals, "bench/teachers.py", 'path = student / "config.json"\n'),
    (glue_task_tables, "stage3_eval/glue/run.py", 'EPOCHS = {"cola": 4, "sst2": 2, "rte": 4}\n'),
    (glue_task_tables, "pipeline/eval_cmd.py", 'HELP = "a comma list: cola,sst2,mrpc,wnli"\n'),
    (glue_task_tables, "bench/scaling.py", 'add("--tasks", default="sst2,cola,mrpc,rte")\n'),
]


@pytest.mark.parametrize(("scanner", "path", "code"), REAPPEARING)
def test_a_scanner_finds_its_fact_reappearing(scanner: Scanner, path: str, code: str) -> None:
    assert scanner(path, ast.parse(code)), f"{scanner.__name__} missed: {code}"


def test_a_scanner_passes_the_fact_imported() -> None:
    code = (
        '"""Reads metrics.jsonl and config.json, trains cola, sst2 and rte."""\n'
        "from data.batching import MAX_LENGTH, TEACHER_MAX_TOKENS\n"
        "class C:\n    max_length: int = MAX_LENGTH\n    max_tokens: int = TEACHER_MAX_TOKENS\n"
        "rows = student / METRICS\n"
    )
    for scanner in SCANNERS:
        assert scanner("bench/x.py", ast.parse(code)) == [], scanner.__name__


@pytest.mark.parametrize("scanner", SCANNERS, ids=lambda s: s.__name__)
def test_each_fact_is_spelled_once(scanner: Scanner) -> None:
    found = [line for path, tree in parsed().items() for line in scanner(path, tree)]
    assert found == [], "\n".join(found)


def test_each_named_fact_has_its_home() -> None:
    defined = {
        name: path
        for path, tree in parsed().items()
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        for name in _target_names(target)
        if name in HOMES
    }
    assert defined == HOMES


def test_glue_help_lists_the_tasks_and_their_epochs() -> None:
    from pipeline.eval_cmd import eval_group

    options = {p.name: p for p in eval_group.commands["glue"].params}
    assert ",".join(TASKS) in options["tasks"].help
    counts = [task.epochs for task in TASKS.values()]
    usual = max(counts, key=counts.count)
    epochs_help = options["epochs"].help
    assert f"else {usual}" in epochs_help
    for task in TASKS.values():
        if task.epochs != usual:
            assert f"{task.epochs} on" in epochs_help and task.folder in epochs_help
