"""What noise and shots cost quantum attention, as ratios measured side by side.

``profile_noisy_attention`` (profile part ``noise``): forward + backward of
:class:`QuantumAttention` at one shape, classical (Phi off), noiseless fourier
(``real`` and ``prob`` readouts), noisy fourier (depolarizing, readout error, a device
snapshot when the ``devices`` extra is installed) and shot-sampled fourier, the same
weights, circuit angles and inputs, interleaved by round; each round's ratios are to that round's
noiseless ``prob`` sample (the readout the noisy circuits must use).

``profile_preparation`` (profile part ``preparation``): the per-step cost of the
fourier coefficients (prepare, a 64-point evaluation, backward through both) as qubits
grow, noiseless and noisy, with the noisy one's ratio to the noiseless at the same
size. The 64-point evaluations run eagerly: compiling the fourier kernels for every
degree (one per qubit count) costs ~20 s each on a cold cache, for microseconds of work.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

from superpos_cli.experiments.timing import interleaved, paired_ratio, summary
from superpos_cli.models.attention import QuantumAttention
from superpos_cli.quantum import CircuitSpec, get_backend
from superpos_cli.quantum.noise_spec import device_names

SEED = 0
REFERENCE = "fourier prob"
NOISE = "depolarizing:0.01"
READOUT_NOISE = "readout:0.02"
DEVICE = "fake_manila"  # 5 qubits, a line: the first four form the chain layout
SHOTS = 1024


def attention_variants(noise: str = NOISE, shots: int = SHOTS, device: str | None = DEVICE) -> dict[str, dict | None]:
    """name -> CircuitSpec keyword arguments (None: classical); the device row only
    where its snapshot is installed."""
    variants = {
        "classical": None,
        "fourier real": dict(readout="real"),
        REFERENCE: dict(readout="prob"),
        f"fourier {noise}": dict(readout="prob", noise=noise),
        f"fourier {READOUT_NOISE}": dict(readout="prob", noise=READOUT_NOISE),
    }
    if device is not None and device in device_names():
        variants[f"fourier device={device}"] = dict(readout="prob", noise_device=device)
    variants[f"fourier shots={shots}"] = dict(readout="prob", shots=shots)
    variants[f"fourier {noise} shots={shots}"] = dict(readout="prob", noise=noise, shots=shots)
    return variants


def attention_modules(d_model: int, n_heads: int, n_qubits: int, depth: int, noise: str = NOISE, shots: int = SHOTS,
                      device: str | None = DEVICE) -> dict[str, QuantumAttention]:
    """name -> the variant's attention layer: one set of projections for all, and one
    circuit's theta, phi for every variant with a circuit, so a row's ratio is what its
    noise or shots cost (the sampler's cost still grows with the share of scores whose
    expected count is small, which the angles set)."""
    torch.manual_seed(SEED)
    classical = QuantumAttention(d_model, n_heads)
    reference = QuantumAttention(d_model, n_heads, circuit=CircuitSpec(n_qubits=n_qubits, depth=depth, readout="prob"))
    angles = {"theta": reference.theta.detach(), "phi": reference.phi.detach()}
    modules = {}
    for name, kwargs in attention_variants(noise, shots, device).items():
        circuit = None if kwargs is None else CircuitSpec(n_qubits=n_qubits, depth=depth, **kwargs)
        modules[name] = QuantumAttention(d_model, n_heads, circuit=circuit, backend="fourier")
        modules[name].load_state_dict({**classical.state_dict(), **(angles if circuit else {})}, strict=False)
    return modules


def profile_noisy_attention(shape: tuple[int, int, int, int] = (32, 4, 64, 16), n_qubits: int = 4, depth: int = 2,
                            repeats: int = 5, inner: int = 5, noise: str = NOISE, shots: int = SHOTS,
                            device: str | None = DEVICE) -> list[dict]:
    """One row per variant: seconds per forward+backward (median of ``inner`` calls per
    round) and min/median/max over rounds of its ratio to the noiseless prob path."""
    B, H, T, d_k = shape
    d_model = H * d_k
    modules = attention_modules(d_model, H, n_qubits, depth, noise, shots, device)
    x = torch.randn(B, T, d_model)  # (B, T, D)

    def call(module):
        def run():
            for _ in range(inner):
                module.zero_grad(set_to_none=True)
                module(x).sum().backward()

        return run

    samples = interleaved({name: call(m) for name, m in modules.items()}, repeats, warmup=1)
    rows = []
    for name, times in samples.items():
        ratios = [t / r for t, r in zip(times, samples[REFERENCE])]
        rows.append({"part": "noise", "name": f"attention {name}", "n_qubits": n_qubits, "depth": depth,
                     "shape": {"B": B, "H": H, "T": T, "d_k": d_k}, **summary([t / inner for t in times]),
                     "ratio_vs_noiseless_prob": paired_ratio(times, samples[REFERENCE]),
                     "ratio_samples": {"min": min(ratios), "max": max(ratios), "samples": ratios}})
    return rows


@contextlib.contextmanager
def _eager_fourier() -> Iterator[None]:
    from superpos_cli.quantum.backends import fourier

    before, fourier.COMPILE = fourier.COMPILE, False
    try:
        yield
    finally:
        fourier.COMPILE = before


def profile_preparation(qubits: Sequence[int] = range(2, 9), depth: int = 2, repeats: int = 5,
                        noise: str = NOISE) -> list[dict]:
    """Seconds to prepare the coefficients and backpropagate through them, per qubit
    count, noiseless and noisy (prob readout), interleaved by round; ``ratio_vs_noiseless``
    is per round to the noiseless one at the same size (median over rounds)."""
    backend = get_backend("fourier")
    rows = []
    with _eager_fourier():
        for n in qubits:
            gen = torch.Generator().manual_seed(SEED)
            theta = ((torch.rand(depth, n, generator=gen) * 2 - 1) * torch.pi).requires_grad_()
            phi = ((torch.rand(depth, n, generator=gen) * 2 - 1) * torch.pi).requires_grad_()
            x = torch.randn(64, generator=gen)
            specs = {"noiseless": CircuitSpec(n, depth, readout="prob"),
                     noise: CircuitSpec(n, depth, readout="prob", noise=noise)}

            def call(spec):
                def run():
                    backend.prepare(spec, theta, phi).evaluate(x).sum().backward()

                return run

            samples = interleaved({name: call(spec) for name, spec in specs.items()}, repeats, warmup=1)
            for name, times in samples.items():
                rows.append({"part": "preparation", "name": f"prepare {name}", "n_qubits": n, "depth": depth,
                             **summary(times), "ratio_vs_noiseless": paired_ratio(times, samples["noiseless"])})
    return rows
