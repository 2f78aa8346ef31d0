"""Options shared by train, compare and ablate, declared once.

Each alias is an ``Annotated`` type a command lists as a parameter; the helper
functions turn the parsed values into the typed configuration the engine takes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from superpos_cli.engine.loop import TrainConfig
from superpos_cli.errors import BadInput

Task = Annotated[str, typer.Option("--task", help="Task: textcls or gsm8k.")]
Data = Annotated[Optional[Path], typer.Option("--data", help="Your own data: JSONL/CSV (textcls) or GSM8K JSONL (gsm8k).")]
Seeds = Annotated[int, typer.Option("--seeds", help="Number of paired seeds (0..N-1 from --seed-offset).")]
SeedOffset = Annotated[int, typer.Option("--seed-offset", help="First seed.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed: data, initialisation, order, dropout.")]
Target = Annotated[float, typer.Option("--target", help="Validation accuracy target in (0, 1).")]
MaxEpochs = Annotated[Optional[int], typer.Option("--max-epochs", help="Epochs per run (textcls 12, gsm8k 1).")]
EvalsPerEpoch = Annotated[int, typer.Option("--evals-per-epoch", help="Validation evaluations per epoch.")]
GradClip = Annotated[Optional[float], typer.Option("--grad-clip", help="Clip the gradient norm to this value.")]
Schedule = Annotated[Optional[str], typer.Option("--schedule", help="constant or warmup-linear.")]
WarmupSteps = Annotated[Optional[int], typer.Option("--warmup-steps", help="Warmup steps of warmup-linear.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
Out = Annotated[Optional[Path], typer.Option("--out", help="Also write the JSON document to this file.")]
Plot = Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG plot to this file.")]
Store = Annotated[Optional[Path], typer.Option("--store", help="Results store (SQLite); finished trials are reused.")]
Jobs = Annotated[int, typer.Option("--jobs", "-j", help="Trials run at once in worker processes (1 torch thread each).")]
CompareJobs = Annotated[Optional[int], typer.Option(
    "--jobs", "-j", help="Trials run at once in worker processes, 1 torch thread each [default: 2, or 1 on one core].")]
Fresh = Annotated[bool, typer.Option("--fresh", help="Ignore finished trials in the store and rerun them.")]

# Model / attention.
Attention = Annotated[Optional[str], typer.Option("--attention", help="quantum (paper's model) or classical.")]
Qubits = Annotated[Optional[int], typer.Option("--qubits", help="Qubits of the attention circuit.")]
Depth = Annotated[Optional[int], typer.Option("--depth", help="Layers of the attention circuit.")]
Backend = Annotated[Optional[str], typer.Option("--backend", help="Circuit backend for attention: fourier or torch.")]
PhiInput = Annotated[Optional[str], typer.Option("--phi-input", help="Circuit input: raw or scaled attention score.")]
Encoding = Annotated[Optional[str], typer.Option("--encoding", help="reupload or first-layer.")]
Entangler = Annotated[Optional[str], typer.Option("--entangler", help="chain or ring.")]
Readout = Annotated[Optional[str], typer.Option("--readout", help="real, abs or prob.")]
PerHead = Annotated[bool, typer.Option("--circuit-per-head", help="Each head gets its own circuit parameters.")]

# GSM8K.
Limit = Annotated[Optional[int], typer.Option("--limit", help="gsm8k: use the first N problems.")]
Model = Annotated[Optional[Path], typer.Option("--model", help="gsm8k: local Hugging Face causal-LM checkpoint.")]
LoraRank = Annotated[Optional[int], typer.Option("--lora-rank", help="gsm8k: LoRA rank (0: full fine-tuning).")]
GradAccum = Annotated[Optional[int], typer.Option("--grad-accum", help="Batches accumulated per optimizer step.")]
LossOn = Annotated[Optional[str], typer.Option("--loss-on", help="gsm8k: answer (default) or all tokens.")]
SkipBad = Annotated[bool, typer.Option("--skip-bad", help="gsm8k: skip malformed lines and count them.")]

# Optimizer (global overrides; an arm's own key=value options win).
Lr = Annotated[Optional[float], typer.Option("--lr", help="Learning rate.")]
Lambda = Annotated[Optional[float], typer.Option("--lambda", help="Perturbation scale lambda of sgd.")]
Perturb = Annotated[Optional[str], typer.Option("--perturb", help="sin, cos, gaussian, uniform or none.")]
Scope = Annotated[Optional[str], typer.Option("--scope", help="tensors, coords, global or all.")]
NQubits = Annotated[Optional[int], typer.Option("--n-qubits", help="n_qubits of the optimizer's scope.")]
WeightDecay = Annotated[Optional[float], typer.Option("--weight-decay", help="Weight decay.")]
L2 = Annotated[bool, typer.Option("--l2", help="Coupled L2 instead of decoupled weight decay.")]
Unscaled = Annotated[bool, typer.Option("--perturb-unscaled", help="lambda*Q not multiplied by lr.")]
EpsInside = Annotated[bool, typer.Option("--eps-inside", help="eps inside the square root.")]

# Training protocol per task, beneath explicit flags (gsm8k's is the paper's,
# tasks.gsm8k.PAPER_SCHEDULE, the single source of it).
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {"textcls": {"max_epochs": 12}}


def drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v is not False}


def train_config(task: str, seed: int = 0, **flags: Any) -> TrainConfig:
    """TrainConfig from the task's protocol defaults overridden by explicit flags."""
    defaults = TRAIN_DEFAULTS.get(task, {})
    if task == "gsm8k":
        from superpos_cli.tasks.gsm8k import PAPER_SCHEDULE

        defaults = PAPER_SCHEDULE
    values = {**defaults, **drop_none(**flags)}
    try:
        return TrainConfig(seed=seed, **values)
    except TypeError as err:
        raise BadInput(str(err)) from None


def compare_jobs(jobs: int | None) -> int:
    """compare runs the two trials of a seed side by side by default: both see the
    same machine at the same time, and the default compare fits in about a minute."""
    return min(2, os.cpu_count() or 1) if jobs is None else jobs


def seed_list(seeds: int, offset: int = 0) -> list[int]:
    if seeds < 1:
        raise BadInput(f"seeds must be >= 1, got {seeds}")
    return list(range(offset, offset + seeds))


def task_options(task: str, data: Path | None, **flags: Any) -> dict[str, Any]:
    """Flat task options (task, model and attention fields) from the flags given."""
    options = drop_none(**flags)
    if data is not None:
        options["data_path"] = str(data)
    if "circuit_per_head" in options:
        options["per_head"] = options.pop("circuit_per_head")
    if "attention" in options:
        options["kind"] = options.pop("attention")
    if "qubits" in options:
        options["n_qubits"] = options.pop("qubits")
    if "model" in options:
        options["hf_model_path"] = str(options.pop("model"))
    return options


def optimizer_overrides(**flags: Any) -> dict[str, Any]:
    return drop_none(**flags)
