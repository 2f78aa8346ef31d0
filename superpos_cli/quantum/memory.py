"""How many bytes quantum attention needs, per score and per preparation.

torch-free: the parent's preflight (refuse a run that cannot fit, bound the parallel
trials) and the attention module (how many scores one backend call may take) read
the same figures. They are estimates from the shapes of the tensors the backends
allocate, rounded up, not measurements: good to a factor of about two, which is what
"will this fit" needs.

Per attention score (one of B*H*T*T per layer), for the model's real dtype of
``real`` bytes (4 for float32):

* ``saved``: what autograd keeps until backward, for every score of the step;
* ``temporary``: what one backend call allocates besides, for the scores of one chunk.

fourier (a trigonometric polynomial per score): the kernel returns y and keeps cos w,
sin w and x (4 values saved); the call's temporaries are those plus the gradient.
torch (a spectral statevector, :mod:`.backends.torch_backend`): per score the
basis e^{ikx} (L+1 complex), the angles (L+1 real) and n amplitudes (complex),
all kept for backward. Shots add the sampled estimate (one value).
"""

from __future__ import annotations

from typing import NamedTuple

from superpos_cli.quantum.circuit import CircuitSpec


class ScoreBytes(NamedTuple):
    saved: int  # per score, kept for backward over the whole step
    temporary: int  # per score, alive during one backend call


def score_bytes(spec: CircuitSpec, backend: str, real: int = 4) -> ScoreBytes:
    """Bytes per attention score of ``spec`` on ``backend`` (``real``: 4 float32, 8 float64)."""
    shots = real if spec.shots is not None else 0
    if backend == "fourier" and spec.readout in ("real", "prob"):
        return ScoreBytes(saved=4 * real + shots, temporary=5 * real + shots)
    # torch, and fourier's fallback to torch (a readout without a finite spectrum)
    slots = spec.n_encodings + 1
    per_score = slots * (2 * real + real) + spec.n_qubits * 2 * real
    return ScoreBytes(saved=per_score + shots, temporary=2 * per_score + shots)


def prepare_bytes(spec: CircuitSpec) -> int:
    """Bytes of one step's coefficient preparation, kept for backward: the statevector
    S (L+1, 2**n) complex128 after every gate layer, or, with noise, the density
    matrices (4**n complex128) at the 2L+1 sample points after every operation."""
    dim = 2**spec.n_qubits
    stages = spec.depth * (3 * spec.n_qubits + 1) + spec.n_qubits  # H, Ry, Rz per qubit, CNOT block
    if spec.noisy:
        return (2 * spec.n_encodings + 1) * dim * dim * 16 * stages
    return (spec.n_encodings + 1) * dim * 16 * stages


# Scores one backend call may take at most, whatever the memory: beyond this a call
# gains nothing (the per-call overhead is already a small share) and temporaries grow.
MAX_CHUNK = 2**22
MIN_CHUNK = 2**12  # below this, per-call overhead dominates; the budget is then too small anyway


def chunk_scores(spec: CircuitSpec, backend: str, budget: int | None, real: int = 4) -> int:
    """Scores per backend call so that one call's temporaries take at most a quarter
    of ``budget`` bytes (None: :data:`MAX_CHUNK`)."""
    if budget is None:
        return MAX_CHUNK
    fit = budget // 4 // score_bytes(spec, backend, real).temporary
    return max(MIN_CHUNK, min(MAX_CHUNK, fit))
