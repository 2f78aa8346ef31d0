"""Rendering of result records: rich tables on stdout, progress on stderr, JSON.

Every table is drawn from the same record that ``--json`` prints (house rule 5).
"""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from superpos_cli.errors import BadInput

# Wide tables stay one line per row when stdout is a file or a pipe (rich would
# otherwise wrap them at 80 columns); a terminal keeps its own width.
stdout = Console(width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True)


def _num(x: float | None, digits: int = 2, pct: bool = False, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if pct:
        return f"{x * 100:+.{digits - 1}f}%" if signed else f"{x * 100:.{digits - 1}f}%"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _epochs(x: float | None, max_epochs: int) -> str:
    return f"> {max_epochs}" if x is None else f"{x:.2f}"


def _ci(ci: list | tuple | None, fmt) -> str:
    if not ci:
        return ""
    return f" [{fmt(ci[0])}, {fmt(ci[1])}]"


def emit_json(document: dict[str, Any], to_stdout: bool, out: Path | None) -> None:
    """Print and/or write the JSON document (atomically: complete or absent); a bad
    --out path is bad input."""
    text = json.dumps(document, indent=2, default=float)
    if out is not None:
        from superpos_cli.fileio import write_text

        write_text(out, text + "\n", "--out")
    if to_stdout:
        print(text)


@contextmanager
def trial_progress(total: int, label: str = "trials") -> Iterator[Any]:
    """A progress bar over trials on stderr; yields an on_event callback for the executor.

    When stderr is not a terminal (a CI log, ``nohup``), one plain line per finished
    trial instead: count, trial, its own time, and the time left at the rate so far.
    """
    if not stderr.is_terminal:
        yield _plain_progress(total, label)
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=stderr,
                  transient=True) as bar:
        task_id = bar.add_task(label, total=total, detail="")

        def on_event(kind: str, trial, payload: dict[str, Any]) -> None:
            cell = f"{trial.cell or trial.arm.name} seed {trial.seed}"
            if kind in ("done", "cached"):
                bar.advance(task_id)
                bar.update(task_id, detail=f"{cell} {'(stored)' if kind == 'cached' else 'done'}")
            elif kind == "start":
                bar.update(task_id, detail=cell)
            elif kind == "progress" and payload.get("event") == "eval":
                metric = payload.get("val_accuracy", payload.get("val_loss"))
                bar.update(task_id, detail=f"{cell} epoch {payload['epoch']:.1f} val {_num(metric, 3)}")

        yield on_event


def _plain_progress(total: int, label: str):
    """on_event writing ``label: 3/10 sgd seed 2 done in 8.1 s (12 s so far, about 28 s left)``."""
    import time

    started, count = time.perf_counter(), [0]

    def on_event(kind: str, trial, payload: dict[str, Any]) -> None:
        if kind not in ("done", "cached"):
            return
        count[0] += 1
        elapsed = time.perf_counter() - started
        cell = f"{trial.cell or trial.arm.name} seed {trial.seed}"
        if kind == "cached":
            what = "from the store"
        else:
            what = payload.get("status", "done") + (f" in {payload['wall_s']:.1f} s" if "wall_s" in payload else "")
        left = elapsed / count[0] * (total - count[0])
        stderr.print(f"{label}: {count[0]}/{total} {cell} {what} ({elapsed:.0f} s so far, about {left:.0f} s left)",
                     highlight=False, markup=False)

    return on_event


def unreached_target_line(entries: list[dict[str, Any]], target: float | None, max_epochs: int) -> str | None:
    """One line when no arm or cell reached ``target`` in any seed: the highest target
    every seed of every entry reached (from the validation curves), instead of a table
    of censored cells; None otherwise."""
    if target is None or not entries:
        return None
    if any(e.get("epochs_to_target", {}).get("success_rate") for e in entries):
        return None
    peaks = [max(v for _, v in curve) for e in entries for curve in e.get("curves", []) if curve]
    if not peaks:
        return None
    reachable = math.floor(min(peaks) * 100) / 100
    return (f"no arm reached {target:.0%} in {max_epochs} epochs in any seed; every seed of every arm reached "
            f"{reachable:.0%} (rerun with --target {reachable:.2f})")


