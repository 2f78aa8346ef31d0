"""The training loop: the only place where a task meets an optimizer.

It never prints. It returns a :class:`RunResult` and reports progress through an
optional callback, so the same run serves train, compare, ablate and bench.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

from superpos_cli.engine import distributed
from superpos_cli.errors import BadInput
from superpos_cli.tasks.base import Task

SCHEDULES = ("constant", "warmup-linear")


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train; ``seed`` fixes initialisation, data order and dropout."""

    max_epochs: int = 12
    evals_per_epoch: int = 10
    # Once the target metric has reached the target, only this many (evenly spaced,
    # the last at the epoch's end): epochs to target is then known, and the epoch's
    # metrics need only its last point. Textcls crosses at ~5 of 12 epochs, so the
    # default 1 skips about half of a run's evaluations, which cost as much as training.
    evals_after_target: int = 1
    target: float = 0.90
    grad_clip: float | None = None
    schedule: str = "constant"
    warmup_steps: int = 0
    warmup_cap: float = 1.0  # warmup takes at most this fraction of all optimizer steps (small runs)
    seed: int = 0
    grad_accum: int = 1  # batches whose gradients are summed into one optimizer step

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise BadInput(f"max-epochs must be >= 1, got {self.max_epochs}")
        if self.evals_per_epoch < 1:
            raise BadInput(f"evals-per-epoch must be >= 1, got {self.evals_per_epoch}")
        if self.evals_after_target < 1:
            raise BadInput(f"evals-after-target must be >= 1, got {self.evals_after_target}")
        if not 0.0 < self.target < 1.0:
            raise BadInput(f"target must be in (0, 1), got {self.target}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise BadInput(f"grad-clip must be > 0, got {self.grad_clip}")
        if self.schedule not in SCHEDULES:
            raise BadInput(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.warmup_steps < 0:
            raise BadInput(f"warmup-steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 < self.warmup_cap <= 1.0:
            raise BadInput(f"warmup-cap must be in (0, 1], got {self.warmup_cap}")
        if self.grad_accum < 1:
            raise BadInput(f"grad-accum must be >= 1, got {self.grad_accum}")

    def effective_warmup(self, total_steps: int) -> int:
        """Warmup steps actually used: ``warmup_steps`` capped at ``warmup_cap`` of the run."""
        if self.warmup_steps == 0:
            return 0
        return min(self.warmup_steps, max(1, math.ceil(self.warmup_cap * total_steps)))


@dataclass
class EvalPoint:
    """Held-out metrics at fractional epoch ``epoch`` (after ``step`` optimizer steps)."""

    epoch: float
    step: int
    train_loss: float  # mean training loss since the previous evaluation
    metrics: dict[str, float]
    # Perturbation telemetry of the step just before this evaluation (None: not a
    # SuperpositionalAdam, or telemetry off): ||c Q|| / ||Adam's step|| on the scope,
    # and the share of coordinates the scope selects (optimizer.perturbation_telemetry).
    perturb_ratio: float | None = None
    scope_share: float | None = None


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's batches
    train_time_s: float  # training only, evaluation excluded
    metrics: dict[str, float]  # held-out metrics at the end of the epoch
    perturb_ratio: float | None = None  # median over the epoch's evaluation windows
    scope_share: float | None = None


@dataclass
class RunResult:
    evals: list[EvalPoint] = field(default_factory=list)
    epochs: list[EpochRecord] = field(default_factory=list)
    target_metric: str | None = None
    target: float | None = None
    epochs_to_target: float | None = None  # None: censored (never reached)
    steps: int = 0  # optimizer steps
    train_tokens: int = 0  # sum of the task's batch_tokens over training (0 without the hook)
    train_time_s: float = 0.0  # training time of the whole run, evaluation excluded
    # Optimizer steps done when a training loss became NaN or inf; the run stopped
    # there (its last epoch is partial, with that non-finite loss). None: it did not.
    diverged_at_step: int | None = None

    @property
    def final_metrics(self) -> dict[str, float]:
        return self.epochs[-1].metrics if self.epochs else {}

    @property
    def epoch_time_s(self) -> float:
        """Median training time per epoch."""
        return statistics.median(e.train_time_s for e in self.epochs)

    @property
    def mean_train_loss(self) -> float:
        """Mean training loss over every batch of the run (Table I's metric for one epoch)."""
        # Every epoch has the same number of batches, so the mean of epoch means is the batch mean.
        return statistics.fmean(e.train_loss for e in self.epochs)

    @property
    def tokens_per_s(self) -> float | None:
        """Training throughput, or None when the task reports no tokens."""
        return self.train_tokens / self.train_time_s if self.train_tokens and self.train_time_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(final_metrics=self.final_metrics, epoch_time_s=self.epoch_time_s if self.epochs else None,
                   mean_train_loss=self.mean_train_loss if self.epochs else None, tokens_per_s=self.tokens_per_s)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        return cls(
            evals=[EvalPoint(**e) for e in data["evals"]],
            epochs=[EpochRecord(**e) for e in data["epochs"]],
            target_metric=data["target_metric"],
            target=data["target"],
            epochs_to_target=data["epochs_to_target"],
            steps=data["steps"],
            train_tokens=data.get("train_tokens", 0),
            train_time_s=data.get("train_time_s", 0.0),
            diverged_at_step=data.get("diverged_at_step"),
        )


def crossing_epoch(points: list[tuple[float, float]], target: float) -> float | None:
    """First epoch at which the metric reaches ``target``, linearly interpolated
    between the evaluation before and the one at the crossing; None if never.

    ``points`` are (epoch, metric) pairs in order; the curve starts at (0, first
    value measured before training) so a crossing inside the first interval is
    interpolated too.
    """
    if points and points[0][1] >= target:
        return points[0][0]
    for (e0, m0), (e1, m1) in zip(points, points[1:]):
        if m1 >= target:  # m0 < target <= m1, so m1 > m0
            return e0 + (e1 - e0) * (target - m0) / (m1 - m0)
    return None


def lr_multiplier(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """LambdaLR factor: constant, or linear warmup to 1 then linear decay to 0."""
    if cfg.schedule == "constant":
        return lambda step: 1.0
    warmup = cfg.effective_warmup(total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def _eval_steps(steps_per_epoch: int, n: int) -> set[int]:
    """The epoch steps after which ``n`` evenly spaced evaluations run, the last at its end."""
    return {round(steps_per_epoch * k / n) for k in range(1, n + 1)}


def _window_telemetry(points: list[EvalPoint]) -> tuple[float | None, float | None]:
    """(median perturb_ratio, scope_share) over an epoch's evaluation points."""
    ratios = [p.perturb_ratio for p in points if p.perturb_ratio is not None]
    shares = [p.scope_share for p in points if p.scope_share is not None]
    return (statistics.median(ratios) if ratios else None, shares[-1] if shares else None)


ProgressCallback = Callable[[str, dict[str, Any]], None]


def train(
    task: Task,
    make_optimizer: Callable[[torch.nn.Module], torch.optim.Optimizer],
    cfg: TrainConfig,
    progress: ProgressCallback | None = None,
    telemetry: bool = True,
) -> RunResult:
    """Train ``task``'s model with the optimizer ``make_optimizer`` builds.

    The seed fixes the model's initialisation (global RNG before build), the data
    order (a dedicated generator) and dropout (streams seeded at build,
    :mod:`superpos_cli.models.dropout`), so arms run with the same seed are paired.
    ``progress(event, info)`` receives ``"eval"`` and ``"epoch"`` events.

    Evaluations: ``cfg.evals_per_epoch`` per epoch until the target metric first
    reaches ``cfg.target``, then ``cfg.evals_after_target`` (the epoch's end among
    them). Nothing a run reports depends on the later points but the curves' density:
    the crossing is interpolated before the switch, and every epoch ends on an
    evaluation. Evaluating draws nothing from the global RNG, so the trained
    numbers are the same either way (with ``--shots``, whose evaluations draw from
    attention's own generator, the training after the crossing differs).

    One optimizer step sums the gradients of ``cfg.grad_accum`` batches, each loss
    divided by the group's size, so the step follows the group's mean loss; an
    epoch's trailing partial group steps too (divided by its own size). Steps,
    evaluation points and the LR schedule count optimizer steps; training losses
    are means over batches. Optional task hooks: ``batch_tokens(batch)`` is summed
    into ``train_tokens``; ``final_metrics(model)`` runs once after the last
    epoch's training (eval mode) and its entries join that epoch's metrics.
    A NaN or infinite training loss stops the run before its backward pass's step:
    ``diverged_at_step`` records the steps done, and the partial epoch (its mean
    loss non-finite, metrics evaluated on the model as it was) ends the record.

    ``telemetry``: on the step just before each evaluation, an optimizer with a
    ``perturbation_telemetry()`` method measures that step before it runs (it
    writes nothing, so every trained number is the same with it off); the
    result lands in the EvalPoint and, as a median, in the EpochRecord. Its
    cost, one foreach pass over the scoped slices per evaluation window (about
    0.5-0.8% of textcls's training time), counts as training time.

    In a torch.distributed group of 2+ ranks (``superpos train`` under torchrun)
    the model trains DistributedDataParallel on this rank's shard of each global
    batch, and the numbers are one process's with the global batch
    (:mod:`superpos_cli.engine.distributed`).
    """
    torch.manual_seed(cfg.seed)
    model = task.build_model()
    optimizer = make_optimizer(model)
    ddp = distributed.current()  # None unless under torchrun with 2+ ranks (engine/distributed.py)
    net = distributed.wrap(model, ddp)  # what training runs through: DDP all-reduces gradients
    n_batches = distributed.steps_per_epoch(task, ddp)
    steps_per_epoch = math.ceil(n_batches / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.max_epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg, total_steps))
    order = torch.Generator().manual_seed(cfg.seed)
    # Evaluation points: evenly spaced steps, the last at the epoch's end; dense until
    # the target is reached, then sparse (TrainConfig.evals_after_target).
    dense, sparse = (_eval_steps(steps_per_epoch, n) for n in (cfg.evals_per_epoch, cfg.evals_after_target))
    batch_tokens = getattr(task, "batch_tokens", None)
    final_metrics = getattr(task, "final_metrics", None)
    probe = getattr(optimizer, "perturbation_telemetry", None) if telemetry else None

    result = RunResult(target_metric=task.target_metric, target=cfg.target if task.target_metric else None)
    model.eval()
    curve = [(0.0, task.evaluate(model)[task.target_metric])] if task.target_metric else []
    eval_after = sparse if curve and curve[0][1] >= cfg.target else dense
    step = 0
    for epoch in range(1, cfg.max_epochs + 1):
        epoch_time = 0.0
        epoch_loss, window_loss, window_batches = 0.0, 0.0, 0
        model.train()
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(distributed.batches(task, order, ddp), start=1):
            group_start = (i - 1) // cfg.grad_accum * cfg.grad_accum  # batches before this one's group
            group = min(cfg.grad_accum, n_batches - group_start)  # batches in this one's group
            loss = task.training_loss(net, batch)
            # Alone: value is float(loss); under DDP the global batch's mean over every rank.
            loss, value, tokens = distributed.share_loss(loss, batch_tokens(batch) if batch_tokens else 1, ddp)
            (loss / group).backward()
            epoch_loss += value
            window_loss += value
            window_batches += 1
            if not math.isfinite(value):
                result.diverged_at_step = step  # no step follows a non-finite loss
                break
            if batch_tokens:
                result.train_tokens += tokens
            if i < group_start + group:
                continue
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            epoch_step = group_start // cfg.grad_accum + 1
            sample = probe() if probe and epoch_step in eval_after else {}
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if epoch_step in eval_after:
                epoch_time += time.perf_counter() - started
                model.eval()
                metrics = task.evaluate(model)
                model.train()
                at = epoch - 1 + epoch_step / steps_per_epoch
                point = EvalPoint(at, step, window_loss / window_batches, metrics, **sample)
                result.evals.append(point)
                window_loss, window_batches = 0.0, 0
                if task.target_metric:
                    curve.append((point.epoch, metrics[task.target_metric]))
                    if curve[-1][1] >= cfg.target:
                        eval_after = sparse
                if progress:
                    progress("eval", {"epoch": point.epoch, "step": step, **metrics})
                started = time.perf_counter()
        epoch_time += time.perf_counter() - started
        result.train_time_s += epoch_time
        if result.diverged_at_step is not None:
            model.eval()  # the partial epoch's metrics: the model as it was at the NaN
            metrics = task.evaluate(model)
        else:
            metrics = result.evals[-1].metrics
        if final_metrics and epoch == cfg.max_epochs and result.diverged_at_step is None:
            model.eval()
            metrics = {**metrics, **final_metrics(model)}
        record = EpochRecord(epoch, epoch_loss / max(1, i), epoch_time, metrics,
                             *_window_telemetry([p for p in result.evals if p.epoch > epoch - 1]))
        result.epochs.append(record)
        if progress:
            progress("epoch", asdict(record))
        if result.diverged_at_step is not None:
            break
    result.steps = step
    if task.target_metric:
        result.epochs_to_target = crossing_epoch(curve, cfg.target)
    return result
