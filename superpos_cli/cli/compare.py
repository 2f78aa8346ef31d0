"""`superpos compare OPT [OPT...]`: arms side by side over paired seeds."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from superpos_cli.cli import options as o
from superpos_cli.errors import BadInput


@o.run_options("task", "model", "optimizer", "train", "seeds", exclude=("seed",))
def compare(
    arms: Annotated[Optional[list[str]], typer.Argument(
        help="Optimizer arms: adam, adamw, sgd, momentum, PRESET:key=value,..., or an import path such as "
             "torch.optim.SGD:lr=0.1,momentum=0.9; the first is the reference.")] = None,
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
    """Compare optimizer arms on paired seeds: epochs to target, overhead, break-even speedup.

    ARMS: adam, adamw, sgd, momentum, PRESET:key=value,... (e.g. sgd:lambda=0.1), or an import path
    such as torch.optim.SGD:lr=0.1,momentum=0.9; the first arm is the reference.
    """
    from superpos_cli.cli.prepare import (early_workers, open_store, prepare_outputs, prepare_resources,
                                          prepare_run)
    from superpos_cli.spec.run import parse_values, settings

    if suite is not None:
        from superpos_cli.experiments.suites import get_suite

        if arms:
            raise BadInput(f"give either arms or --suite, not both (got {' '.join(arms)} and --suite {suite})")
        found = get_suite(suite, suites_file, kind="compare")
        run, texts = found.run.merged(parse_values(given)), list(found.arms)
    elif not arms:
        raise BadInput("name at least one optimizer arm (e.g. adam sgd) or a --suite")
    else:
        run, texts = settings(given), list(arms)
    from superpos_cli.spec.arms import parse_arm

    arm_specs = [parse_arm(text, run.optimizer_overrides(), run.optimizer_protocol()) for text in texts]
    names = [arm.name for arm in arm_specs]
    if len(set(names)) != len(names):
        raise BadInput(f"arms must be distinct, got {' '.join(names)}")
    store_file = prepare_outputs(out=out, plot=plot, store=store, no_store=no_store)
    prepare_run(run)
    jobs, budget = prepare_resources([run], jobs, max_memory)
    o.check_executor(executor, ray_address)

    # Everything above is checked without torch; the work starts here.
    with early_workers(jobs, len(run.seeds()) * len(arm_specs), executor, store_file, fresh):
        from superpos_cli.cli.render import compare_table, emit_json, stdout, trial_progress, unreached_target_line
        from superpos_cli.experiments.compare import CompareSpec, run_compare
        from superpos_cli.experiments.plan import check_trials, train_config
        from superpos_cli.experiments.trials import raise_if_failed

        spec = CompareSpec(task=run.task, task_options=run.task_options(), arms=arm_specs, seeds=run.seeds(),
                           train=train_config(run))
        check_trials(spec.trials())
        with open_store(store_file) as results, trial_progress(len(spec.seeds) * len(spec.arms), "compare") as on_event:
            doc = run_compare(spec, store=results, fresh=fresh, on_event=on_event, jobs=jobs, reuse_stale=reuse_stale,
                             executor=executor, ray_address=ray_address, memory_budget=budget)
    emit_json(doc, json_, out)
    if plot is not None:
        from superpos_cli.experiments.plots import convergence_plot

        accuracy = doc["metric"] == "epochs_to_target"
        convergence_plot(doc["arms"], plot, "validation accuracy" if accuracy else "training loss",
                         target=spec.train.target if accuracy else None,
                         title=f"{run.task}: {' vs '.join(names)} ({len(spec.seeds)} seeds)")
    if not json_:
        stdout.print(compare_table(doc))
        note = unreached_target_line(doc["arms"], doc.get("target"), doc["max_epochs"])
        if note:
            stdout.print(note, highlight=False)
    raise_if_failed(doc)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
