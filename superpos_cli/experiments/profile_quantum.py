"""Circuit and quantum-attention cost, as ratios measured side by side.

``profile_circuit``: one circuit evaluation call per backend (prepare + evaluate,
the cost a training step pays), fourier and torch on an attention-sized batch,
qiskit and aer (one ``parameter_binds`` run per batch) on a small one so they finish
in seconds; ``circuits_per_s`` normalises the batch away. ``profile_attention``:
forward + backward of :class:`QuantumAttention`, quantum vs the same module with
Phi switched off. Rounds are interleaved (A B C, A B C, ...). The first call of each
backend is untimed warmup; for fourier it includes compiling its kernels, reported
as ``warmup_s``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from superpos_cli.experiments.machine import rss_mb
from superpos_cli.experiments.timing import interleaved, paired_ratio, summary, timed
from superpos_cli.models.attention import QuantumAttention
from superpos_cli.quantum import CircuitSpec, evaluate

ATTENTION_BATCH = 32 * 4 * 64 * 64  # B * H * T * T scores of one attention layer
SMALL_BATCH = 128  # qiskit and aer: ~2,000 circuits/s
# (B, H, T, d_k) of the paper's text-classification model: batch 32, 4 heads,
# d_model 64, sequences of at most 64 tokens.
TEXTCLS_SHAPE = (32, 4, 64, 16)
SEED = 0


def profile_circuit(n_qubits: int, depth: int, repeats: int = 5, batch: int = ATTENTION_BATCH,
                    device: str = "cpu") -> list[dict]:
    """One row per backend: seconds per call, circuits/s and the ratio to aer's.
    fourier and torch run on ``device``; qiskit and aer always on the CPU."""
    spec = CircuitSpec(n_qubits=n_qubits, depth=depth)
    gen = torch.Generator().manual_seed(SEED)
    theta = (torch.rand(depth, n_qubits, generator=gen) * 2 - 1) * torch.pi
    phi = (torch.rand(depth, n_qubits, generator=gen) * 2 - 1) * torch.pi
    big = torch.randn(batch, generator=gen) * 3  # attention-score-like inputs
    small = big[:SMALL_BATCH].double()
    on = {"fourier": device, "torch": device, "qiskit": "cpu", "aer": "cpu"}
    inputs = {"fourier": big, "torch": big, "qiskit": small, "aer": small}
    calls = {name: (lambda name=name, x=x.to(on[name]), t=theta.to(on[name]), p=phi.to(on[name]):
                    evaluate(spec, t, p, x, name)) for name, x in inputs.items()}
    warmup = {name: timed(fn, device)() for name, fn in calls.items()}
    samples = interleaved(calls, repeats, warmup=0, device=device)
    rows = []
    for name, times in samples.items():
        stats = summary(times)
        rows.append({
            "part": "circuit",
            "name": f"circuit {name}",
            "backend": name,
            "device": on[name],
            "n_qubits": n_qubits,
            "depth": depth,
            "batch": len(inputs[name]),
            **stats,
            "circuits_per_s": len(inputs[name]) / stats["median"],
            "warmup_s": warmup[name],
            "peak_memory_mb": rss_mb(),
        })
    aer_rate = next(r["circuits_per_s"] for r in rows if r["backend"] == "aer")
    for row in rows:
        row["ratio_vs_aer"] = row["circuits_per_s"] / aer_rate
    return rows


def profile_attention(
    shapes: Sequence[tuple[int, int, int, int]] = (TEXTCLS_SHAPE,),
    n_qubits: int = 4,
    depth: int = 2,
    repeats: int = 5,
    backends: Sequence[str] = ("fourier", "torch"),
    device: str = "cpu",
) -> list[dict]:
    """Forward + backward of QuantumAttention per shape (B, H, T, d_k): classical (Phi
    off) and each quantum backend, the same weights and inputs. Each backend's ratio
    is per round to the classical samples interleaved with it (median over rounds);
    the classical row shows the first pairing."""
    spec = CircuitSpec(n_qubits=n_qubits, depth=depth)
    rows = []
    for B, H, T, d_k in shapes:
        torch.manual_seed(SEED)
        d_model = H * d_k
        modules = {"classical": QuantumAttention(d_model, H)}
        for backend in backends:
            modules[backend] = QuantumAttention(d_model, H, circuit=spec, backend=backend)
            modules[backend].load_state_dict(modules["classical"].state_dict(), strict=False)
        modules = {name: m.to(device) for name, m in modules.items()}
        x = torch.randn(B, T, d_model).to(device)  # (B, T, D)

        def step(module):
            module.zero_grad(set_to_none=True)
            module(x).sum().backward()

        calls = {name: (lambda m=m: step(m)) for name, m in modules.items()}
        warmup = {name: timed(fn, device)() for name, fn in calls.items()}
        # Each backend is timed in its own pairing with classical (C B B C ...): a
        # backend that churns memory (torch allocates ~100x the scores) must not
        # run between another backend's samples and its reference.
        samples, references = {}, {}
        for backend in backends:
            pair = interleaved({"classical": calls["classical"], backend: calls[backend]}, repeats, warmup=0,
                               device=device)
            samples.setdefault("classical", pair["classical"])
            samples[backend], references[backend] = pair[backend], pair["classical"]
        references["classical"] = samples["classical"]
        for name, times in samples.items():
            stats = summary(times)
            rows.append({
                "part": "attention",
                "name": f"attention {name}",
                "backend": name,
                "device": device,
                "shape": {"B": B, "H": H, "T": T, "d_k": d_k},
                **stats,
                "ratio_vs_classical": paired_ratio(times, references[name]),
                "warmup_s": warmup[name],
                "peak_memory_mb": rss_mb(),
            })
    return rows
