"""Entry point of the ``pipeline`` console script: one group, one sub-command per stage."""

from __future__ import annotations

import sys

import click
from click.exceptions import NoArgsIsHelpError

from data.errors import PipelineError
from data.files import describe_os_error


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


@click.group(cls=PipelineGroup, context_settings={"show_default": True, "max_content_width": 100})
@click.version_option(package_name="sra-distill")
def main() -> None:
    """SRA-Distill: distil a BERT-family encoder into a small BiLSTM sentence encoder.

    \b
    corpus   pipeline corpus DOCS... --out CORPUS    documents -> shuffled sentence parts
    stage 1  pipeline encode CORPUS --out SHARDS     teacher vectors -> HDF5 shards
             pipeline shards verify|info SHARDS      check / describe a shard directory
    stage 2  pipeline train --targets SHARDS         train the student on the cached vectors
    stage 3  pipeline eval glue|sts|probe            fine-tune and evaluate
    serve    pipeline export onnx --model STUDENT     ONNX graph for ONNX Runtime
             pipeline push --model STUDENT ORG/NAME  the model's files to the Hugging Face Hub
    """


def _register() -> None:
    """One module per top-level command or group, in the order of the stages."""
    from pipeline import (
        corpus_cmd,
        data_cmd,
        embed_cmd,
        encode_cmd,
        eval_cmd,
        export_cmd,
        push_cmd,
        report_cmd,
        search_cmd,
        shards_cmd,
        train_cmd,
    )

    main.add_command(encode_cmd.encode)
    main.add_command(shards_cmd.shards_group)
    main.add_command(train_cmd.train)
    main.add_command(embed_cmd.embed)
    main.add_command(eval_cmd.eval_group)
    main.add_command(search_cmd.index_cmd)
    main.add_command(search_cmd.search_cmd)
    main.add_command(report_cmd.report_cmd)
    main.add_command(data_cmd.data_group)
    main.add_command(corpus_cmd.corpus)
    main.add_command(export_cmd.export_group)
    main.add_command(push_cmd.push_cmd)


_register()
