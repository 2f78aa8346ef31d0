"""The variational circuit of paper-spec §2 and its backends.

Public API::

    from superpos_cli.quantum import CircuitSpec, evaluate, statevector

    evaluate(spec, theta, phi, x, backend="torch")     -> real tensor shaped like x
    statevector(spec, theta, phi, x, backend="torch")  -> complex, x.shape + (2**n_qubits,)

theta, phi have shape (depth, n_qubits). Backends (one Protocol,
:mod:`.backends.base`): ``torch`` (exact, autograd), ``fourier`` (exact spectral
readout, autograd, noise through a density-matrix simulation; ``abs`` falls back to
torch), ``qiskit`` (Statevector, float64) and ``aer`` (density matrix with noise,
shots). torch and fourier compute in float64 when any of theta, phi, x is float64,
else float32 (complex64 amplitudes).

Importing this package imports neither torch nor Qiskit (the CLI and the spec layer
validate circuits before any work); evaluate, statevector and prepare load
them on first use, get_backend when it loads a backend.
"""

from __future__ import annotations

from superpos_cli.quantum.backends import BACKENDS, get_backend
from superpos_cli.quantum.circuit import ENCODINGS, ENTANGLERS, READOUTS, CircuitSpec
from superpos_cli.quantum.noise_spec import NOISE_KINDS, device_names, parse_noise

__all__ = [
    "BACKENDS",
    "ENCODINGS",
    "ENTANGLERS",
    "NOISE_KINDS",
    "READOUTS",
    "CircuitSpec",
    "device_names",
    "evaluate",
    "get_backend",
    "parse_noise",
    "prepare",
    "statevector",
]

_LAZY = {"evaluate": "superpos_cli.quantum.api", "prepare": "superpos_cli.quantum.api",
         "statevector": "superpos_cli.quantum.api"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