def skipped_cells_line(doc: dict[str, Any]) -> str | None:
    """One line naming the grid's cells left out because they set two options that
    exclude each other (ablate's ``skipped_cells``); None when there are none."""
    skipped = doc.get("skipped_cells") or []
    if not skipped:
        return None
    from superpos_cli.spec.grid import format_value
    from superpos_cli.spec.run import exclusive_conflict

    pairs = sorted({exclusive_conflict(cell) for cell in skipped} - {None})
    why = "; ".join(f"--{a.replace('_', '-')} and --{b.replace('_', '-')} exclude each other" for a, b in pairs)
    # The exclusive options and what varies among the skipped cells, not one-value settings.
    shown = {name for pair in pairs for name in pair}
    shown |= {k for k in skipped[0] if len({format_value(cell.get(k)) for cell in skipped}) > 1}
    cells = "; ".join(",".join(f"{k}={format_value(v)}" for k, v in cell.items() if k in shown) for cell in skipped)
    return f"{len(skipped)} cell(s) of the grid not run ({why}): {cells}"


def _accuracy_cells(summary: dict[str, Any], max_epochs: int) -> list[str]:
    """final accuracy [CI], epochs to target [CI], reached, epoch s, overhead of an arm or cell."""
    acc, e2t = summary["final_accuracy"], summary["epochs_to_target"]
    return [
        _num(acc["mean"], 2, pct=True) + _ci(acc["ci"], lambda v: _num(v, 2, pct=True)),
        _epochs(e2t["median"], max_epochs) + _ci(e2t["ci"], lambda v: _epochs(v, max_epochs)),
        f"{e2t['success_rate']:.0%}" + (f" ({summary['diverged']} diverged)" if summary.get("diverged") else ""),
        _num(summary["epoch_time_s"]["median"], 3),
        _num(summary["overhead"], 1, pct=True, signed=True),
    ]


def compare_table(doc: dict[str, Any]) -> Table:
    """One row per arm, then the paper's reference rows."""
    max_epochs = doc["max_epochs"]
    accuracy_task = doc["metric"] == "epochs_to_target"
    target = doc["target"]
    table = Table(title=f"compare on {doc['task']} over {len(doc['seeds'])} seeds"
                  + (f" (target {target:.0%})" if accuracy_task else ""))
    if accuracy_task:
        columns = ["arm", "final acc [95% CI]", f"epochs to {target:.0%} [95% CI]", "reached", "epoch s",
                   "overhead", "break-even", "achieved", "time ratio", "p", PERTURB_COLUMN, "verdict"]
    else:
        columns = ["arm", "mean train loss [95% CI]", "vs first", "val loss", "val acc", "tokens/s",
                   "epoch s", "overhead", "p", PERTURB_COLUMN, "verdict"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("arm", "verdict") else "right")
    for arm in doc["arms"]:
        if accuracy_task:
            table.add_row(
                arm["name"],
                *_accuracy_cells(arm, max_epochs),
                _num(arm["break_even_speedup"]),
                _num(arm["achieved_speedup"]),
                _num(arm["time_to_target_ratio"]),
                _num(arm["p_value"], 3),
                _small(arm.get("perturb_ratio", {}).get("median")),
                arm["verdict"] or "reference",
            )
        else:
            loss = arm["mean_train_loss"]
            finals = arm.get("final_metrics", {})
            tokens = arm.get("tokens_per_s")
            table.add_row(
                arm["name"],
                _num(loss["mean"], 4) + _ci(loss["ci"], lambda v: _num(v, 4)),
                _num(arm["loss_change"], 2, pct=True, signed=True),
                _num(finals.get("val_loss", {}).get("mean"), 4),
                _num(finals.get("val_accuracy", {}).get("mean"), 2, pct=True),
                _num(tokens["median"], 0) if tokens else "-",
                _num(arm["epoch_time_s"]["median"], 2),
                _num(arm["overhead"], 1, pct=True, signed=True),
                _num(arm["p_value"], 3),
                _small(arm.get("perturb_ratio", {}).get("median")),
                arm["verdict"] or "reference",
            )
    paper = doc.get("paper")
    if paper:
        table.add_section()
        for row in paper["rows"]:
            if accuracy_task:
                table.add_row(row["name"], _num(row.get("final_accuracy"), 2, pct=True),
                              _num(row.get("epochs_to_target")), "", "",
                              _num(row.get("overhead"), 1, pct=True, signed=True),
                              _num(row.get("break_even_speedup")), _num(row.get("achieved_speedup")),
                              _num(row.get("time_to_target_ratio")), "", "", "paper, reported", style="dim")
            else:
                table.add_row(row["name"], _num(row.get("mean_train_loss"), 4),
                              _num(row.get("loss_change"), 2, pct=True, signed=True), "", "", "", "", "", "", "",
                              "paper, reported", style="dim")
    reference = doc["arms"][0]["name"]
    lines = [power_line(arm["name"], reference, arm["power"]) for arm in doc["arms"][1:] if arm.get("power")]
    if lines:
        table.caption = "\n".join(lines)
        table.caption_justify = "left"
    return table


