"""DDP set-up under ``torchrun``: gloo on CPU, NCCL on CUDA; a single process needs none of it.

Every rank reads its rendezvous from the environment, and a failure on any rank ends every rank
with one line: work that can be refused runs inside ``together``, which lets the ranks agree on
the outcome before any of them moves on, so none is left in a collective whose peer has exited
(gloo's 80-line ``Connection closed by peer`` traceback).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.distributed as dist

from data.errors import PipelineError

T = TypeVar("T")

# What torchrun sets besides WORLD_SIZE; env:// rendezvous needs all of them.
RENDEZVOUS = ("RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


class OtherRankFailed(SystemExit):
    """This rank stops because another one failed and printed the reason: exit status 1 and
    nothing more, so the user reads one ``Error:`` line however many processes there are."""

    def __init__(self) -> None:
        super().__init__(1)


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1).

    The variables are checked first: ``WORLD_SIZE=2`` without torchrun made torch raise a
    traceback about MASTER_ADDR.
    """
    world = _env_int("WORLD_SIZE", "1", 1)
    if world == 1:
        return DistContext(device=device)
    missing = [name for name in RENDEZVOUS if not os.environ.get(name)]
    if missing:
        raise PipelineError(
            f"WORLD_SIZE={world} is set but {', '.join(missing)} not: start the processes with "
            f"`torchrun --nproc_per_node={world} pipeline ...`, or unset WORLD_SIZE"
        )
    rank = _env_int("RANK", None, 0, world - 1)
    if device.type == "cuda":
        device = _local_gpu(_env_int("LOCAL_RANK", "0", 0))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend)
        except (RuntimeError, ValueError) as exc:  # DistNetworkError is a RuntimeError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PipelineError(
                f"rank {rank}: cannot join the {world} processes at "
                f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({first})"
            ) from None
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size(), device=device)


def _env_int(name: str, default: str | None, low: int, high: int | None = None) -> int:
    """An integer environment variable within [low, high], or one line saying what is wrong."""
    text = os.environ.get(name, default) or ""
    bound = f"{low}..{high}" if high is not None else f"{low} or more"
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise PipelineError(f"{name}={text!r} must be a whole number, {bound}; set by torchrun")
    return value


def _local_gpu(local_rank: int) -> torch.device:
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise PipelineError(f"LOCAL_RANK={local_rank} but this node has {count} GPU(s)")
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def together(ctx: DistContext, work: Callable[[], T], *, main_only: bool = False) -> T | None:
    """Run ``work`` (on rank 0 alone with ``main_only``), then agree on the outcome.

    A refusal anywhere (``PipelineError``, ``OSError``) ends every rank: the lowest failing
    rank raises its error, the others ``OtherRankFailed``. Also the barrier after rank-0-only
    work. Returns ``work``'s result, ``None`` on the ranks that did not run it.
    """
    if not ctx.active:
        return work()
    result, error = None, None
    if ctx.is_main or not main_only:
        try:
            result = work()
        except (PipelineError, OSError) as exc:
            error = exc
    first = _first_failing_rank(ctx, error is not None)
    if first is None:
        return result
    if first == ctx.rank and error is not None:
        raise error
    raise OtherRankFailed()


def _first_failing_rank(ctx: DistContext, failed: bool) -> int | None:
    value = torch.tensor([ctx.rank if failed else ctx.world], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    first = int(value.item())
    return None if first == ctx.world else first


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True on every rank if it is true on any, so all ranks stop at the same step."""
    if not ctx.active:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def shutdown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()
