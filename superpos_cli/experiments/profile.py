"""``superpos profile``: where the time goes, part by part, as ratios measured side by side.

Parts (each a list of row dicts carrying ``median``/``min``/``max`` over repeats and
the ratio to that part's reference, timed in the same process):

* ``circuit``: circuits/s per backend, ``ratio_vs_aer`` (:mod:`.profile_quantum`).
* ``attention``: forward + backward of QuantumAttention, quantum vs classical, at
  the textcls shape and at B=32, H=4, T=64, d_k=16; ``ratio_vs_classical``.
* ``noise``: forward + backward of noisy (depolarizing, readout error, a device
  snapshot if the ``devices`` extra is installed) and shot-sampled (1024 shots)
  quantum attention beside the noiseless one at B=32, H=4, T=64, d_k=16;
  ``ratio_vs_noiseless_prob`` (:mod:`.profile_noise`).
* ``preparation``: the fourier coefficients' per-step cost (prepare + backward) as
  qubits grow (2..8 by default), noiseless and depolarizing; ``ratio_vs_noiseless``.
* ``optimizer``: one step on 16.8M parameters per variant, ``ratio_vs_fused_adam``
  and kernel compile time (:mod:`.profile_optimizer`).
* ``epoch`` (here): per-epoch training time on textcls of adam+classical,
  adam+quantum, sgd+classical, sgd+quantum; ``overhead`` = the median over rounds
  of the epoch / adam+classical's epoch in the same round, - 1, and
  ``break_even_speedup`` = 1 + overhead.
* ``lm`` (only when asked): training tokens/s of the built-in GSM8K GPT, adam vs
  sgd; ``ratio_vs_adam`` is sgd's tokens/s over adam's.

Threads: the CLI times on 1 torch thread by default (``--threads N`` for more). On
this 2-core machine shared with other jobs, 2 threads made single calls swing 50x
(attention forward+backward 5 ms to 250 ms within one run: an OpenMP thread spinning
for a busy core), where 1 thread kept min and max within a few percent.

Each part also gets its peak resident memory (``peak_memory_mb``: the largest RSS a
background sampler saw while the part ran; RSS includes what earlier parts left
allocated, so read differences, not absolutes).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Mapping

import psutil
import torch

from superpos_cli.errors import BadInput
from superpos_cli.experiments.machine import machine_info, versions
from superpos_cli.experiments.timing import interleaved_runs, interleaved_steps, paired_ratio, summary, synchronize

PARTS = ("circuit", "attention", "noise", "preparation", "optimizer", "epoch", "lm")
DEFAULT_PARTS = ("circuit", "attention", "noise", "preparation", "optimizer", "epoch")
# (optimizer preset, attention kind); the first is the reference.
EPOCH_CONFIGS = (("adam", "classical"), ("adam", "quantum"), ("sgd", "classical"), ("sgd", "quantum"))
# The reference built and timed a second time beside the others: its overhead is what
# this machine's noise alone reads in the same run (A/A). On the 2-core VM it spread
# -1.6% to +0.9% over 8 blocks, as wide as sgd+classical's whole cost (-0.6% to +0.6%
# beside it), so an arm within that much of it is within noise of costing nothing.
EPOCH_CONTROL = "adam+classical again"
# What profile_epoch times, by row name, in row order: the reference, its control, the rest.
EPOCH_RUNS = {name: config for name, config in [
    (f"{EPOCH_CONFIGS[0][0]}+{EPOCH_CONFIGS[0][1]}", EPOCH_CONFIGS[0]), (EPOCH_CONTROL, EPOCH_CONFIGS[0]),
    *((f"{arm}+{attention}", (arm, attention)) for arm, attention in EPOCH_CONFIGS[1:])]}
# (B, H, T, d_k): the textcls model (batch 32, 4 heads, d_model 64, <= 64 tokens) and
# the fixed reference shape (the same numbers today; both kept so either can move).
TEXTCLS_ATTENTION_SHAPE = (32, 4, 64, 16)
REFERENCE_ATTENTION_SHAPE = (32, 4, 64, 16)

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class ProfileSpec:
    qubits: tuple[int, ...] = (4,)
    depths: tuple[int, ...] = (2,)
    parts: tuple[str, ...] = DEFAULT_PARTS
    repeats: int = 5
    circuit_batch: int | None = None  # None: one attention layer's scores (profile_quantum's default)
    attention_shapes: tuple[tuple[int, int, int, int], ...] = field(
        default_factory=lambda: tuple(dict.fromkeys((TEXTCLS_ATTENTION_SHAPE, REFERENCE_ATTENTION_SHAPE))))
    preparation_qubits: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
    optimizer_shapes: tuple[tuple[int, ...], ...] | None = None  # None: the 16.8M set
    epoch_steps: int | None = None  # None: one full epoch per sample
    lm_steps: int = 8
    seed: int = 0
    threads: int | None = None  # torch threads while timing; None: leave torch's setting
    # Where circuit (fourier, torch), attention, optimizer, epoch and lm run; noise and
    # preparation (numpy transfer matrices) stay on the CPU.
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.qubits or any(q < 1 for q in self.qubits):
            raise BadInput(f"qubits must be integers >= 1, got {','.join(map(str, self.qubits)) or 'none'}")
        if not self.depths or any(d < 1 for d in self.depths):
            raise BadInput(f"depth must be integers >= 1, got {','.join(map(str, self.depths)) or 'none'}")
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise BadInput(f"unknown part {unknown[0] if unknown else '(none)'!r}; allowed: {', '.join(PARTS)}")
        if self.repeats < 1:
            raise BadInput(f"repeats must be >= 1, got {self.repeats}")
        if self.threads is not None and self.threads < 1:
            raise BadInput(f"threads must be >= 1, got {self.threads}")
        if self.epoch_steps is not None and self.epoch_steps < 1:
            raise BadInput(f"epoch steps must be >= 1, got {self.epoch_steps}")


def quick_spec(**values: Any) -> ProfileSpec:
    """A smoke-run spec: tiny batches and shapes, two steps per epoch sample, two repeats."""
    values = {"repeats": 2, **values}
    return ProfileSpec(circuit_batch=4096, attention_shapes=((4, 4, 16, 16),), preparation_qubits=(2, 3),
                       optimizer_shapes=((256, 256),) * 4, epoch_steps=values.pop("epoch_steps", None) or 2,
                       lm_steps=2, **values)


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    """``"2,4,8"`` -> (2, 4, 8); BadInput naming ``what`` otherwise."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BadInput(f"{what} must be comma-separated integers such as 2,4,8, got {text!r}") from None
    if not values:
        raise BadInput(f"{what} is empty; give integers such as 2,4,8")
    return values


