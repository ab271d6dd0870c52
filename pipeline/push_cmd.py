"""``pipeline push``: publish a student folder on the Hugging Face Hub, the model's files only."""

from __future__ import annotations

from pathlib import Path

import click

from stage2_train.hub import DEFAULT_COMMIT_MESSAGE


@click.command("push")
@click.argument("repo_id")
@click.option(
    "--model",
    "-m",
    required=True,
    type=click.Path(path_type=Path),
    help="Student folder written by `pipeline train` (or Student.save_pretrained).",
)
@click.option(
    "--private", is_flag=True, help="Create the repository private (when it does not exist yet)."
)
@click.option(
    "--revision", default=None, help="Branch to commit to, created if missing [default: main]."
)
@click.option("--commit-message", default=DEFAULT_COMMIT_MESSAGE, help="The commit's message.")
@click.option(
    "--token",
    default=None,
    help="Hugging Face token [default: HF_TOKEN, else the token `hf auth login` saved].",
)
def push_cmd(
    repo_id: str,
    model: Path,
    private: bool,
    revision: str | None,
    commit_message: str,
    token: str | None,
) -> None:
    """Upload the student in --model to the Hub repository REPO_ID (ORG/NAME), creating it.

    Only the model's files go: config.json, model.safetensors, tokenizer/, the model card and
    the sentence-transformers files; checkpoints/, metrics.jsonl, train_config.json and anything
    else stay here. The card's examples load REPO_ID.
    """
    from stage2_train.hub import push_folder

    result = push_folder(
        model,
        repo_id,
        private=private,
        revision=revision,
        commit_message=commit_message,
        token=token,
    )
    left = sorted({name.split("/")[0] + ("/" if "/" in name else "") for name in result.left_out})
    kept = f"; kept here: {len(result.left_out)} ({', '.join(left)})" if left else ""
    click.echo(
        f"pushed {len(result.files)} files ({result.size / 1e6:.1f} MB) from {model} -> "
        f"{result.commit_url}{kept}"
    )
