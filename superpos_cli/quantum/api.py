"""evaluate / statevector / prepare: the circuit on a named backend, checked first."""

from __future__ import annotations

import torch

from superpos_cli.errors import BadInput
from superpos_cli.quantum.backends import get_backend
from superpos_cli.quantum.circuit import CircuitSpec


def _angles(spec: CircuitSpec, name: str, value) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    if tuple(tensor.shape) != (spec.depth, spec.n_qubits):
        expected = (spec.depth, spec.n_qubits)
        raise BadInput(f"{name} must have shape (depth, n_qubits) = {expected}, got {tuple(tensor.shape)}")
    return tensor


def _real_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def check(spec: CircuitSpec, backend: str):
    """The backend named ``backend`` if it can run ``spec``; BadInput saying why not otherwise."""
    impl = get_backend(backend)
    reason = impl.supports(spec)
    if reason is not None:
        raise BadInput(reason)
    return impl


def prepare(spec: CircuitSpec, theta, phi, backend: str = "torch", *, seed: int | None = None):
    """A circuit with fixed angles on ``backend``; call ``.evaluate(x)`` / ``.statevector(x)``.

    Preparing once and evaluating many batches (chunks of attention scores) pays the
    per-(theta, phi) work once. ``seed`` seeds the shot sampling of a spec with
    ``shots`` (default 0: the same seed gives the same estimates).
    """
    impl = check(spec, backend)
    theta, phi = _angles(spec, "theta", theta), _angles(spec, "phi", phi)
    dtype = _real_dtype(theta, phi)
    options = {}
    if spec.shots is not None:
        options["generator"] = torch.Generator().manual_seed(0 if seed is None else seed)
    elif seed is not None:
        raise BadInput("seed only applies to a circuit with shots")
    return impl.prepare(spec, theta.to(dtype), phi.to(dtype), **options)


def _prepared(spec, theta, phi, x, backend, seed):
    x = torch.as_tensor(x)
    theta, phi = torch.as_tensor(theta), torch.as_tensor(phi)
    dtype = _real_dtype(theta, phi, x)
    return prepare(spec, theta.to(dtype), phi.to(dtype), backend, seed=seed), x.to(dtype)


def evaluate(spec: CircuitSpec, theta, phi, x, backend: str = "torch", *, seed: int | None = None) -> torch.Tensor:
    """Readout of the circuit at every input: x (...) -> (...)."""
    circuit, x = _prepared(spec, theta, phi, x, backend, seed)
    return circuit.evaluate(x)


def statevector(spec: CircuitSpec, theta, phi, x, backend: str = "torch") -> torch.Tensor:
    """Final state at every input: x (...) -> (..., 2**n_qubits), big-endian basis index."""
    if spec.noisy or spec.shots is not None:
        raise BadInput("statevector is for noiseless, exact circuits; drop noise, noise_device and shots")
    circuit, x = _prepared(spec, theta, phi, x, backend, None)
    return circuit.statevector(x)
