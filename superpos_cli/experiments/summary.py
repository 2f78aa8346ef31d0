"""Per-arm summaries of paired trials: the numbers every compare/ablate table shows.

Definitions (architecture.md, "What the numbers mean"):

* overhead = median epoch time of the arm / the reference arm's - 1
* break-even speedup = 1 + overhead
* achieved speedup = reference median epochs-to-target / the arm's
* time-to-target ratio = (arm epochs-to-target x arm epoch time) / (reference's)
* p-value: Mann-Whitney U on per-seed epochs-to-target (a miss ranks slower than any hit)
* verdict: from the paired bootstrap CI of the ratio of median epochs-to-target
  (tasks without a target: of the mean training loss, "equivalent" when the
  whole CI lies within +-0.5%); one seed gives no interval and no verdict
* diverged: runs whose mean training loss is not finite (NaN or inf). Their loss
  (and any non-finite final metric) is ``None`` per seed, left out of means and
  CIs, and ranks worse than every finite loss in the paired tests, as a miss does
  for epochs-to-target.
* perturb_ratio: per seed, the median over the run's evaluation windows of
  ||c Q|| / ||Adam's step|| on the scope (engine/loop.py telemetry), and its median
  over seeds; scope_share: the share of coordinates the scope selects. None for
  optimizers that are not SuperpositionalAdam (and for runs stored before telemetry).
* power: what this comparison could have detected, from its own seed spread
  (:func:`superpos_cli.engine.power.power_analysis`): the smallest effect on
  epochs-to-target (mean training loss without a target) its seeds declare at 80%
  power, and the seeds the paper's effect would need.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from superpos_cli.engine import power, stats
from superpos_cli.engine.loop import RunResult

# The paper's claimed effects (paper-spec.md §4), as ratios method / reference: text
# classification 7.4 -> 4.6 epochs to 90%, GSM8K Table I loss -4.1% (lambda 0.1).
PAPER_EPOCHS_RATIO = 4.6 / 7.4
PAPER_LOSS_RATIO = 1.0 - 0.041


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def _finite_or_none(values: list[float | None]) -> list[float | None]:
    return [v if v is not None and math.isfinite(v) else None for v in values]


def _mean_ci(per_seed: list[float | None], seed: int) -> dict[str, Any]:
    """mean, bootstrap CI and per-seed values; diverged seeds (None) are left out."""
    finite = [v for v in per_seed if v is not None]
    if not finite:
        return {"mean": None, "ci": [None, None], "per_seed": per_seed}
    return {"mean": statistics.fmean(finite), "ci": list(stats.bootstrap_ci(finite, "mean", seed=seed)),
            "per_seed": per_seed}


def _run_telemetry(run: RunResult) -> tuple[float | None, float | None]:
    """(median over epochs of each epoch's median perturb_ratio over its evaluation
    windows, scope_share). Per epoch first, so that every epoch weighs the same
    whether it was evaluated densely (before the target) or not (after it)."""
    ratios = [e.perturb_ratio for e in run.epochs if e.perturb_ratio is not None]
    shares = [e.scope_share for e in run.epochs if e.scope_share is not None]
    return (statistics.median(ratios) if ratios else None, shares[-1] if shares else None)


def _median_of(per_seed: list[float | None]) -> dict[str, Any]:
    present = [v for v in per_seed if v is not None]
    return {"median": statistics.median(present) if present else None, "per_seed": per_seed}


def arm_summary(runs: list[RunResult], max_epochs: int, seed: int = 0) -> dict[str, Any]:
    """Everything about one arm that does not need a reference arm."""
    metric = runs[0].target_metric
    losses = _finite_or_none([r.mean_train_loss for r in runs])
    out: dict[str, Any] = {"n_runs": len(runs), "diverged": losses.count(None)}
    if metric:
        out["final_accuracy"] = _mean_ci(_finite_or_none([r.final_metrics[metric] for r in runs]), seed)
        e2t = [r.epochs_to_target for r in runs]
        summary = stats.censored_summary(e2t, max_epochs, seed=seed)
        out["epochs_to_target"] = {
            "median": summary["median"],
            "ci": list(summary["ci"]),
            "success_rate": summary["success_rate"],
            "per_seed": e2t,
            "max_epochs": max_epochs,
        }
    times = [r.epoch_time_s for r in runs]
    out["epoch_time_s"] = {"median": statistics.median(times), "per_seed": times}
    out["mean_train_loss"] = _mean_ci(losses, seed)
    ratios, shares = zip(*(_run_telemetry(r) for r in runs))
    out["perturb_ratio"] = _median_of(list(ratios))
    out["scope_share"] = _median_of(list(shares))
    for name in sorted({k for r in runs for k in r.final_metrics} - {metric}):
        values = [r.final_metrics.get(name) for r in runs]
        values = [v for v in values if v is not None]
        if values:
            out.setdefault("final_metrics", {})[name] = {"mean": statistics.fmean(values), "per_seed": values}
    tokens = [r.tokens_per_s for r in runs if r.tokens_per_s is not None]
    if tokens:
        out["tokens_per_s"] = {"median": statistics.median(tokens), "per_seed": tokens}
    out["curves"] = [[(p.epoch, p.metrics.get(metric) if metric else p.train_loss) for p in r.evals] for r in runs]
    return out


ONE_SEED = "one seed: no interval"
# A loss ratio whose whole CI lies within 1 +- this is reported as equivalent: the
# paper's claimed effect is 4%, a deterministic 1e-7 difference is not an effect.
LOSS_EQUIVALENCE = 0.005

RELATIVE_FIELDS = ("overhead", "break_even_speedup", "achieved_speedup", "time_to_target_ratio", "p_value",
                   "verdict", "epochs_ratio_ci", "loss_change", "loss_ratio_ci", "power")


def relative_summary(arm: dict[str, Any], ref: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """The fields of ``arm`` relative to the reference arm (paired by seed)."""
    overhead = arm["epoch_time_s"]["median"] / ref["epoch_time_s"]["median"] - 1.0
    out: dict[str, Any] = {"overhead": overhead, "break_even_speedup": 1.0 + overhead}
    loss, ref_loss = arm["mean_train_loss"]["mean"], ref["mean_train_loss"]["mean"]
    out["loss_change"] = None if loss is None else _ratio(loss - ref_loss if ref_loss is not None else None, ref_loss)
    out["loss_ratio_ci"] = None
    if "epochs_to_target" not in arm:
        out.update(achieved_speedup=None, time_to_target_ratio=None, epochs_ratio_ci=None)
        losses, ref_losses = arm["mean_train_loss"]["per_seed"], ref["mean_train_loss"]["per_seed"]
        out["p_value"] = stats.mann_whitney(losses, ref_losses)
        ratio = stats.paired_ratio_ci(losses, ref_losses, seed=seed)
        out["loss_ratio_ci"] = list(ratio["ci"])
        if len(losses) < 2:
            out["verdict"] = ONE_SEED
        elif None not in ratio["ci"] and 1 - LOSS_EQUIVALENCE <= ratio["ci"][0] <= ratio["ci"][1] <= 1 + LOSS_EQUIVALENCE:
            out["verdict"] = f"equivalent (within {LOSS_EQUIVALENCE:.1%})"
        else:
            out["verdict"] = stats.verdict(*ratio["ci"], below="lower loss", above="higher loss")
        out["power"] = {"metric": "mean_train_loss", **power.power_analysis(
            losses, ref_losses, paper_ratio=PAPER_LOSS_RATIO, equivalence=LOSS_EQUIVALENCE, seed=seed)}
        return out
    e2t, ref_e2t = arm["epochs_to_target"], ref["epochs_to_target"]
    out["achieved_speedup"] = _ratio(ref_e2t["median"], e2t["median"])
    arm_time = None if e2t["median"] is None else e2t["median"] * arm["epoch_time_s"]["median"]
    ref_time = None if ref_e2t["median"] is None else ref_e2t["median"] * ref["epoch_time_s"]["median"]
    out["time_to_target_ratio"] = _ratio(arm_time, ref_time)
    out["p_value"] = stats.mann_whitney(e2t["per_seed"], ref_e2t["per_seed"])
    ratio = stats.paired_ratio_ci(e2t["per_seed"], ref_e2t["per_seed"], seed=seed)
    out["epochs_ratio_ci"] = list(ratio["ci"])
    out["verdict"] = ONE_SEED if len(e2t["per_seed"]) < 2 else stats.verdict(*ratio["ci"])
    out["power"] = {"metric": "epochs_to_target", **power.power_analysis(
        e2t["per_seed"], ref_e2t["per_seed"], paper_ratio=PAPER_EPOCHS_RATIO, max_value=e2t.get("max_epochs"),
        seed=seed)}
    return out


def summarize_arms(names: list[str], configs: list[dict[str, Any]], runs: list[list[RunResult]],
                   max_epochs: int, seed: int = 0) -> list[dict[str, Any]]:
    """One summary per arm; the first arm is the reference and has null relative fields."""
    arms = []
    for name, config, arm_runs in zip(names, configs, runs):
        summary = {"name": name, "config": config, **arm_summary(arm_runs, max_epochs, seed)}
        if arms:
            summary.update(relative_summary(summary, arms[0], seed))
        else:
            summary.update({field: None for field in RELATIVE_FIELDS})
        arms.append(summary)
    return arms
