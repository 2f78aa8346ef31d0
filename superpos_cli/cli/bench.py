"""`superpos bench`: CI regression timing; `superpos bench history`: a metric over commits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from superpos_cli.cli import options as o
from superpos_cli.cli.render import _num, emit_json, stderr, stdout
from superpos_cli.errors import BadInput

bench_app = typer.Typer(invoke_without_command=True, no_args_is_help=False, add_completion=False,
                        help="Regression timing (ratios measured side by side) and its history.")

SuitesFile = Annotated[Optional[Path], typer.Option("--suites-file", help="Suite file (default: benchmarks.toml).")]


def metrics_table(record: dict[str, Any]) -> Table:
    table = Table(title=f"bench {record['suite']} ({record['config']['repeats']} repeats, "
                        f"{record['config']['threads']} thread(s)) at {(record.get('commit') or 'no commit')[:10]}")
    for header in ("metric", "median", "min", "max", "iqr", "unit", "samples"):
        table.add_column(header, justify="left" if header in ("metric", "unit") else "right")
    for name, m in record["metrics"].items():
        samples = " ".join("-" if v is None else f"{v:.3g}" for v in m["samples"])
        table.add_row(name, _num(m["median"], 3), _num(m["min"], 3), _num(m["max"], 3), _num(m["iqr"], 3),
                      m["unit"], samples)
    return table


def comparison_table(comparison: dict[str, Any]) -> Table:
    regressed = comparison["regressed"]
    title = (f"REGRESSED: {', '.join(regressed)}" if regressed else "no regression") + \
        f" (vs baseline {(comparison.get('baseline_commit') or 'unknown')[:10]})"
    if comparison.get("other_machine"):
        title += f"; timing ratios not compared: {comparison['other_machine']} (refresh it with --save-baseline)"
    table = Table(title=title)
    for header in ("metric", "current", "baseline", "ratio", "threshold", "p (one-sided)", "test", "status"):
        table.add_column(header, justify="left" if header in ("metric", "test", "status") else "right")
    for d in comparison["decisions"]:
        style = "bold red" if d["status"] == "regressed" else "green" if d["status"] == "improved" else None
        table.add_row(d["name"], _num(d["current_median"], 3), _num(d["baseline_median"], 3),
                      _num(d["ratio"], 3) if d["ratio"] is not None else "inf",
                      f"{'+' if d['direction'] == 'smaller' else '-'}{d['threshold']:.0%}",
                      _num(d["p_value"], 3), d["test"], d["status"], style=style)
    return table


def _write(path: Path, data: Any, what: str) -> None:
    from superpos_cli.fileio import write_text

    write_text(path, json.dumps(data, indent=2) + "\n", what)


@bench_app.callback()
def bench(
    ctx: typer.Context,
    suite: Annotated[str, typer.Option("--suite", help="Bench suite from the suite file.")] = "ci",
    suites_file: SuitesFile = None,
    metrics: Annotated[Optional[str], typer.Option("--metrics", help="Comma-separated subset of the suite's metrics.")] = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", help="Samples per metric (default: the suite's).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Tiny sizes: a smoke run, not comparable to full-size baselines.")] = False,
    threads: Annotated[int, typer.Option("--threads", help="torch threads while timing.")] = 1,
    executor: o.Executor = "local",
    ray_address: o.RayAddress = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="Compare with this bench record; exit 1 on regression.")] = None,
    fail_on: Annotated[Optional[str], typer.Option("--fail-on", help="Default threshold, e.g. 10% or 0.1; the suite's per-metric thresholds win.")] = None,
    save_baseline: Annotated[Optional[Path], typer.Option("--save-baseline", help="Write this run's record (samples) to FILE.")] = None,
    github_json: Annotated[Optional[Path], typer.Option("--github-json", help="Write github-action-benchmark customSmallerIsBetter JSON.")] = None,
    store: o.Store = None,
    no_store: o.NoStore = False,
    json_: o.Json = False,
    out: o.Out = None,
) -> None:
    """Measure the suite's ratios; with --baseline, exit 1 if a metric regressed."""
    if ctx.invoked_subcommand is not None:
        return
    from superpos_cli.cli.prepare import open_store, prepare_outputs
    from superpos_cli.experiments.suites import get_suite

    bench_suite = get_suite(suite, suites_file, kind="bench")
    o.check_executor(executor, ray_address)
    store_file = prepare_outputs(out=out, save_baseline=save_baseline, github_json=github_json, store=store,
                                 no_store=no_store)
    from superpos_cli.experiments.bench import (
        BenchSpec, bench_document, gate, github_benchmark, load_record, parse_metrics, run_bench, sizes_for,
    )
    from superpos_cli.experiments.regression import parse_threshold

    spec = BenchSpec(suite=bench_suite, metrics=parse_metrics(metrics, bench_suite.metrics),
                     repeats=repeats if repeats is not None else bench_suite.repeats,
                     sizes=sizes_for(quick), threads=threads, quick=quick, executor=executor,
                     ray_address=ray_address)
    threshold = parse_threshold(fail_on) if fail_on is not None else bench_suite.fail_on
    reference = load_record(baseline) if baseline is not None else None
    if reference is not None and bool(reference.get("config", {}).get("quick")) != quick:
        raise BadInput(f"--baseline {baseline} was measured {'with' if not quick else 'without'} --quick; "
                       "sizes differ, so its ratios are not comparable with this run's")
    with stderr.status("bench") as status:
        record = run_bench(spec, progress=lambda message: status.update(f"bench: {message}"))
    with open_store(store_file) as results:
        if results is not None:
            record["key"] = results.append_bench(record, record.get("commit"))
    comparison = gate(record, reference, threshold, dict(bench_suite.thresholds)) if reference else None
    if save_baseline is not None:
        _write(save_baseline, record, "--save-baseline")
    if github_json is not None:
        _write(github_json, github_benchmark(record), "--github-json")
    emit_json(bench_document(record, comparison), json_, out)
    if not json_:
        stdout.print(metrics_table(record))
        if comparison:
            stdout.print(comparison_table(comparison))
    if comparison and comparison["regressed"]:
        raise typer.Exit(1)


@bench_app.command("history")
def history(
    metric: Annotated[str, typer.Option("--metric", help="Metric name, e.g. optimizer_step.")],
    store: o.Store = None,
    plot: o.Plot = None,
    json_: o.Json = False,
) -> None:
    """A bench metric over the stored runs (oldest first), with each run's commit."""
    store = o.store_path(store, False)
    if not store.exists():
        raise BadInput(f"results store {str(store)!r} does not exist; run `superpos bench` first")
    from superpos_cli.experiments.bench import history_plot
    from superpos_cli.experiments.store import ResultsStore

    with ResultsStore(store) as results:
        rows = results.bench_history(metric)
    if not rows:
        raise BadInput(f"no bench run in {str(store)!r} measured metric {metric!r}")
    if plot is not None:
        history_plot(rows, metric, plot)
    if json_:
        emit_json({"kind": "bench-history", "metric": metric, "runs": rows}, True, None)
        return
    table = Table(title=f"{metric} over {len(rows)} bench run(s)")
    for header in ("run", "created", "commit", "median", "min", "max", "n"):
        table.add_column(header, justify="left" if header in ("created", "commit") else "right")
    for i, row in enumerate(rows, start=1):
        table.add_row(str(i), row["created_at"][:19], (row["commit"] or "-")[:10], _num(row["median"], 3),
                      _num(row["min"], 3), _num(row["max"], 3), str(row["n"] or "-"))
    stdout.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
