"""Backend registry: name -> an object implementing :class:`.base.Backend`.

Backends are imported on first use: importing torch or Qiskit costs about a second,
and the CLI validates names before any work.
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
