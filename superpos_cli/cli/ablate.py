"""`superpos ablate`: a base arm swept over a grid of optimizer, model and training options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from superpos_cli.cli import options as o

@o.run_options("task", "model", "optimizer", "train", "seeds", axes=True, exclude=("seed",))
def ablate(
    optim: Annotated[Optional[str], typer.Option(
        "--optim", help="Base arm each cell modifies: PRESET[:key=value,...] (default sgd).")] = None,
    control: Annotated[Optional[str], typer.Option(
        "--control", help="Control cell, e.g. 'perturb=none,attention=classical' (default: lambda 0 / perturb "
                          "none / classical attention where swept, else the first value).")] = None,
    suite: o.Suite = None,
    suites_file: o.SuitesFile = None,
    jobs: o.Jobs = None,
    max_memory: o.MaxMemory = None,
    executor: o.Executor = "local",
    ray_address: o.RayAddress = None,
    store: o.Store = None,
    no_store: o.NoStore = False,
    fresh: o.Fresh = False,
    reuse_stale: o.ReuseStale = False,
    plot: o.Plot = None,
    json_: o.Json = False,
    out: o.Out = None,
    *,
    given: dict[str, Any],
) -> None:
    """Ablate one arm over a grid (e.g. --perturb sin,none --attention quantum,classical): a row per cell vs a control."""
    from superpos_cli.cli.prepare import (early_workers, open_store, prepare_outputs, prepare_resources,
                                          prepare_run)
    from superpos_cli.spec.grid import Grid, parse_axis
    from superpos_cli.spec.run import check, parse_values

    # A flag of a sweepable option is an axis (a list); the others are settings.
    axes = {}
    for name in [n for n in given if axis_option_or_none(n)]:
        option, values = parse_axis(name, given.pop(name))
        axes[option.name] = values
    values = parse_values(given)
    base, control_text = optim, control
    if suite is not None:
        from superpos_cli.experiments.suites import get_suite

        found = get_suite(suite, suites_file, kind="ablate")
        run = found.run.merged(values)
        base = base or found.base
        if control_text is None and not (axes and set(axes) & set(found.axes)):
            control_text = found.control  # the suite's control may name axes the flags replaced
        axes = {**found.axes, **axes}
    else:
        # A one-value task/model/training axis holds in every cell, so the base's rules
        # between options see it (--noise-device with --readout prob, a one-value axis).
        fixed = {n: v[0] for n, v in axes.items() if len(v) == 1 and axis_option_or_none(n).group != "optimizer"}
        run = check(values.pop("task", "textcls"), {**values, **fixed})
    grid = Grid(base or "sgd", axes, control_text, run)
    store_file = prepare_outputs(out=out, plot=plot, store=store, no_store=no_store)
    for cell in grid.cells:
        prepare_run(cell.run)
    jobs, budget = prepare_resources([cell.run for cell in grid.cells], jobs, max_memory)
    o.check_executor(executor, ray_address)

    # Everything above is checked without torch; the work starts here.
    with early_workers(jobs, len(grid.cells) * len(run.seeds()), executor, store_file, fresh):
        from superpos_cli.cli.render import (ablate_table, emit_json, skipped_cells_line, stdout, trial_progress,
                                             unreached_target_line)
        from superpos_cli.experiments.ablate import AblateSpec, run_ablate
        from superpos_cli.experiments.plan import check_trials
        from superpos_cli.experiments.trials import raise_if_failed

        spec = AblateSpec(grid=grid, seeds=run.seeds())
        check_trials(spec.trials())
        with open_store(store_file) as results, trial_progress(len(spec.trials()), "ablate") as on_event:
            doc = run_ablate(spec, store=results, fresh=fresh, on_event=on_event, jobs=jobs, reuse_stale=reuse_stale,
                             executor=executor, ray_address=ray_address, memory_budget=budget)
    emit_json(doc, json_, out)
    if plot is not None:
        _plots(doc, plot)
    if not json_:
        stdout.print(ablate_table(doc))
        for note in (unreached_target_line(doc["cells"], doc.get("target"), doc["max_epochs"]),
                     skipped_cells_line(doc)):
            if note:
                stdout.print(note, highlight=False)
    raise_if_failed(doc)


def axis_option_or_none(name: str):
    from superpos_cli.spec.options import option_named

    option = option_named(name)
    return option if option is not None and option.axis else None


def _plots(doc: dict[str, Any], path: Path) -> None:
    """``path``: the main metric against the first swept axis; ``-accuracy``: final
    accuracy likewise (accuracy tasks); ``-curves``: per-cell convergence."""
    from superpos_cli.experiments.plots import convergence_plot, sweep_plot

    swept = [name for name, values in doc["axes"].items() if len(values) > 1] or list(doc["axes"])
    axis = swept[0]
    accuracy = doc["metric"] == "epochs_to_target"
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
