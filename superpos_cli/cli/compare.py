"""`superpos compare OPT [OPT...]`: arms side by side over paired seeds."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from superpos_cli.cli import options as o
from superpos_cli.errors import BadInput
from superpos_cli.cli.render import compare_table, emit_json, stdout, trial_progress
from superpos_cli.experiments.compare import CompareSpec, run_compare
from superpos_cli.experiments.plots import convergence_plot
from superpos_cli.experiments.store import ResultsStore
from superpos_cli.optim.presets import parse_arm
from superpos_cli.tasks import OPTIMIZER_DEFAULTS


def compare(
    arms: Annotated[Optional[list[str]], typer.Argument(help="Optimizer arms: adam, adamw, sgd, momentum, or PRESET:key=value,...; the first is the reference.")] = None,
    suite: Annotated[Optional[str], typer.Option("--suite", help="Run a compare suite of benchmarks.toml (e.g. paper-textcls) instead of the arms.")] = None,
    task: o.Task = "textcls",
    seeds: o.Seeds = 5,
    seed_offset: o.SeedOffset = 0,
    data: o.Data = None,
    target: o.Target = 0.90,
    max_epochs: o.MaxEpochs = None,
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
    jobs: o.CompareJobs = None,
    store: o.Store = None,
    fresh: o.Fresh = False,
    plot: o.Plot = None,
    json_: o.Json = False,
    out: o.Out = None,
) -> None:
    """Compare optimizer arms on paired seeds: epochs to target, overhead, break-even speedup."""
    if suite is not None:
        if arms:
            raise BadInput(f"give either arms or --suite, not both (got {' '.join(arms)} and --suite {suite})")
        spec = _suite_spec(suite)
    elif not arms:
        raise BadInput("name at least one optimizer arm (e.g. adam sgd) or a --suite")
    else:
        overrides = o.optimizer_overrides(lr=lr, weight_decay=weight_decay, perturb=perturb, scope=scope,
                                          n_qubits=n_qubits, l2=l2, unscaled=perturb_unscaled,
                                          eps_inside=eps_inside, **{"lambda": lam})
        spec = CompareSpec(
            task=task,
            task_options=o.task_options(task, data, attention=attention, qubits=qubits, depth=depth,
                                        backend=backend, phi_input=phi_input, circuit_per_head=circuit_per_head,
                                        encoding=encoding, entangler=entangler, readout=readout, limit=limit, model=model, lora_rank=lora_rank, loss_on=loss_on,
                                        skip_bad=skip_bad),
            arms=[parse_arm(text, overrides, OPTIMIZER_DEFAULTS.get(task)) for text in arms],
            seeds=o.seed_list(seeds, seed_offset),
            train=o.train_config(task, 0, max_epochs=max_epochs, target=target, evals_per_epoch=evals_per_epoch,
                                 grad_clip=grad_clip, schedule=schedule, warmup_steps=warmup_steps,
                                 grad_accum=grad_accum),
        )
    results_store = ResultsStore(store) if store is not None else None
    with trial_progress(len(spec.seeds) * len(spec.arms), "compare") as on_event:
        doc = run_compare(spec, store=results_store, fresh=fresh, on_event=on_event, jobs=o.compare_jobs(jobs))
    if plot is not None:
        accuracy = "epochs_to_target" in doc["arms"][0]
        convergence_plot(doc["arms"], plot, "validation accuracy" if accuracy else "training loss",
                         target=spec.train.target if accuracy else None,
                         title=f"{task}: {' vs '.join(a.name for a in spec.arms)} ({len(spec.seeds)} seeds)")
    emit_json(doc, json_, out)
    if not json_:
        stdout.print(compare_table(doc))


def _suite_spec(name: str) -> CompareSpec:
    from superpos_cli.experiments.suites import CompareSuite, get_suite

    found = get_suite(name, None)
    if not isinstance(found, CompareSuite):
        raise BadInput(f"suite {name!r} is a {found.kind} suite; compare runs suites of kind compare")
    return found.to_compare_spec(o.train_config(found.task))


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
