"""`superpos train`: one run with a progress bar, a per-epoch table and a summary."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from superpos_cli.cli import options as o


@o.run_options("task", "model", "optimizer", "train", "seeds", exclude=("seeds", "seed_offset"))
def train(
    optim: Annotated[str, typer.Option("--optim", help="Optimizer arm, e.g. sgd, sgd:lambda=0.1 or "
                                                       "torch.optim.SGD:lr=0.1.")] = "sgd",
    max_memory: o.MaxMemory = None,
    json_: o.Json = False,
    out: o.Out = None,
    *,
    given: dict[str, Any],
) -> None:
    """Train once and show the learning curve."""
    from superpos_cli.cli.prepare import prepare_outputs, prepare_resources, prepare_run
    from superpos_cli.spec.run import settings

    run = settings(given)
    from superpos_cli.spec.arms import parse_arm

    arm = parse_arm(optim, run.optimizer_overrides(), run.optimizer_protocol())
    prepare_outputs(out=out)
    prepare_run(run)
    _, budget = prepare_resources([run], 1, max_memory)

    # Everything above is checked without torch; the work starts here.
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from superpos_cli.cli.render import emit_json, epoch_table, stderr, stdout
    from superpos_cli.errors import TrialsFailed
    from superpos_cli.engine.distributed import init_from_env
    from superpos_cli.experiments.plan import check_trials, train_config
    from superpos_cli.errors import BadInput
    from superpos_cli.experiments.trials import TrialSpec, failed_record, run_trial

    spec = TrialSpec(run.task, run.task_options(), arm, train_config(run, run.seed()), memory_budget=budget)
    check_trials([spec])
    if (ddp := init_from_env()) is not None and not ddp.is_main:  # under torchrun: ranks > 0 train in step, silently
        run_trial(spec)
        return
    with Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.fields[detail]}"),
                  TimeElapsedColumn(), console=stderr, transient=True) as bar:
        bar_id = bar.add_task("train", total=spec.train.max_epochs, detail="")

        def progress(event: str, info: dict) -> None:
            if event == "eval":
                metric = info.get("val_accuracy", info.get("val_loss"))
                bar.update(bar_id, completed=info["epoch"], detail=f"epoch {info['epoch']:.1f}  val {metric:.4f}")

        try:
            record = run_trial(spec, progress)
        except BadInput:
            raise
        except Exception as err:  # a reason found only while running (e.g. out of memory): one line, exit 1
            record = failed_record(spec, err)
    metric = "epochs_to_target" if record.get("result", {}).get("target_metric") else "mean_train_loss"
    # Under torchrun: how many processes trained (batch_size is per process).
    record = {"kind": "train", "metric": metric, "world_size": ddp.world if ddp is not None else 1, **record}
    emit_json(record, json_, out)
    if record.get("status") == "failed":
        raise TrialsFailed(f"the run failed: {record.get('error')}")
    if json_:
        return
    result = record["result"]
    stdout.print(epoch_table(result, f"{run.task} with {arm.name}, seed {spec.seed}"))
    e2t = result["epochs_to_target"]
    if result["target_metric"]:
        reached = f"{e2t:.2f} epochs" if e2t is not None else f"not reached in {spec.train.max_epochs} epochs"
        stdout.print(f"{result['target_metric']} reached {spec.train.target:.0%} at: {reached}")
    finals = ", ".join(f"{k} {v:.4f}" for k, v in result["final_metrics"].items())
    unknown = record.get("task_description", {}).get("unknown_tokens")
    if unknown and run.values.get("data") is not None:
        description = record["task_description"]
        stdout.print(f"vocabulary: {description['vocab_size']} ids (cap {description['max_vocab']}); <unk> tokens: "
                     + ", ".join(f"{split} {u['count']} ({u['share']:.1%})" for split, u in unknown.items()),
                     highlight=False)
    stdout.print(f"final: {finals}; mean train loss {result['mean_train_loss']:.4f}; "
                 f"median epoch time {result['epoch_time_s']:.3f} s (evaluation excluded)")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
