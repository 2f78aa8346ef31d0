"""`superpos reproduce`: every claim of the paper and every open question, one command, one report."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from superpos_cli.cli import options as o

OutDir = Annotated[Optional[Path], typer.Option(
    "--out-dir", help="Folder for report.html and reproduce.json (created; default ./reproduce).")]
Quick = Annotated[bool, typer.Option(
    "--quick", help="Fewer seeds, epochs and GSM8K problems: about 10 minutes on 2 cores (the report says which).")]


def reproduce(
    quick: Quick = False,
    jobs: o.Jobs = None,
    max_memory: o.MaxMemory = None,
    executor: o.Executor = "local",
    ray_address: o.RayAddress = None,
    store: o.Store = None,
    no_store: o.NoStore = False,
    fresh: o.Fresh = False,
    out_dir: OutDir = None,
    suites_file: o.SuitesFile = None,
    json_: o.Json = False,
) -> None:
    """Reproduce the paper: its table, the lambda sweep, perturbations, 2x2, seeds, GSM8K, noise, cost; one HTML report."""
    from superpos_cli.cli.prepare import prepare_outputs, prepare_resources
    from superpos_cli.errors import BadInput
    from superpos_cli.experiments.reproduce import SCALES, plan

    out_dir = Path("reproduce") if out_dir is None else out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"--out-dir {str(out_dir)!r} is a file; give a folder")
    scale = SCALES["quick" if quick else "full"]
    planned = plan(scale, suites_file)
    jobs, budget = prepare_resources([run for item in planned for run in item.runs], jobs, max_memory)
    o.check_executor(executor, ray_address)
    out_dir.mkdir(parents=True, exist_ok=True)
    report, document = out_dir / "report.html", out_dir / "reproduce.json"
    store_file = prepare_outputs(out_dir=report, out=document, store=store, no_store=no_store)

    # Every step's settings are checked above without torch; check_plan builds
    # every trial's configuration, still before the first trial starts.
    from superpos_cli.cli.prepare import open_store
    from superpos_cli.cli.render import emit_json, stderr, trial_progress
    from superpos_cli.experiments.reproduce import check_plan, run_plan
    from superpos_cli.experiments.report import write_report
    from superpos_cli.experiments.trials import raise_if_failed

    check_plan(planned)
    command = _command(quick, jobs, store, no_store, out_dir, suites_file, executor, ray_address)
    holder: dict[str, Any] = {}

    def on_step(kind: str, item, info: dict[str, Any]) -> None:
        number = planned.index(item) + 1
        if kind == "start":
            holder["bar"] = trial_progress(max(item.n_trials(), 1), f"{number}/{len(planned)} {item.step.id}")
            holder["event"] = holder["bar"].__enter__()
            holder["t0"] = time.perf_counter()
        else:
            holder.pop("bar").__exit__(None, None, None)
            # One plain line per step, so a log (CI, nohup) is never silent.
            stderr.print(f"step {number}/{len(planned)} {item.step.id}: {info['executed']} run, {info['reused']} "
                         f"reused, {info['wall_s']:.0f} s", highlight=False)

    def on_event(kind: str, trial, payload: dict[str, Any]) -> None:
        holder["event"](kind, trial, payload)

    with open_store(store_file) as results:
        try:
            doc = run_plan(planned, scale, store=results, jobs=jobs, fresh=fresh, on_event=on_event,
                           on_step=on_step, command=command, executor=executor, ray_address=ray_address,
                           memory_budget=budget)
        finally:
            if "bar" in holder:
                holder.pop("bar").__exit__(None, None, None)
    emit_json(doc, json_, document)
    write_report(doc, report)
    if not json_:
        from rich.markup import escape

        from superpos_cli.cli.render import stdout

        for claim in doc["claims"]:
            stdout.print(f"[bold]{escape(claim['status'])}[/bold]  {escape(claim['line'])}", highlight=False)
        stdout.print(f"{doc['executed']} trials run, {doc['reused']} reused, {doc['wall_s']:.0f} s; "
                     f"report: {report}", highlight=False)
    for entry in doc["steps"]:
        if entry["kind"] != "profile":
            raise_if_failed(entry["doc"])


def _command(quick: bool, jobs: int, store: Path | None, no_store: bool, out_dir: Path,
             suites_file: Path | None, executor: str = "local", ray_address: str | None = None) -> str:
    """The command line that reruns this reproduction (and reuses its stored trials)."""
    parts = ["superpos", "reproduce", *(["--quick"] if quick else []), "--jobs", str(jobs)]
    if executor != "local":
        parts += ["--executor", executor, *(["--ray-address", ray_address] if ray_address else [])]
    if no_store:
        parts.append("--no-store")
    elif store is not None:
        parts += ["--store", str(store)]
    if suites_file is not None:
        parts += ["--suites-file", str(suites_file)]
    return " ".join(shlex.quote(p) for p in parts + ["--out-dir", str(out_dir)])


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce)
