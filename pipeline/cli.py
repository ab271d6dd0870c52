"""Entry point of the ``pipeline`` console script: one group, one sub-command per stage."""

from __future__ import annotations

import importlib
import sys

import click
from click.exceptions import NoArgsIsHelpError

from data import report
from data.errors import PipelineError
from data.files import describe_os_error


def _echo_err(message: str) -> None:
    """Where the stages' warnings go: click's stderr (which CliRunner captures)."""
    click.echo(message, err=True)


def _one_line(exc: click.UsageError) -> click.ClickException:
    """A usage error (bad option value, unknown option or command, missing argument) as the
    same one ``Error:`` line and exit 1 as every other refusal, pointing at the right --help."""
    where = exc.ctx.command_path if exc.ctx else "pipeline"
    return click.ClickException(f"{exc.format_message()} See '{where} --help'.")


class PipelineGroup(click.Group):
    """Turns a PipelineError into a one-line message and exit code 1, never a traceback.

    An ``OSError`` that no command translated (the environment refusing a read or a write) gets
    the same treatment: the commands write through temporaries, so nothing half-written remains.
    Usage errors too: the group's own options are parsed in ``parse_args``, every sub-command's
    (and sub-group's) inside ``invoke``. A bare group still prints its help, with exit 0.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError as exc:
            click.echo(exc.format_message())
            ctx.exit(0)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            with report.reporting_to(click.echo, _echo_err):
                return super().invoke(ctx)
        except NoArgsIsHelpError as exc:
            click.echo(exc.format_message())
            ctx.exit(0)
        except click.UsageError as exc:
            raise _one_line(exc) from None
        except PipelineError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(describe_os_error(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted; re-run the same command to resume", err=True)
            sys.exit(130)


# name: (module, attribute, the line `pipeline --help` lists), in the order of the stages. A
# command's module is imported only when that command runs (or its own --help is asked for), so
# `pipeline --help` and a quick command do not pay for torch, transformers and faiss up front.
COMMANDS = {
    "corpus": ("pipeline.corpus_cmd", "corpus", "Documents -> shuffled, deduplicated sentences."),
    "encode": ("pipeline.encode_cmd", "encode", "Stage 1: the teacher's vectors as shards."),
    "shards": ("pipeline.shards_cmd", "shards_group", "Check or describe a shard directory."),
    "train": ("pipeline.train_cmd", "train", "Stage 2: train the student on cached vectors."),
    "embed": ("pipeline.embed_cmd", "embed", "The student's vectors for a text file (.npy)."),
    "eval": ("pipeline.eval_cmd", "eval_group", "Stage 3: GLUE, STS and kNN probes."),
    "index": ("pipeline.search_cmd", "index_cmd", "Build a vector index of a text file."),
    "search": ("pipeline.search_cmd", "search_cmd", "Nearest texts of queries in an index."),
    "report": ("pipeline.report_cmd", "report_cmd", "An HTML report of every run found."),
    "data": ("pipeline.data_cmd", "data_group", "Corpora built from installed data."),
    "export": ("pipeline.export_cmd", "export_group", "Export a student for serving (ONNX)."),
    "push": ("pipeline.push_cmd", "push_cmd", "Upload a student's files to the Hub."),
}


class LazyPipelineGroup(PipelineGroup):
    """Lists ``COMMANDS`` without importing them; imports one when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, _, summary) in COMMANDS.items()])


@click.group(
    cls=LazyPipelineGroup,
    context_settings={"show_default": True, "max_content_width": 100},
)
@click.version_option(package_name="sra-distill")
def main() -> None:
    """SRA-Distill: distil a BERT-family encoder into a small BiLSTM sentence encoder.

    \b
    pipeline encode CORPUS --out SHARDS      stage 1: the teacher, once
    pipeline train --targets SHARDS          stage 2: the student, no teacher
    pipeline eval glue|sts|probe             stage 3: fine-tune and evaluate
    """
