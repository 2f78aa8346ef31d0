"""The variational circuit of paper-spec §2 and its backends.

Public API::

    from superpos_cli.quantum import CircuitSpec, evaluate, statevector

    evaluate(spec, theta, phi, x, backend="torch")     -> real tensor shaped like x
    statevector(spec, theta, phi, x, backend="torch")  -> complex, x.shape + (2**n_qubits,)

theta, phi have shape (depth, n_qubits). Backends: ``torch`` (exact, autograd),
``fourier`` (exact spectral readout, autograd; ``abs`` falls back to torch),
``qiskit`` (Statevector, float64) and ``aer`` (``shots``, ``noise``, ``seed``).
torch and fourier compute in float64 when any of theta, phi, x is float64, else
float32 (complex64 amplitudes).
"""

from __future__ import annotations

import torch

from superpos_cli.errors import BadInput
from superpos_cli.quantum.backends import BACKENDS, get_backend
from superpos_cli.quantum.circuit import ENCODINGS, ENTANGLERS, READOUTS, CircuitSpec

__all__ = [
    "BACKENDS",
    "ENCODINGS",
    "ENTANGLERS",
    "READOUTS",
    "CircuitSpec",
    "evaluate",
    "get_backend",
    "prepare",
    "statevector",
]


def _angles(spec: CircuitSpec, name: str, value) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    if tuple(tensor.shape) != (spec.depth, spec.n_qubits):
        expected = (spec.depth, spec.n_qubits)
        raise BadInput(f"{name} must have shape (depth, n_qubits) = {expected}, got {tuple(tensor.shape)}")
    return tensor


def _real_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def prepare(spec: CircuitSpec, theta, phi, backend: str = "torch", *, shots=None, noise=None, seed=None):
    """A circuit with fixed angles on ``backend``; call ``.evaluate(x)`` / ``.statevector(x)``.

    Preparing once and evaluating many batches (chunks of attention scores) pays the
    per-(theta, phi) work once.
    """
    impl = get_backend(backend)
    options = {k: v for k, v in dict(shots=shots, noise=noise, seed=seed).items() if v is not None}
    if options and not impl.sampling:
        raise BadInput(f"{', '.join(options)} only apply to backend 'aer', not {backend!r}")
    theta, phi = _angles(spec, "theta", theta), _angles(spec, "phi", phi)
    dtype = _real_dtype(theta, phi)
    return impl.prepare(spec, theta.to(dtype), phi.to(dtype), **options)


def _prepared(spec, theta, phi, x, backend, options):
    x = torch.as_tensor(x)
    theta, phi = torch.as_tensor(theta), torch.as_tensor(phi)
    dtype = _real_dtype(theta, phi, x)
    return prepare(spec, theta.to(dtype), phi.to(dtype), backend, **options), x.to(dtype)


def evaluate(spec: CircuitSpec, theta, phi, x, backend: str = "torch", *, shots=None, noise=None, seed=None) -> torch.Tensor:
    """Readout of the circuit at every input: x (...) -> (...)."""
    circuit, x = _prepared(spec, theta, phi, x, backend, dict(shots=shots, noise=noise, seed=seed))
    return circuit.evaluate(x)


def statevector(spec: CircuitSpec, theta, phi, x, backend: str = "torch", *, shots=None, noise=None, seed=None) -> torch.Tensor:
    """Final state at every input: x (...) -> (..., 2**n_qubits), big-endian basis index."""
    circuit, x = _prepared(spec, theta, phi, x, backend, dict(shots=shots, noise=noise, seed=seed))
    return circuit.statevector(x)
