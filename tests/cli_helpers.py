"""Running the CLI in-process and asserting the README's promise for refused input: exit 1, one
``Error:`` line, no traceback, and the named paths byte-for-byte as they were."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main


def snapshot(path: Path) -> dict[str, bytes] | None:
    """Every file under ``path`` (or ``path`` itself) by relative name, with its bytes."""
    if not path.exists():
        return None
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def refused(
    args: list, *fragments: str, untouched: Path | list[Path] | None = None, env: dict | None = None
) -> str:
    """Run a command that must fail cleanly; return its one error line.

    ``untouched`` paths (outputs and inputs) must be byte-identical afterwards, or still absent.
    """
    paths = [] if untouched is None else untouched if isinstance(untouched, list) else [untouched]
    before = [snapshot(p) for p in paths]
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert isinstance(result.exception, SystemExit), f"escaped {result.exception!r}"
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "Error" in line]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    for path, was in zip(paths, before, strict=True):
        assert snapshot(path) == was, f"{path} was written to"
    return errors[0]
