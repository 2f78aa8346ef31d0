"""Optimizer step cost, as ratios to torch's fused Adam measured side by side.

The parameter set is fixed: ten fp32 tensors, eight of 1024x1024 then two of
4096x1024 (16.8M coordinates), with fixed seeded gradients. Scope ``tensors``
(n_qubits 4) therefore perturbs the first four tensors, 4.2M coordinates.

Every variant holds its own copy of the parameters and optimizer state and shares
the same gradients. After ``warmup`` untimed steps each (state allocation and any
kernel compile happen there; compile time is reported separately), each variant is
timed in its own pairing with ``torch.optim.Adam(fused=True)``: per round,
``PAIRED_STEPS`` steps of each side in alternating order (R V, V R, ...), and the
round's sample is each side's median step (:func:`.timing.ratio_samples`);
``ratio_vs_fused_adam`` is the median over rounds of the variant's sample over the
reference's. One step pair per round was too thin: at 16.8M coordinates single
pairs of equal work spread 0.79-1.38x on this 2-core VM, and the median of five
read 0.94-1.04x for the same C pass in three runs. The reference row shows its
own samples of the first pairing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import psutil
import torch

from superpos_cli.experiments.timing import interleaved, paired_ratio, ratio_samples
from superpos_cli.optim.optimizer import SCOPES, SuperpositionalAdam

PROFILE_SHAPES: tuple[tuple[int, ...], ...] = ((1024, 1024),) * 8 + ((4096, 1024),) * 2
PROFILE_SEED = 0
REFERENCE = ("adam", "fused")
PAIRED_STEPS = 8  # steps of each side per round; a round's sample is its median step


@dataclass
class _Variant:
    name: str
    scope: Optional[str]
    path: str
    make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]


def _variants() -> list[_Variant]:
    variants = [
        _Variant("adam", None, "foreach", lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True)),
        _Variant("adam", None, "fused", lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True)),
    ]
    for path in ("fused", "foreach"):
        flag = {path: True}

        def none(ps, flag=flag):
            return SuperpositionalAdam(ps, lr=1e-3, perturb="none", **flag)

        variants.append(_Variant("superpos-none", None, path, none))
        for scope in SCOPES:

            def sgd(ps, scope=scope, flag=flag):
                return SuperpositionalAdam(
                    ps, lr=1e-3, perturb="sin", perturb_scale=0.5, scope=scope, **flag
                )

            variants.append(_Variant("sgd", scope, path, sgd))
    return variants


def profile_optimizer(
    repeats: int = 7, *, warmup: int = 2, shapes: Sequence[tuple[int, ...]] = PROFILE_SHAPES, device: str = "cpu"
) -> list[dict]:
    """Time one ``step()`` of each variant; one record per variant.

    Record keys: part ("optimizer"), name, scope, path, median / min / max
    (seconds per step), samples (each round's median step), reference_samples
    (fused Adam's, from the same rounds), ratio_vs_fused_adam (median of the paired ratios),
    compile_s (one-off kernel compile time, None when no kernel is compiled),
    peak_memory_mb (largest process RSS seen right after this variant's
    steps: process-wide, so it includes every variant built before it).
    """
    generator = torch.Generator().manual_seed(PROFILE_SEED)
    base = [torch.randn(shape, generator=generator).to(device) for shape in shapes]
    grads = [torch.randn(shape, generator=generator).to(device) for shape in shapes]
    process = psutil.Process()

    variants = _variants()
    optimizers, compile_s, peak_rss = [], [], []
    for variant in variants:
        params = [torch.nn.Parameter(t.clone()) for t in base]
        for p, g in zip(params, grads):
            p.grad = g  # shared and read-only for every variant
        optimizer = variant.make(params)
        for _ in range(warmup):
            optimizer.step()
        optimizers.append(optimizer)
        compile_s.append(optimizer.compile_seconds() if isinstance(optimizer, SuperpositionalAdam) else None)
        peak_rss.append(process.memory_info().rss)

    ref = next(i for i, v in enumerate(variants) if (v.name, v.path) == REFERENCE)
    samples: list[list[float]] = [[] for _ in variants]
    references: list[list[float]] = [[] for _ in variants]
    for i, optimizer in enumerate(optimizers):
        if i == ref:
            continue
        _, samples[i], references[i] = ratio_samples(optimizer.step, optimizers[ref].step, repeats, PAIRED_STEPS,
                                                     warmup=1, device=device)
        if not samples[ref]:
            samples[ref] = references[ref] = references[i]
        peak_rss[i] = max(peak_rss[i], process.memory_info().rss)
    if not samples[ref]:  # the reference alone
        samples[ref] = references[ref] = interleaved({"reference": optimizers[ref].step}, repeats, warmup=0,
                                                     device=device)["reference"]
    return [
        {
            "part": "optimizer",
            "name": variant.name,
            "scope": variant.scope,
            "path": variant.path,
            "device": device,
            "median": statistics.median(times),
            "min": min(times),
            "max": max(times),
            "samples": times,
            "reference_samples": reference,
            "ratio_vs_fused_adam": paired_ratio(times, reference),
            "compile_s": seconds,
            "peak_memory_mb": rss / 2**20,
        }
        for variant, times, reference, seconds, rss in zip(variants, samples, references, compile_s, peak_rss)
    ]
