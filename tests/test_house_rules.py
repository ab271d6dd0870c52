"""House rules the layering test does not cover, read from the source (docs/architecture.md).

Library layers (``data/`` and the stages) never print: they report through ``data.report``.
They write files only through ``data/files.py`` (``atomic_path`` and the helpers built on it),
so a killed run never leaves half a file under a final name. The teacher's keys are the fields
of ``data.manifest.TeacherDescription`` and spelled nowhere else as a list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("data", "stage1_encode", "stage2_train", "stage3_eval")
# Where printing is the job: the report sinks themselves, and progress lines outside a terminal.
MAY_PRINT = {"data/report.py", "data/progress.py"}
# The module that owns file writing.
WRITER = "data/files.py"
# Writes that are not a final output, or that sit in a temporary folder ``atomic_path`` renames
# into place from a caller: (file, function) -> why.
WRITE_ALLOWED = {
    ("data/document_corpus.py", "_split_into_buckets"): "scratch buckets in the staging folder",
    ("data/document_corpus.py", "_dedup_buckets"): "scratch buckets in the staging folder",
    ("data/document_corpus.py", "write"): "parts in the staging folder, renamed when whole",
    ("stage2_train/rundir.py", "_exclusive"): "the run's lock file, opened to hold a flock",
    ("stage2_train/rundir.py", "write"): "metrics.jsonl is append-only; a cut line is dropped",
    ("stage2_train/checkpoint.py", "save_checkpoint"): "torch.save into memory (BytesIO)",
    ("stage3_eval/glue/kd.py", "distillation_set"): "np.save into memory (BytesIO)",
    ("stage3_eval/search.py", "__init__"): "texts.txt inside the index's temporary folder",
    ("stage3_eval/search.py", "close"): "the index files inside its temporary folder",
    ("stage3_eval/report.py", "write_report"): "the page, an atomic_path on the ExitStack",
}
WRITE_METHODS = {"write_text", "write_bytes", "savefig", "write_index"}
WRITE_FUNCTIONS = {("np", "save"), ("np", "savez"), ("torch", "save"), ("json", "dump")}


def library_files() -> list[Path]:
    return sorted(p for layer in LIBRARY for p in (ROOT / layer).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _is_atomic_path(node: ast.AST) -> bool:
    """A call of ``atomic_path`` (bare or as ``files.atomic_path``) anywhere in ``node``."""
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            name = getattr(call.func, "attr", None) or getattr(call.func, "id", None)
            if name == "atomic_path":
                return True
    return False


def _writes(call: ast.Call) -> bool:
    """Whether ``call`` writes a file directly (rather than through data/files.py)."""
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        if func.attr in WRITE_METHODS and owner != "files":
            return True
        if (owner, func.attr) in WRITE_FUNCTIONS:
            return True
    is_open = (isinstance(func, ast.Name) and func.id == "open") or (
        isinstance(func, ast.Attribute) and func.attr == "open"
    )
    if not is_open:
        return False
    modes = [a for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    modes += [k.value for k in call.keywords if k.arg == "mode"]
    return any(
        isinstance(m, ast.Constant) and isinstance(m.value, str) and set(m.value) & set("wax+")
        for m in modes
    )


def direct_writes(source: str) -> list[tuple[int, str]]:
    """(line, enclosing function) of each direct file write not inside an ``atomic_path``."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, function: str, atomic: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.With | ast.AsyncWith) and any(
            _is_atomic_path(item.context_expr) for item in node.items
        ):
            atomic = True
        if (
            isinstance(node, ast.Call)
            and _writes(node)
            and not atomic
            and not any(_is_atomic_path(arg) for arg in node.args)
        ):
            found.append((node.lineno, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function, atomic)

    visit(ast.parse(source), "<module>", False)
    return found


def prints(source: str) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]


