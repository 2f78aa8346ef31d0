"""One run over several processes: data-parallel training under ``torchrun``.

``torchrun --nproc-per-node N -m superpos_cli train ...`` starts N copies of
the command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set. :func:`init_from_env` joins them into one process group
(gloo for CPU tensors, NCCL for CUDA ones, each rank on GPU ``LOCAL_RANK``);
the training loop then asks :func:`current` and, under a group of two or
more, trains DistributedDataParallel:

* **Data.** Each epoch every rank draws the same permutation (the loop's
  seeded generator) and cuts it into global batches of ``batch_size * world``
  examples, the batches one process with ``batch_size * world`` would train
  on; rank r takes examples r, r + world, ... of each (DistributedSampler's
  split), so the ranks' shards are disjoint and together cover the epoch. A
  task opts in by accepting ``rank`` and ``world`` keywords in ``batches`` and
  ``world`` in ``steps_per_epoch`` (gsm8k does). Where the last global batch
  has fewer examples than ranks, a rank left without one trains on a batch
  with no loss token: weight 0, but its backward pass keeps the all-reduce in
  step.
* **Loss.** Each rank's loss is its shard's mean over its loss tokens
  (``batch_tokens``); DDP averages gradients over ranks, so each rank scales
  its loss by ``world * tokens / global tokens`` and the step follows the
  mean over every loss token of the global batch, as in one process. Tasks
  without ``batch_tokens`` weigh the ranks equally (exact when shards are of
  equal size). The training loss recorded is that global mean, the same on
  every rank, so a NaN stops every rank at the same step.
* **Optimizer.** DDP starts every rank from rank 0's parameters and gives
  every rank the same averaged gradients, so the parameters stay identical on
  every rank; each rank's optimizer holds the whole model and takes the same
  step. The optimizer's scope (which parameters it perturbs) therefore means
  what it means in one process, and its seeded generator draws the same
  perturbation on every rank. (Under FSDP a rank would hold a shard of the
  parameters and a scope over a parameter's coordinates would need the global
  view; superpos does not support FSDP.)
* **Evaluation** runs on every rank over the whole held-out set (identical
  parameters: identical metrics), so no rank waits on another's result;
  only rank 0 prints and writes outputs (the caller's job: ``is_main``).

``grad_accum`` works as in one process; every backward pass all-reduces (no
``no_sync``), which is correct and costs bandwidth, not numbers.
"""

from __future__ import annotations

import atexit
import inspect
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from superpos_cli.errors import BadInput

__all__ = ["Distributed", "batches", "current", "init_from_env", "share_loss", "steps_per_epoch", "wrap"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the group: ``rank`` of ``world``, GPU ``local_rank``."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints and writes outputs."""
        return self.rank == 0


def init_from_env() -> Distributed | None:
    """Join the process group torchrun's environment describes; None when this
    process runs alone (no ``WORLD_SIZE``, or 1)."""
    if dist.is_available() and dist.is_initialized():
        return current()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        return None
    if not dist.is_available():
        raise BadInput("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # so device "cuda" is this rank's GPU
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, rank=int(os.environ["RANK"]), world_size=world)
    atexit.register(_destroy)
    return current()


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def current() -> Distributed | None:
    """The group this process trains in, or None (no group, or a group of one)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _check_shardable(task: Any) -> None:
    if "world" not in inspect.signature(task.batches).parameters:
        raise BadInput(f"task {task.name!r} cannot train on several processes: its batches() takes no rank/world")


def steps_per_epoch(task: Any, ddp: Distributed | None) -> int:
    """Batches per epoch on each rank (global batches; the task's own count alone)."""
    if ddp is None:
        return task.steps_per_epoch()
    _check_shardable(task)
    return task.steps_per_epoch(world=ddp.world)


def batches(task: Any, generator: torch.Generator, ddp: Distributed | None) -> Iterator[Any]:
    """This rank's shard of each global batch of one epoch (module docstring)."""
    if ddp is None:
        return task.batches(generator)
    _check_shardable(task)
    return task.batches(generator, rank=ddp.rank, world=ddp.world)


def wrap(model: nn.Module, ddp: Distributed | None) -> nn.Module:
    """``model`` for training: DDP over the group (gradients all-reduced in
    backward), or ``model`` itself alone."""
    if ddp is None:
        return model
    device = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def share_loss(loss: torch.Tensor, tokens: int, ddp: Distributed | None) -> tuple[torch.Tensor, float, int]:
    """(loss to backpropagate, global mean loss, global tokens) of one batch.

    ``loss`` is this rank's mean over its ``tokens`` loss tokens (1 for a task
    that counts none). Alone: ``(loss, float(loss), tokens)``. In a group:
    with N the tokens summed over ranks, the loss scaled by ``world * tokens / N``
    (DDP divides the gradient sum by ``world``, leaving the gradient of the
    mean over all N tokens), sum_r tokens_r * loss_r / N, and N.
    """
    if ddp is None:
        return loss, float(loss.detach()), tokens
    sums = torch.tensor([float(tokens), float(loss.detach()) * tokens], dtype=torch.float64, device=loss.device)
    dist.all_reduce(sums)  # (2,): tokens over ranks, token-weighted loss over ranks
    total, weighted = float(sums[0]), float(sums[1])
    # Every global batch holds at least one loss token (a task drops examples without one).
    return loss * (ddp.world * tokens / total), weighted / total, int(total)
