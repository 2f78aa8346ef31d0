"""`superpos ablate`: a base arm swept over a grid of optimizer and model options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from superpos_cli.cli import options as o
from superpos_cli.cli.render import ablate_table, emit_json, stderr, stdout, trial_progress
from superpos_cli.errors import BadInput
from superpos_cli.experiments.ablate import AXES, AblateSpec, parse_axis, run_ablate
from superpos_cli.experiments.plots import convergence_plot, sweep_plot
from superpos_cli.experiments.store import DEFAULT_PATH, ResultsStore


def _axis(flag: str, example: str) -> Any:
    axis = AXES[flag.lstrip("-").replace("-", "_")]
    return Annotated[Optional[str], typer.Option(flag, help=f"Sweep the {axis.help}: comma-separated, e.g. {example}.")]


def ablate(
    lam: _axis("--lambda", "0,0.1,0.3,0.5,0.7") = None,
    perturb: _axis("--perturb", "sin,cos,gaussian,uniform,none") = None,
    scope: _axis("--scope", "tensors,coords,global,all") = None,
    n_qubits: _axis("--n-qubits", "2,4,8") = None,
    lr: _axis("--lr", "1e-3,3e-3") = None,
    qubits: _axis("--qubits", "2,4,8") = None,
    depth: _axis("--depth", "1,2,4") = None,
    attention: _axis("--attention", "quantum,classical") = None,
    optim: Annotated[Optional[str], typer.Option("--optim", help="Base arm each cell modifies: PRESET[:key=value,...] (default sgd).")] = None,
    control: Annotated[Optional[str], typer.Option("--control", help="Control cell, e.g. 'perturb=none,attention=classical' (default: lambda 0 / perturb none / classical attention, else the first cell).")] = None,
    suite: Annotated[Optional[str], typer.Option("--suite", help="Run an ablate suite from benchmarks.toml; flags override it, axis flags add or replace axes.")] = None,
    suites_file: Annotated[Optional[Path], typer.Option("--suites-file", help="Suite file (default ./benchmarks.toml, else the shipped one).")] = None,
    jobs: o.Jobs = 1,
    task: Annotated[Optional[str], typer.Option("--task", help="Task: textcls or gsm8k (default textcls).")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Number of paired seeds (default 5).")] = None,
    seed_offset: o.SeedOffset = 0,
    data: o.Data = None,
    target: Annotated[Optional[float], typer.Option("--target", help="Validation accuracy target in (0, 1) (default 0.90).")] = None,
    max_epochs: o.MaxEpochs = None,
    evals_per_epoch: Annotated[Optional[int], typer.Option("--evals-per-epoch", help="Validation evaluations per epoch (default 10).")] = None,
    grad_clip: o.GradClip = None,
    schedule: o.Schedule = None,
    warmup_steps: o.WarmupSteps = None,
    grad_accum: o.GradAccum = None,
    backend: o.Backend = None,
    phi_input: o.PhiInput = None,
    circuit_per_head: o.PerHead = False,
    limit: o.Limit = None,
    model: o.Model = None,
    lora_rank: o.LoraRank = None,
    store: Annotated[Optional[Path], typer.Option("--store", help=f"Results store (SQLite, default ./{DEFAULT_PATH}); finished trials are reused.")] = None,
    fresh: o.Fresh = False,
    plot: o.Plot = None,
    json_: o.Json = False,
    out: o.Out = None,
) -> None:
    """Ablate one arm over a grid (e.g. --perturb sin,none --attention quantum,classical): a row per cell vs a control."""
    flags = {"lambda": lam, "perturb": perturb, "scope": scope, "n_qubits": n_qubits, "lr": lr, "qubits": qubits,
             "depth": depth, "attention": attention}
    axes = {name: parse_axis(name, raw) for name, raw in flags.items() if raw is not None}
    spec = _spec(suite, suites_file, axes, optim=optim, control=control, task=task, seeds=seeds,
                 seed_offset=seed_offset, target=target, max_epochs=max_epochs, evals_per_epoch=evals_per_epoch,
                 train_flags=dict(grad_clip=grad_clip, schedule=schedule, warmup_steps=warmup_steps,
                                  grad_accum=grad_accum),
                 task_flags=dict(data=data, backend=backend, phi_input=phi_input,
                                 circuit_per_head=circuit_per_head, limit=limit, model=model, lora_rank=lora_rank))
    if jobs < 1:
        raise BadInput(f"jobs must be >= 1, got {jobs}")
    store_path = store if store is not None else Path(DEFAULT_PATH)
    saved = 0

    with ResultsStore(store_path) as results, trial_progress(len(spec.trials()), "ablate") as progress:
        def on_event(kind: str, trial, payload: dict[str, Any]) -> None:
            nonlocal saved
            saved += kind == "done"
            progress(kind, trial, payload)

        try:
            doc = run_ablate(spec, store=results, fresh=fresh, on_event=on_event, jobs=jobs)
        except KeyboardInterrupt:
            stderr.print(f"interrupted: {saved} new trial{'s' * (saved != 1)} saved to {store_path}; "
                         "rerun the same command to resume")
            raise typer.Exit(130) from None
    if plot is not None:
        _plots(doc, plot)
    emit_json(doc, json_, out)
    if not json_:
        stdout.print(ablate_table(doc))


def _spec(suite: str | None, suites_file: Path | None, axes: dict[str, list], *, optim, control, task, seeds,
          seed_offset, target, max_epochs, evals_per_epoch, train_flags, task_flags) -> AblateSpec:
    """The spec from the suite (if any) overridden by the flags given."""
    base: dict[str, Any] = {"task": "textcls", "base": "sgd", "seeds": 5, "target": 0.90, "control": None,
                            "max_epochs": None, "evals_per_epoch": 10, "task_options": {}, "axes": {}}
    if suite is not None:
        from superpos_cli.experiments.suites import AblateSuite, get_suite

        found = get_suite(suite, suites_file)
        if not isinstance(found, AblateSuite):
            raise BadInput(f"suite {suite!r} is a {found.kind} suite; ablate runs suites of kind ablate")
        base.update(task=found.task, base=found.base, seeds=found.seeds, target=found.target,
                    control=found.control, max_epochs=found.max_epochs, evals_per_epoch=found.evals_per_epoch,
                    task_options=dict(found.task_options), axes={k: list(v) for k, v in found.axes.items()})
    given = o.drop_none(task=task, base=optim, seeds=seeds, target=target, control=control,
                        max_epochs=max_epochs, evals_per_epoch=evals_per_epoch)
    base.update(given)
    if "control" not in given and axes and suite is not None:
        base["control"] = None  # the suite's control may name axes the flags replaced
    base["axes"].update(axes)
    task = base["task"]
    return AblateSpec(
        task=task,
        task_options={**base["task_options"], **o.task_options(task, task_flags.pop("data"), **task_flags)},
        base=base["base"],
        axes=base["axes"],
        seeds=o.seed_list(base["seeds"], seed_offset),
        train=o.train_config(task, 0, max_epochs=base["max_epochs"], target=base["target"],
                             evals_per_epoch=base["evals_per_epoch"], **train_flags),
        control=base["control"],
    )


def _plots(doc: dict[str, Any], path: Path) -> None:
    """``path``: the main metric against the first swept axis; ``-accuracy``: final
    accuracy likewise (accuracy tasks); ``-curves``: per-cell convergence."""
    swept = [name for name, values in doc["axes"].items() if len(values) > 1] or list(doc["axes"])
    axis = swept[0]
    accuracy = "epochs_to_target" in doc["cells"][0]
    sibling = lambda suffix: path.with_name(f"{path.stem}-{suffix}{path.suffix or '.png'}")  # noqa: E731
    if accuracy:
        sweep_plot(doc["cells"], axis, path, "epochs_to_target", f"epochs to {doc['target']:.0%} (median, 95% CI)")
        sweep_plot(doc["cells"], axis, sibling("accuracy"), "final_accuracy", "final validation accuracy (mean, 95% CI)")
    else:
        sweep_plot(doc["cells"], axis, path, "mean_train_loss", "mean training loss (mean, 95% CI)")
    convergence_plot([{"name": c["label"], "curves": c["curves"]} for c in doc["cells"]], sibling("curves"),
                     "validation accuracy" if accuracy else "training loss",
                     target=doc["target"] if accuracy else None,
                     title=f"{doc['task']}: {doc['base']} ablation ({len(doc['seeds'])} seeds)")


def register(app: typer.Typer) -> None:
    app.command("ablate")(ablate)