def test_library_layers_do_not_print() -> None:
    found = [
        f"{relative(path)}:{line}"
        for path in library_files()
        if relative(path) not in MAY_PRINT
        for line in prints(path.read_text(encoding="utf-8"))
    ]
    assert not found, f"report through data.report instead of print: {found}"


def test_library_layers_write_files_through_data_files() -> None:
    found = [
        f"{relative(path)}:{line} in {function}()"
        for path in library_files()
        if relative(path) != WRITER
        for line, function in direct_writes(path.read_text(encoding="utf-8"))
        if (relative(path), function) not in WRITE_ALLOWED
    ]
    assert not found, f"write through data.files.atomic_path (or allow it, with why): {found}"


def test_every_allowed_write_still_exists() -> None:
    """An allow-list entry whose write is gone would silently allow the next one."""
    used = {
        (relative(path), function)
        for path in library_files()
        for _, function in direct_writes(path.read_text(encoding="utf-8"))
    }
    assert set(WRITE_ALLOWED) <= used, sorted(set(WRITE_ALLOWED) - used)


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("def f(p):\n    p.write_text('x')\n", True),
        ("def f(p):\n    open(p, 'w').close()\n", True),
        ("def f(p):\n    np.save(p, a)\n", True),
        ("def f(p):\n    with files.atomic_path(p) as tmp:\n        tmp.write_text('x')\n", False),
        ("def f(p):\n    files.write_text(p, 'x')\n", False),
        ("def f(p):\n    open(p).read()\n", False),
    ],
)
def test_the_write_rule_catches_a_violation(source: str, caught: bool) -> None:
    assert bool(direct_writes(source)) is caught


def test_the_print_rule_catches_a_violation() -> None:
    assert prints("def f():\n    print('x')\n") == [2]


def teacher_key_lists(source: str) -> list[int]:
    """Lines of tuples, lists, sets or dicts that spell a teacher's keys: the weights' hash with
    another teacher key, or every rebuild setting (the student has keys of the same names, so
    ``max_length`` or ``normalize`` alone says nothing)."""
    from data.manifest import TEACHER_KEYS, TEACHER_REBUILD_KEYS

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        names = {i.value for i in items if isinstance(i, ast.Constant)} & set(TEACHER_KEYS)
        if ("weights_sha256" in names and len(names) > 1) or names >= set(TEACHER_REBUILD_KEYS):
            found.append(node.lineno)
    return found


def test_teacher_keys_are_listed_once() -> None:
    """No library module but data/manifest.py lists the teacher's keys: they are read from
    ``TeacherDescription``'s fields (``TEACHER_KEYS``, ``TEACHER_VECTOR_KEYS``, ...)."""
    found = [
        f"{relative(path)}:{line}"
        for path in library_files()
        if relative(path) != "data/manifest.py"
        for line in teacher_key_lists(path.read_text(encoding="utf-8"))
    ]
    assert not found, f"use data.manifest.TeacherDescription / TEACHER_*_KEYS: {found}"


def test_the_teacher_key_rule_catches_a_violation() -> None:
    assert teacher_key_lists('KEYS = ("weights_sha256", "pooling")\n') == [1]
    assert teacher_key_lists('ARGS = ("pooling", "normalize", "max_length")\n') == [1]
    assert teacher_key_lists('STUDENT = ("max_length", "normalize")\n') == []


def test_teacher_description_round_trips_a_manifest_record() -> None:
    """The manifest's ``teacher`` record survives from_dict/to_dict byte for byte, with and
    without the fields older manifests lack."""
    from data.manifest import TeacherDescription

    record = {
        "name_or_path": "t",
        "weights_sha256": "ab" * 32,
        "hidden_size": 8,
        "pooling": "mean",
        "max_length": 128,
        "normalize": True,
        "vocab_size": 100,
        "precision": "fp32",
    }
    assert TeacherDescription.from_dict(record).to_dict() == record
    old = {k: v for k, v in record.items() if k not in ("vocab_size", "precision")}
    assert TeacherDescription.from_dict(old).to_dict() == old