# Median over seeds of ||c Q|| / ||Adam's step|| on the scope (summary.py, "perturb_ratio").
PERTURB_COLUMN = "Q/Adam step"


def _small(x: float | None) -> str:
    """Two significant digits of a ratio that may be far below 1 (3.2e-04)."""
    return "-" if x is None else f"{x:.2g}"


def power_line(name: str, reference: str, p: dict[str, Any]) -> str:
    """One line of what the run could have detected (summary.py "power" record):
    the verdict's detectable ratio at this run's seeds, its real false-positive
    rate, Mann-Whitney's, and the seeds the paper's effect needs."""
    if p["note"]:
        return f"power {name} vs {reference}: {p['note']}"
    what = "epochs ratio" if p["metric"] == "epochs_to_target" else "loss ratio"

    def detect(r: float | None) -> str:
        return "none" if r is None else f"<= {r:.3g}"

    def needs(n: int | None) -> str:
        return f"> {p['max_seeds']}" if n is None else str(n)

    mw = p["mann_whitney"]
    # Below a valid seed count the run "detects" effects that the seeds-needed count
    # (valid counts only) says it cannot: say so, or the two numbers read as a clash.
    invalid = f", above {p['alpha']:.0%}: too few seeds for a valid verdict" if p.get("valid_level") is False else ""
    return (f"power {name} vs {reference} ({p['target_power']:.0%}, simulated): {p['n_seeds']} seeds detect {what} "
            f"{detect(p['detectable_ratio'])} (false positives {p['false_positive_rate']:.0%}, nominal "
            f"{p['alpha'] / 2:.1%}{invalid}; Mann-Whitney {detect(mw['detectable_ratio'])}); paper's "
            f"{p['paper_ratio']:.3g} needs {needs(p['seeds_for_paper_ratio'])} seeds (Mann-Whitney "
            f"{needs(mw['seeds_for_paper_ratio'])}) at <= {p['alpha']:.0%} false positives; log-SD {p['log_sd']:.2g}")


def epoch_table(result: dict[str, Any], title: str) -> Table:
    """One row per epoch; "Q/Adam step" is the epoch's median over its evaluation
    windows of ||c Q|| / ||Adam's step|| on the scope ("-": not SuperpositionalAdam)."""
    share = next((e.get("scope_share") for e in result["epochs"] if e.get("scope_share") is not None), None)
    if share is not None:
        title += f" (scope: {share:.1%} of coordinates)"
    table = Table(title=title)
    for col in ("epoch", "train loss", "val accuracy", "val loss", "epoch time (s)", PERTURB_COLUMN):
        table.add_column(col, justify="right")
    for epoch in result["epochs"]:
        m = epoch["metrics"]
        table.add_row(str(epoch["epoch"]), _num(epoch["train_loss"], 4), _num(m.get("val_accuracy"), 2, pct=True),
                      _num(m.get("val_loss"), 4), _num(epoch["train_time_s"], 3), _small(epoch.get("perturb_ratio")))
    return table


