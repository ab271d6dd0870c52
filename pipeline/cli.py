"""Entry point of the ``pipeline`` console script: one group, one sub-command per stage."""

from __future__ import annotations

import sys

import click

from data.errors import PipelineError
from data.files import describe_os_error


class PipelineGroup(click.Group):
    """Turns a PipelineError into a one-line message and exit code 1, never a traceback.

    An ``OSError`` that no command translated (the environment refusing a read or a write) gets
    the same treatment: the commands write through temporaries, so nothing half-written remains.
    """

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
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
    stage 1  pipeline encode CORPUS --out SHARDS     teacher vectors -> HDF5 shards
             pipeline shards verify|info SHARDS      check / describe a shard directory
    stage 2  pipeline train --targets SHARDS         train the student on the cached vectors
    stage 3  pipeline eval glue|sts|probe            fine-tune and evaluate
    serve    pipeline export onnx --model STUDENT     ONNX graph for ONNX Runtime
    """


def _register() -> None:
    from pipeline import encode_cmd, eval_cmd, glue_cmd, train_cmd

    main.add_command(encode_cmd.encode)
    main.add_command(encode_cmd.shards_group)
    main.add_command(eval_cmd.eval_group)
    main.add_command(train_cmd.train)
    main.add_command(train_cmd.embed)
    eval_cmd.eval_group.add_command(glue_cmd.glue)

    from pipeline import data_cmd, export_cmd, report_cmd, search_cmd

    main.add_command(search_cmd.index_cmd)
    main.add_command(search_cmd.search_cmd)
    main.add_command(report_cmd.report_cmd)
    main.add_command(data_cmd.data_group)
    main.add_command(export_cmd.export_group)


_register()
