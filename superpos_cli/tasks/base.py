"""The Task protocol: what the training loop needs from a task, and nothing more.

A task owns its data, its model and its metrics; it never sees the optimizer
(AlgoPerf's rule). Only :mod:`superpos_cli.engine.loop` joins a task with an
optimizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Protocol

if TYPE_CHECKING:  # annotations only: the task registry loads without torch
    import torch
    from torch import nn


class Task(Protocol):
    """A trainable benchmark.

    ``target_metric`` names the entry of :meth:`evaluate` that epochs-to-target
    watches (higher is better), or ``None`` when the task has no accuracy target.

    Optional hooks, used by the loop when a task defines them (not part of the
    protocol, so tasks without them still satisfy it):

    * ``batch_tokens(batch) -> int``: tokens the batch trains on (e.g. loss
      tokens); summed into ``RunResult.train_tokens`` for tokens/s.
    * ``final_metrics(model) -> dict[str, float]``: metrics too costly for every
      evaluation point (e.g. exact match with greedy decoding), computed once
      after training (model in eval mode) and merged into the last epoch's metrics.
    """

    name: str
    target_metric: str | None

    def build_model(self) -> nn.Module:
        """A fresh model; its initialisation draws from the global torch RNG,
        which the loop seeds, so the same seed gives the same weights."""

    def steps_per_epoch(self) -> int:
        """Batches in one pass over the training data (optimizer steps when
        ``TrainConfig.grad_accum`` is 1; the loop groups them otherwise)."""

    def batches(self, generator: torch.Generator) -> Iterator[Any]:
        """One epoch of training batches, in an order drawn from ``generator``."""

    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Scalar loss of ``model`` on ``batch`` (model in train mode)."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Held-out metrics (model in eval mode, no grad), e.g. val_accuracy, val_loss."""

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description: everything that defines the task's data and model."""