def ablate_table(doc: dict[str, Any]) -> Table:
    """One row per ablation cell; p-values Holm-adjusted across the cells compared
    with the control; "best" only where the experiments module found one."""
    max_epochs = doc["max_epochs"]
    accuracy_task = doc["metric"] == "epochs_to_target"
    target = doc["target"]
    compared = len(doc["cells"]) - 1
    table = Table(title=f"ablate {doc['base']} on {doc['task']} over {len(doc['seeds'])} seeds"
                  + (f" (target {target:.0%})" if accuracy_task else "")
                  + f"; control {doc['control']}; p Holm-adjusted over {compared} cell{'s' * (compared != 1)}")
    if accuracy_task:
        columns = ["cell", "final acc [95% CI]", f"epochs to {target:.0%} [95% CI]", "reached", "epoch s",
                   "overhead", "epochs ratio [95% CI]", "p (Holm)", "verdict", ""]
    else:
        columns = ["cell", "mean train loss [95% CI]", "vs control", "epoch s", "overhead", "p (Holm)", "verdict", ""]
    for col in columns:
        table.add_column(col, justify="left" if col in ("cell", "verdict", "") else "right")
    for cell in doc["cells"]:
        mark = "best" if cell["best"] else ""
        verdict = "control" if cell["control"] else cell["verdict"]
        if accuracy_task:
            ratio = cell["epochs_ratio_ci"]
            table.add_row(
                cell["label"],
                *_accuracy_cells(cell, max_epochs),
                "-" if ratio is None else "[" + ", ".join("inf" if v is None else _num(v) for v in ratio) + "]",
                _num(cell["p_holm"], 3),
                verdict,
                mark,
                style="bold" if mark else None,
            )
        else:
            loss = cell["mean_train_loss"]
            table.add_row(
                cell["label"],
                _num(loss["mean"], 4) + _ci(loss["ci"], lambda v: _num(v, 4)),
                _num(cell["loss_change"], 2, pct=True, signed=True),
                _num(cell["epoch_time_s"]["median"], 2),
                _num(cell["overhead"], 1, pct=True, signed=True),
                _num(cell["p_holm"], 3),
                verdict,
                mark,
                style="bold" if mark else None,
            )
    alpha = doc.get("alpha", 0.05)
    table.caption = (f"best: {doc['best']} (ratio CI excludes 1 and Holm p <= {alpha:g})" if doc["best"]
                     else f"no cell beats the control beyond doubt (ratio CI excluding 1 and Holm p <= {alpha:g})")
    records = [cell["power"] for cell in doc["cells"] if cell.get("power")]
    powers = [p for p in records if not p["note"]]
    if powers:
        table.caption += "\n" + _power_range(powers, len(doc["seeds"]))
    elif records:
        table.caption += f"\npower: {records[0]['note']}"
    return table


def _power_range(powers: list[dict[str, Any]], seeds: int) -> str:
    """One line over an ablation's cells: the range of their detectable ratios and
    of the seeds the paper's effect needs (summary.py "power" records)."""
    what = "epochs ratio" if powers[0]["metric"] == "epochs_to_target" else "loss ratio"
    ratios = [p["detectable_ratio"] for p in powers if p["detectable_ratio"] is not None]
    needs = [p["seeds_for_paper_ratio"] for p in powers]
    detect = f"{what} <= {min(ratios):.3g}..{max(ratios):.3g}" if ratios else "nothing down to 0.05"
    known = [n for n in needs if n is not None]
    most = f"> {powers[0]['max_seeds']}"
    seeds_text = (f"{min(known)}..{max(known)} seeds" if known else "") + (f" ({most} for some)" if None in needs else "")
    alpha = powers[0]["alpha"]
    invalid = any(p.get("valid_level") is False for p in powers)
    level = f" (false positives above {alpha:.0%} at {seeds} seeds: too few for a valid verdict)" if invalid else ""
    return (f"power at {powers[0]['target_power']:.0%} (simulated, bootstrap verdict): {seeds} seeds detect {detect} "
            f"across cells{level}; the paper's effect ({powers[0]['paper_ratio']:.3g}) needs "
            f"{seeds_text.strip() or most + ' seeds'} at <= {alpha:.0%} false positives")
