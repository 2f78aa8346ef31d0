"""Backend registry: name -> backend object with ``prepare(spec, theta, phi, **options)``.

A prepared circuit (fixed theta, phi) has ``evaluate(x)`` (readout, shaped like x)
and ``statevector(x)`` (x.shape + (2**n,)). ``differentiable`` backends keep autograd
through theta, phi and x; ``sampling`` backends accept shots/noise/seed. Qiskit-based
backends are imported on first use: importing Qiskit costs about a second.
"""

from __future__ import annotations

import importlib

from superpos_cli.errors import BadInput

# name -> (module, class); torch first: it is the reference inside training.
_REGISTRY = {
    "torch": ("superpos_cli.quantum.backends.torch_backend", "TorchBackend"),
    "fourier": ("superpos_cli.quantum.backends.fourier", "FourierBackend"),
    "qiskit": ("superpos_cli.quantum.backends.qiskit_backend", "QiskitBackend"),
    "aer": ("superpos_cli.quantum.backends.aer", "AerBackend"),
}
BACKENDS = tuple(_REGISTRY)
_loaded: dict[str, object] = {}


def get_backend(name: str):
    """The backend registered as ``name`` (BadInput for an unknown name)."""
    if name not in _REGISTRY:
        raise BadInput(f"backend {name!r} is not one of {', '.join(BACKENDS)}")
    if name not in _loaded:
        module, attr = _REGISTRY[name]
        _loaded[name] = getattr(importlib.import_module(module), attr)()
    return _loaded[name]