def parse_parts(text: str) -> tuple[str, ...]:
    parts = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    if text.strip().lower() == "all":
        return DEFAULT_PARTS
    for part in parts:
        if part not in PARTS:
            raise BadInput(f"unknown part {part!r}; allowed: {', '.join(PARTS)} (or all)")
    if not parts:
        raise BadInput(f"--parts is empty; allowed: {', '.join(PARTS)}")
    return parts


# --------------------------------------------------------------------------- memory


class PeakRSS:
    """``with PeakRSS() as peak: ...; peak.mb``: largest RSS sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self._process = psutil.Process()
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self._peak = max(self._peak, self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakRSS":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def mb(self) -> float:
        return self._peak / 2**20


# --------------------------------------------------------------------------- epoch


class TrainingSteps:
    """A textcls (or any task) model and optimizer that can run ``n`` timed training steps.

    The same steps as :func:`superpos_cli.engine.loop.train` (forward, backward,
    optimizer step, zero_grad), evaluation excluded; batches continue across epochs
    from a seeded order.
    """

    def __init__(self, task_name: str, arm: str, task_options: dict[str, Any], seed: int = 0):
        from superpos_cli.optim.presets import build_optimizer
        from superpos_cli.spec.arms import parse_arm
        from superpos_cli.tasks import OPTIMIZER_DEFAULTS, build_task

        self.task = build_task(task_name, seed, task_options)
        torch.manual_seed(seed)
        self.model = self.task.build_model()
        self.optimizer = build_optimizer(parse_arm(arm, task_defaults=OPTIMIZER_DEFAULTS.get(task_name)),
                                         self.model, seed=seed)
        self._order = torch.Generator().manual_seed(seed)
        self._batches: Iterator[Any] = iter(())
        self.batch_tokens = getattr(self.task, "batch_tokens", None)
        self.device = next(self.model.parameters()).device
        self.model.train()

    def steps_per_epoch(self) -> int:
        return self.task.steps_per_epoch()

    def _next(self) -> Any:
        for _ in range(2):
            try:
                return next(self._batches)
            except StopIteration:
                self._batches = iter(self.task.batches(self._order))
        raise RuntimeError("task yields no batches")

    def run(self, steps: int) -> tuple[float, int]:
        """(seconds, tokens) of ``steps`` training steps; batches are drawn outside the clock."""
        elapsed, tokens = 0.0, 0
        for _ in range(steps):
            batch = self._next()
            synchronize(self.device)
            start = time.perf_counter()
            loss = self.task.training_loss(self.model, batch)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            synchronize(self.device)
            elapsed += time.perf_counter() - start
            if self.batch_tokens:
                tokens += self.batch_tokens(batch)
        return elapsed, tokens


def epoch_times(configs: Mapping[str, tuple[str, str]], repeats: int, steps: int | None = None, seed: int = 0,
                task_options: dict[str, Any] | None = None, warmup: int = 1) -> tuple[dict[str, list[float]], int]:
    """Seconds of training per epoch (or per ``steps`` steps) for each named (arm, attention);
    the first name is the reference.

    Returns ({name: samples}, steps per sample). The configs take turns
    step by step (:func:`interleaved_steps`); a sample is one config's summed steps
    of a round. Warmup rounds are untimed: they allocate optimizer state and compile
    the fourier kernels.
    """
    runners: dict[str, TrainingSteps] = {}
    for name, (arm, attention) in configs.items():
        runners[name] = TrainingSteps("textcls", arm, {"kind": attention, **(task_options or {})}, seed)
    n = steps or next(iter(runners.values())).steps_per_epoch()
    times = interleaved_steps({name: (lambda r=r: r.run(1)[0]) for name, r in runners.items()}, n, repeats, warmup)
    return times, n


def profile_epoch(repeats: int = 5, steps: int | None = None, seed: int = 0,
                  device: str = "cpu") -> list[dict[str, Any]]:
    """One row per entry of :data:`EPOCH_RUNS`: each config of :data:`EPOCH_CONFIGS`, and
    the :data:`EPOCH_CONTROL` row (``"control": True``) second."""
    times, n = epoch_times(EPOCH_RUNS, repeats, steps, seed, task_options={"device": device})
    reference = next(iter(times.values()))
    rows = []
    for name, samples in times.items():
        arm, attention = EPOCH_RUNS[name]
        overhead = paired_ratio(samples, reference) - 1
        rows.append({"part": "epoch", "name": name, "optimizer": arm, "attention": attention, "steps": n,
                     "device": device, "control": name == EPOCH_CONTROL,
                     **summary(samples), "overhead": overhead, "break_even_speedup": 1 + overhead})
    return rows


# --------------------------------------------------------------------------- lm


def lm_available() -> bool:
    try:
        import superpos_cli.tasks.gsm8k  # noqa: F401
    except ImportError:
        return False
    return True


def profile_lm(repeats: int = 5, steps: int = 8, seed: int = 0, limit: int = 64,
               device: str = "cpu") -> list[dict[str, Any]]:
    """Training tokens/s of the built-in GPT on generated GSM8K problems, adam vs sgd.

    Tokens are the task's ``batch_tokens`` (the answer tokens the loss is taken on,
    the same count ``compare`` reports as tokens/s).

    ``median``/``min``/``max`` are tokens/s (higher is better); ``ratio_vs_adam`` is
    the median over rounds of the arm's tokens/s over adam's in the same round.
    """
    if not lm_available():
        raise BadInput("part 'lm' needs superpos_cli.tasks.gsm8k, which this install lacks")
    runners = {arm: TrainingSteps("gsm8k", arm, {"limit": limit, "device": device}, seed) for arm in ("adam", "sgd")}
    results = interleaved_runs({arm: (lambda r=r: r.run(steps)) for arm, r in runners.items()}, repeats)
    rates = {arm: [tokens / seconds for seconds, tokens in runs] for arm, runs in results.items()}
    return [{"part": "lm", "name": f"gpt {arm}", "optimizer": arm, "steps": steps, "unit": "tokens/s", "device": device,
             **summary(r), "tokens_per_s": statistics.median(r), "ratio_vs_adam": paired_ratio(r, rates["adam"])}
            for arm, r in rates.items()]


# --------------------------------------------------------------------------- orchestration


def _circuit_rows(spec: ProfileSpec, progress: ProgressFn) -> list[dict[str, Any]]:
    from superpos_cli.experiments.profile_quantum import profile_circuit

    rows = []
    for q in spec.qubits:
        for d in spec.depths:
            progress(f"circuit q={q} depth={d}")
            kwargs = {} if spec.circuit_batch is None else {"batch": spec.circuit_batch}
            rows += profile_circuit(q, d, spec.repeats, device=spec.device, **kwargs)
    return rows


def _attention_rows(spec: ProfileSpec, progress: ProgressFn) -> list[dict[str, Any]]:
    from superpos_cli.experiments.profile_quantum import profile_attention

    rows = []
    for q in spec.qubits:
        for d in spec.depths:
            progress(f"attention q={q} depth={d}")
            for row in profile_attention(spec.attention_shapes, q, d, spec.repeats, device=spec.device):
                rows.append({"n_qubits": q, "depth": d, **row})
    return rows


def _noise_rows(spec: ProfileSpec, progress: ProgressFn) -> list[dict[str, Any]]:
    from superpos_cli.experiments.profile_noise import profile_noisy_attention

    rows = []
    for q in spec.qubits:
        for d in spec.depths:
            progress(f"noisy attention q={q} depth={d}")
            rows += profile_noisy_attention(spec.attention_shapes[-1], q, d, spec.repeats)
    return rows


def _preparation_rows(spec: ProfileSpec, progress: ProgressFn) -> list[dict[str, Any]]:
    from superpos_cli.experiments.profile_noise import profile_preparation

    rows = []
    for d in spec.depths:
        progress(f"coefficient preparation depth={d}")
        rows += profile_preparation(spec.preparation_qubits, d, spec.repeats)
    return rows


def _optimizer_rows(spec: ProfileSpec, progress: ProgressFn) -> list[dict[str, Any]]:
    from superpos_cli.experiments.profile_optimizer import profile_optimizer

    progress("optimizer")
    kwargs = {} if spec.optimizer_shapes is None else {"shapes": spec.optimizer_shapes}
    return profile_optimizer(spec.repeats, device=spec.device, **kwargs)


def _epoch_rows(spec: ProfileSpec, progress: ProgressFn) -> list[dict[str, Any]]:
    progress("epoch")
    return profile_epoch(spec.repeats, spec.epoch_steps, spec.seed, device=spec.device)


def _lm_rows(spec: ProfileSpec, progress: ProgressFn) -> list[dict[str, Any]]:
    progress("lm")
    return profile_lm(spec.repeats, spec.lm_steps, spec.seed, device=spec.device)


_RUNNERS = {"circuit": _circuit_rows, "attention": _attention_rows, "noise": _noise_rows,
            "preparation": _preparation_rows, "optimizer": _optimizer_rows, "epoch": _epoch_rows, "lm": _lm_rows}


def run_profile(spec: ProfileSpec, progress: ProgressFn | None = None) -> dict[str, Any]:
    """The profile document: one list of rows per part asked for, peak memory per
    part, the spec, machine and versions (the JSON contract of ``superpos profile``)."""
    from superpos_cli.tasks.device import resolve_device

    resolve_device(spec.device, prefer_cuda=False)  # this machine has it, or one BadInput line
    progress = progress or (lambda message: None)
    doc: dict[str, Any] = {"kind": "profile", "metric": "seconds and ratios to each part's reference",
                           "spec": asdict(spec)}
    memory: dict[str, float] = {}
    threads = torch.get_num_threads()
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    try:
        for part in PARTS:
            if part not in spec.parts:
                continue
            with PeakRSS() as peak:
                started = time.perf_counter()
                rows = _RUNNERS[part](spec, progress)
            for row in rows:
                row.setdefault("part", part)
            doc[part] = rows
            memory[part] = peak.mb
            doc.setdefault("wall_s", {})[part] = time.perf_counter() - started
        doc["torch_threads"] = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    doc["peak_memory_mb"] = memory
    doc["machine"] = machine_info()
    doc["versions"] = versions()
    return doc
