"""``superpos bench``: regression metrics that hold still on noisy shared machines.

Every timing metric is a RATIO, method / reference, both timed in the same process
with their calls interleaved A B B A A B B A ... (ABBA cancels linear drift), so
the machine's speed, and whatever else runs on it, cancels to first order. One
sample per repeat: the method's median call over the reference's in that repeat.
All metrics are smaller-is-better except ``final_accuracy``.

* ``optimizer_step``: SuperpositionalAdam's paper preset (``sgd``, lambda 0.5,
  scope tensors) / ``torch.optim.Adam(fused=True)``, one step on the 16.8M
  parameter set of :mod:`.profile_optimizer` (fixed seeded gradients).
* ``attention``: QuantumAttention forward + backward, quantum (fourier, 4 qubits,
  depth 2) / classical (Phi off, the same weights), at B=32, H=4, T=64, d_k=16.
* ``fourier_circuits``: the fourier backend's evaluation of eight attention layers'
  8 x 524,288 circuits / one ``torch.cos`` pass over the same inputs into a
  preallocated buffer: the inverse of its circuits/s relative to a stable,
  machine-proportional reference kernel.
* ``epoch_overhead``: per-epoch training time on textcls, sgd+quantum /
  adam+classical (paired by round).
* ``convergence``: the suite's small compare (seeded, deterministic): per arm,
  ``convergence.<arm>.epochs_to_target`` (samples per seed, ``None`` = never
  reached) and ``convergence.<arm>.final_accuracy`` (larger is better). These are
  not noisy: the gate compares them by threshold only (:mod:`.regression`).

Timing runs on ``threads`` torch threads (default 1): on a 2-core machine shared
with other jobs, a second intra-op thread mostly waits for a busy core, which made
the ratios spread far more than the work they measure.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from superpos_cli.errors import BadInput
from superpos_cli.experiments.machine import git_commit, machine_info, versions
from superpos_cli.experiments.regression import LARGER, SMALLER, compare_records
from superpos_cli.experiments.timing import ratio_samples
from superpos_cli.fileio import save_with

METRICS = ("optimizer_step", "attention", "fourier_circuits", "epoch_overhead", "convergence")
# Evaluations per epoch of the convergence compare: 4 instead of the protocol's 10,
# since evaluating 1,000 validation examples 10 times an epoch costs more than the
# epoch's training; epochs-to-target is still interpolated between evaluations.
CONVERGENCE_EVALS_PER_EPOCH = 4

ProgressFn = Callable[[str], None]



@dataclass(frozen=True)
class BenchSizes:
    """Problem sizes; :data:`FULL` for CI, :data:`QUICK` for tests and smoke runs."""

    optimizer_shapes: tuple[tuple[int, ...], ...] = ((1024, 1024),) * 8 + ((4096, 1024),) * 2  # 16.8M
    optimizer_inner: int = 6  # steps of each side per repeat
    attention_shape: tuple[int, int, int, int] = (32, 4, 64, 16)  # (B, H, T, d_k)
    attention_inner: int = 12
    # 8 attention layers' scores per call: at one layer (~1 ms a call) scheduling
    # jitter on a loaded 2-core machine spread the ratio 50% run to run.
    fourier_n: int = 8 * 32 * 4 * 64 * 64
    fourier_inner: int = 10
    epoch_steps: int | None = None  # None: one full textcls epoch per call
    epoch_inner: int = 3  # calls of each side per repeat
    compare_overrides: dict[str, Any] = field(default_factory=dict)  # run options (spec names) over the suite's


FULL = BenchSizes()
QUICK = BenchSizes(
    # 2.1M: large enough for sgd's compiled fused kernel (the CI path); below 1M the
    # step is Python overhead and the ratio spread 2x within a run.
    optimizer_shapes=((1024, 1024),) * 2,
    optimizer_inner=10,
    attention_shape=(4, 4, 16, 16),
    attention_inner=6,
    fourier_n=4096,
    fourier_inner=6,
    epoch_steps=2,
    epoch_inner=2,
    compare_overrides={"seeds": 1, "max_epochs": 1, "n_train": 96, "n_val": 96},
)


@dataclass(frozen=True)
class BenchSpec:
    suite: Any  # superpos_cli.experiments.suites.BenchSuite
    metrics: tuple[str, ...]
    repeats: int
    sizes: BenchSizes = FULL
    threads: int = 1
    quick: bool = False
    executor: str = "local"  # where the convergence compare's trials run (experiments/executor.py)
    ray_address: str | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise BadInput(f"unknown bench metric {unknown[0]!r}; allowed: {', '.join(METRICS)}")
        if not self.metrics:
            raise BadInput(f"no bench metric selected; allowed: {', '.join(METRICS)}")
        if self.repeats < 1:
            raise BadInput(f"repeats must be >= 1, got {self.repeats}")
        if self.threads < 1:
            raise BadInput(f"threads must be >= 1, got {self.threads}")
        if "convergence" in self.metrics and getattr(self.suite, "compare", None) is None:
            raise BadInput(f"suite {self.suite.name!r} lists metric 'convergence' but has no compare table")


def parse_metrics(text: str | None, default: Sequence[str]) -> tuple[str, ...]:
    if text is None:
        return tuple(default)
    metrics = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    for metric in metrics:
        if metric not in METRICS:
            raise BadInput(f"unknown bench metric {metric!r}; allowed: {', '.join(METRICS)}")
    return metrics


# --------------------------------------------------------------------------- statistics


def sample_stats(samples: Sequence[float | None]) -> dict[str, Any]:
    """pytest-benchmark's stats of one metric; ``None`` samples (censored) count as
    +inf, and any statistic that comes out infinite is ``None``."""
    x = np.array([math.inf if v is None else float(v) for v in samples], dtype=float)

    def finite(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    with np.errstate(invalid="ignore"):
        q1, q3 = np.quantile(x, [0.25, 0.75]) if np.isfinite(x).all() else (math.inf, math.inf)
        return {
            "min": finite(x.min()),
            "max": finite(x.max()),
            "mean": finite(x.mean()),
            "median": finite(float(np.median(x))),
            "stddev": finite(float(x.std(ddof=1))) if x.size > 1 and np.isfinite(x).all() else (0.0 if x.size == 1 else None),
            "iqr": finite(float(q3 - q1)),
            "rounds": int(x.size),
        }


def metric_entry(samples: Sequence[float | None], unit: str, description: str, *,
                 direction: str = SMALLER, noisy: bool = True, **detail: Any) -> dict[str, Any]:
    return {"samples": list(samples), **sample_stats(samples), "unit": unit, "direction": direction,
            "noisy": noisy, "description": description, **({"detail": detail} if detail else {})}


# --------------------------------------------------------------------------- timing


def _timing_entry(ratios, method_s, reference_s, unit: str, description: str, **detail) -> dict[str, Any]:
    return metric_entry(ratios, unit, description, method_s_median=statistics.median(method_s),
                        reference_s_median=statistics.median(reference_s), **detail)


def bench_optimizer_step(repeats: int, sizes: BenchSizes) -> dict[str, Any]:
    from superpos_cli.optim.presets import build_optimizer
    from superpos_cli.spec.arms import parse_arm
    from superpos_cli.slowdown import slowed_optimizer
    from superpos_cli.tasks import OPTIMIZER_DEFAULTS

    generator = torch.Generator().manual_seed(0)
    base = [torch.randn(shape, generator=generator) for shape in sizes.optimizer_shapes]
    grads = [torch.randn(shape, generator=generator) for shape in sizes.optimizer_shapes]

    def params() -> torch.nn.ParameterList:
        ps = torch.nn.ParameterList(torch.nn.Parameter(t.clone()) for t in base)
        for p, g in zip(ps, grads):
            p.grad = g  # shared, read-only
        return ps

    # SUPERPOS_TEST_SLOWDOWN=optimizer=k: the timed side repeats its step k times (a wrapper).
    sgd = slowed_optimizer(build_optimizer(parse_arm("sgd", task_defaults=OPTIMIZER_DEFAULTS["textcls"]), params(),
                                           seed=0))
    adam = torch.optim.Adam(params(), lr=1e-3, fused=True)
    ratios, m, r = ratio_samples(sgd.step, adam.step, repeats, sizes.optimizer_inner)
    n = sum(t.numel() for t in base)
    return _timing_entry(ratios, m, r, "x fused Adam step",
                         f"sgd preset step / torch fused Adam step, {n / 1e6:.1f}M fp32 parameters",
                         parameters=n)


def bench_attention(repeats: int, sizes: BenchSizes) -> dict[str, Any]:
    """Reference: the same QuantumAttention with Phi off (the classical control arm),
    same weights and input, so the ratio isolates the cost of the quantum term.

    Measured against torch.nn.MultiheadAttention instead, the ratio spread 17% over
    five runs here (vs 5%): the shared code path makes the two sides' noise move
    together. The price: a slowdown in code both sides share cancels. A test slowdown
    (SUPERPOS_TEST_SLOWDOWN=attention=k) wraps the quantum side only: it runs its whole
    forward and backward k times.
    """
    from superpos_cli.models.attention import QuantumAttention
    from superpos_cli.quantum import CircuitSpec
    from superpos_cli.slowdown import slowed_module

    B, H, T, d_k = sizes.attention_shape
    torch.manual_seed(0)
    classical = QuantumAttention(H * d_k, H)
    quantum = QuantumAttention(H * d_k, H, circuit=CircuitSpec(n_qubits=4, depth=2), backend="fourier")
    quantum.load_state_dict(classical.state_dict(), strict=False)
    x = torch.randn(B, T, H * d_k)  # (B, T, D)
    quantum = slowed_module(quantum)

    def step(module) -> None:
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()

    ratios, m, r = ratio_samples(lambda: step(quantum), lambda: step(classical), repeats, sizes.attention_inner)
    return _timing_entry(ratios, m, r, "x classical attention",
                         f"QuantumAttention forward+backward, quantum (fourier, 4 qubits, depth 2) / Phi off, "
                         f"B={B} H={H} T={T} d_k={d_k}", shape=[B, H, T, d_k])


def bench_fourier_circuits(repeats: int, sizes: BenchSizes) -> dict[str, Any]:
    from superpos_cli.quantum import CircuitSpec, get_backend, prepare

    spec = CircuitSpec(n_qubits=4, depth=2)
    generator = torch.Generator().manual_seed(0)
    theta = (torch.rand(2, 4, generator=generator) * 2 - 1) * math.pi
    phi = (torch.rand(2, 4, generator=generator) * 2 - 1) * math.pi
    x = torch.randn(sizes.fourier_n, generator=generator) * 3  # attention-score-like inputs
    reason = get_backend("fourier").fallback_reason(spec)
    if reason is not None:
        raise BadInput(f"fourier_circuits: {reason}")
    circuit = prepare(spec, theta, phi, "fourier")
    buffer = torch.empty_like(x)

    def reference() -> torch.Tensor:
        # One vectorised cos over the same inputs into a preallocated buffer: a stable,
        # machine-proportional pass. (An eager torch version of the polynomial was the
        # first reference; its 16 MB temporaries made its time swing 87-157 ms run to
        # run while the fourier kernel held at 9 ms.)
        return torch.cos(x, out=buffer)

    with torch.no_grad():
        ratios, m, r = ratio_samples(lambda: circuit.evaluate(x), reference, repeats, sizes.fourier_inner,
                                     warmup=2 * sizes.fourier_inner)
    return _timing_entry(ratios, m, r, "x torch.cos pass",
                         f"fourier backend (4 qubits, depth 2) / one torch.cos pass over the same "
                         f"{sizes.fourier_n} inputs", circuits=sizes.fourier_n,
                         circuits_per_s=sizes.fourier_n / statistics.median(m))


def bench_epoch_overhead(repeats: int, sizes: BenchSizes) -> dict[str, Any]:
    from superpos_cli.experiments.profile import TrainingSteps

    reference = TrainingSteps("textcls", "adam", {"kind": "classical"})
    method = TrainingSteps("textcls", "sgd", {"kind": "quantum"})
    steps = sizes.epoch_steps or reference.steps_per_epoch()
    ratios, m, r = ratio_samples(lambda: method.run(steps), lambda: reference.run(steps), repeats,
                                 sizes.epoch_inner, warmup=1)
    return _timing_entry(ratios, m, r, "x adam+classical epoch",
                         f"textcls training time per epoch ({steps} steps), sgd+quantum / adam+classical",
                         steps=steps)


def bench_convergence(suite, sizes: BenchSizes, progress: ProgressFn, executor: str = "local",
                      ray_address: str | None = None) -> dict[str, dict[str, Any]]:
    from superpos_cli.experiments.compare import CompareSpec, run_compare
    from superpos_cli.experiments.plan import train_config
    from superpos_cli.spec.arms import parse_arm
    from superpos_cli.spec.run import parse_values

    compare = suite.compare
    run = compare.run.merged(parse_values({"evals_per_epoch": CONVERGENCE_EVALS_PER_EPOCH,
                                           **sizes.compare_overrides}))
    spec = CompareSpec(task=run.task, task_options=run.task_options(),
                       arms=[parse_arm(a, run.optimizer_overrides(), run.optimizer_protocol()) for a in compare.arms],
                       seeds=run.seeds(), train=train_config(run))

    def on_event(kind, trial, payload) -> None:
        if kind == "start":
            progress(f"convergence: {trial.arm.name} seed {trial.seed}")

    doc = run_compare(spec, on_event=on_event, executor=executor, ray_address=ray_address)
    out = {}
    for arm in doc["arms"]:
        if "epochs_to_target" not in arm:
            continue
        out[f"convergence.{arm['name']}.epochs_to_target"] = metric_entry(
            arm["epochs_to_target"]["per_seed"], "epochs",
            f"{run.task}: epochs to {spec.train.target:.0%} validation accuracy per seed (None: not reached "
            f"in {spec.train.max_epochs})", noisy=False, seeds=list(spec.seeds))
        out[f"convergence.{arm['name']}.final_accuracy"] = metric_entry(
            arm["final_accuracy"]["per_seed"], "accuracy", f"{run.task}: final validation accuracy per seed",
            direction=LARGER, noisy=False, seeds=list(spec.seeds))
    return out


_TIMING = {"optimizer_step": bench_optimizer_step, "attention": bench_attention,
           "fourier_circuits": bench_fourier_circuits, "epoch_overhead": bench_epoch_overhead}


def run_bench(spec: BenchSpec, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Measure every metric of ``spec``; returns the bench record (what the store keeps
    and ``--save-baseline`` writes)."""
    progress = progress or (lambda message: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    started = time.perf_counter()
    metrics: dict[str, dict[str, Any]] = {}
    wall: dict[str, float] = {}
    try:
        for name in spec.metrics:
            progress(name)
            metric_started = time.perf_counter()
            if name == "convergence":
                metrics.update(bench_convergence(spec.suite, spec.sizes, progress, spec.executor, spec.ray_address))
            else:
                metrics[name] = _TIMING[name](spec.repeats, spec.sizes)
            wall[name] = time.perf_counter() - metric_started
    finally:
        torch.set_num_threads(threads)
    commit = git_commit()
    return {
        "name": f"bench {spec.suite.name}",
        "suite": spec.suite.name,
        "status": "ok",
        "commit": commit,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {"repeats": spec.repeats, "threads": spec.threads, "quick": spec.quick,
                   "metrics": list(spec.metrics), "sizes": asdict(spec.sizes)},
        "metrics": metrics,
        "wall_s": time.perf_counter() - started,
        "metric_wall_s": wall,
        "machine": machine_info(),
        "versions": versions(),
    }


# --------------------------------------------------------------------------- gate and documents


def load_record(path: Path) -> dict[str, Any]:
    import json

    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"--baseline {path}: no such file (write one with --save-baseline)") from None
    except (OSError, ValueError) as err:
        raise BadInput(f"--baseline {path}: not a readable JSON bench record ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise BadInput(f"--baseline {path}: not a bench record (no 'metrics' table)")
    for name, metric in record["metrics"].items():
        if not isinstance(metric, dict) or not isinstance(metric.get("samples"), list):
            raise BadInput(f"--baseline {path}: metric {name!r} has no 'samples' list")
    return record


def gate(record: dict[str, Any], baseline: dict[str, Any], fail_on: float,
         thresholds: dict[str, float]) -> dict[str, Any]:
    """The comparison section of the bench document; ``regressed`` lists failing metrics.
    Against a baseline from another CPU model or kernel ISA the timing ratios are not
    gated (``other_machine`` says why): a ratio of two kernels moves with the vector
    width (torch.cos ran 4x faster against the fourier kernel on an AVX-512 Xeon than
    on an AVX2 EPYC), which is no regression of the code; refresh the baseline there."""
    from superpos_cli.experiments.machine import machine_difference

    other = machine_difference(record.get("machine", {}), baseline.get("machine", {}))
    decisions = compare_records(record, baseline, fail_on, thresholds, compare_timing=other is None)
    return {
        "fail_on": fail_on,
        "thresholds": thresholds,
        "baseline_commit": baseline.get("commit"),
        "other_machine": other,
        "decisions": [d.to_dict() for d in decisions],
        "regressed": [d.name for d in decisions if d.regressed],
        "missing_in_baseline": sorted(set(record["metrics"]) - set(baseline["metrics"])),
    }


def bench_document(record: dict[str, Any], comparison: dict[str, Any] | None = None) -> dict[str, Any]:
    """pytest-benchmark-like JSON: machine_info, commit_info, benchmarks[{name, stats, data}]."""
    benchmarks = []
    for name, metric in record["metrics"].items():
        stats = {k: metric[k] for k in ("min", "max", "mean", "median", "stddev", "iqr", "rounds")}
        benchmarks.append({
            "name": name,
            "fullname": f"{record['suite']}::{name}",
            "group": record["suite"],
            "stats": stats,
            "data": metric["samples"],
            "extra_info": {k: metric[k] for k in ("unit", "direction", "noisy", "description") if k in metric}
            | metric.get("detail", {}),
        })
    return {
        "kind": "bench",
        "metric": "ratio",  # every benchmark's stats are ratios or counts in its extra_info.unit
        "machine_info": {**record["machine"], "python_version": record["versions"].get("python")},
        "commit_info": {"id": record.get("commit")},
        "datetime": record["created_at"],
        "version": record["versions"].get("superpos"),
        "versions": record["versions"],
        "suite": record["suite"],
        "config": record["config"],
        "benchmarks": benchmarks,
        "comparison": comparison,
    }


def github_benchmark(record: dict[str, Any]) -> list[dict[str, Any]]:
    """github-action-benchmark ``customSmallerIsBetter`` entries: [{name, unit, value, range}].

    Larger-is-better metrics (final accuracy) are written as their complement
    (``final_error`` = 1 - accuracy) so every entry is smaller-is-better; a metric
    whose median is not finite (a run that never reached the target) is left out.
    """
    entries = []
    for name, metric in record["metrics"].items():
        value, low, high, unit = metric["median"], metric["min"], metric["max"], metric["unit"]
        if value is None:
            continue
        if metric.get("direction") == LARGER:
            name = name.replace("final_accuracy", "final_error")
            value, low, high, unit = 1 - value, 1 - high, 1 - low, "error rate"
        entry = {"name": f"{record['suite']}: {name}", "unit": unit, "value": value}
        if low is not None and high is not None:
            entry["range"] = f"{low:.4g} .. {high:.4g}"
        entry["extra"] = f"median of {metric['rounds']} samples; commit {record.get('commit') or 'unknown'}"
        entries.append(entry)
    return entries


def history_plot(rows: list[dict[str, Any]], metric: str, path: Path) -> None:
    """Median per run with a min..max bar, runs in store order, labelled by commit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(rows) + 2), 3.8))
    xs = list(range(len(rows)))
    med = [r["median"] for r in rows]
    low = [r["median"] - r["min"] if r["min"] is not None else 0 for r in rows]
    high = [r["max"] - r["median"] if r["max"] is not None else 0 for r in rows]
    ax.errorbar(xs, med, yerr=[low, high], fmt="o-", capsize=3, lw=1.4)
    ax.set_xticks(xs, [(r["commit"] or "?")[:7] for r in rows], rotation=45, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} over bench runs (median, min..max)")
    ax.grid(alpha=0.3)
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    try:  # atomic: the plot is complete or absent
        save_with(path, lambda handle: fig.savefig(handle, format=fmt, dpi=120, bbox_inches="tight"), "--plot")
    except ValueError as err:  # matplotlib: a format it does not know
        raise BadInput(f"--plot {path}: {err}") from None
    finally:
        plt.close(fig)


def sizes_for(quick: bool) -> BenchSizes:
    return QUICK if quick else FULL


__all__ = ["METRICS", "BenchSizes", "BenchSpec", "FULL", "QUICK", "bench_document", "gate", "github_benchmark",
           "history_plot", "load_record", "parse_metrics", "ratio_samples", "run_bench", "sample_stats",
           "sizes_for"]
