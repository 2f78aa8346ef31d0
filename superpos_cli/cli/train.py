"""`superpos train`: one run with a progress bar, a per-epoch table and a summary."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from superpos_cli.cli import options as o
from superpos_cli.cli.render import emit_json, epoch_table, stderr, stdout
from superpos_cli.experiments.trials import TrialSpec, run_trial
from superpos_cli.optim.presets import parse_arm
from superpos_cli.tasks import OPTIMIZER_DEFAULTS


def train(
    task: o.Task = "textcls",
    optim: Annotated[str, typer.Option("--optim", help="Optimizer arm, e.g. sgd or sgd:lambda=0.1.")] = "sgd",
    seed: o.Seed = 0,
    data: o.Data = None,
    max_epochs: o.MaxEpochs = None,
    target: o.Target = 0.90,
    evals_per_epoch: o.EvalsPerEpoch = 10,
    grad_clip: o.GradClip = None,
    schedule: o.Schedule = None,
    warmup_steps: o.WarmupSteps = None,
    grad_accum: o.GradAccum = None,
    attention: o.Attention = None,
    qubits: o.Qubits = None,
    depth: o.Depth = None,
    backend: o.Backend = None,
    phi_input: o.PhiInput = None,
    circuit_per_head: o.PerHead = False,
    encoding: o.Encoding = None,
    entangler: o.Entangler = None,
    readout: o.Readout = None,
    limit: o.Limit = None,
    model: o.Model = None,
    lora_rank: o.LoraRank = None,
    loss_on: o.LossOn = None,
    skip_bad: o.SkipBad = False,
    lr: o.Lr = None,
    lam: o.Lambda = None,
    perturb: o.Perturb = None,
    scope: o.Scope = None,
    n_qubits: o.NQubits = None,
    weight_decay: o.WeightDecay = None,
    l2: o.L2 = False,
    perturb_unscaled: o.Unscaled = False,
    eps_inside: o.EpsInside = False,
    json_: o.Json = False,
    out: o.Out = None,
) -> None:
    """Train once and show the learning curve."""
    overrides = o.optimizer_overrides(lr=lr, weight_decay=weight_decay, perturb=perturb, scope=scope,
                                      n_qubits=n_qubits, l2=l2, unscaled=perturb_unscaled, eps_inside=eps_inside,
                                      **{"lambda": lam})
    arm = parse_arm(optim, overrides, OPTIMIZER_DEFAULTS.get(task))
    spec = TrialSpec(
        task,
        o.task_options(task, data, attention=attention, qubits=qubits, depth=depth, backend=backend,
                       phi_input=phi_input, circuit_per_head=circuit_per_head, encoding=encoding,
                       entangler=entangler, readout=readout, limit=limit, model=model,
                       lora_rank=lora_rank, loss_on=loss_on, skip_bad=skip_bad),
        arm,
        o.train_config(task, seed, max_epochs=max_epochs, target=target, evals_per_epoch=evals_per_epoch,
                       grad_clip=grad_clip, schedule=schedule, warmup_steps=warmup_steps, grad_accum=grad_accum),
    )
    with Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.fields[detail]}"),
                  TimeElapsedColumn(), console=stderr, transient=True) as bar:
        bar_id = bar.add_task("train", total=spec.train.max_epochs, detail="")

        def progress(event: str, info: dict) -> None:
            if event == "eval":
                metric = info.get("val_accuracy", info.get("val_loss"))
                bar.update(bar_id, completed=info["epoch"], detail=f"epoch {info['epoch']:.1f}  val {metric:.4f}")

        record = run_trial(spec, progress)
    emit_json(record, json_, out)
    if json_:
        return
    result = record["result"]
    stdout.print(epoch_table(result, f"{task} with {arm.name}, seed {seed}"))
    e2t = result["epochs_to_target"]
    if result["target_metric"]:
        reached = f"{e2t:.2f} epochs" if e2t is not None else f"not reached in {spec.train.max_epochs} epochs"
        stdout.print(f"{result['target_metric']} reached {spec.train.target:.0%} at: {reached}")
    finals = ", ".join(f"{k} {v:.4f}" for k, v in result["final_metrics"].items())
    stdout.print(f"final: {finals}; mean train loss {result['mean_train_loss']:.4f}; "
                 f"median epoch time {result['epoch_time_s']:.3f} s (evaluation excluded)")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
