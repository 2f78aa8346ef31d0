"""Noise options as text, checked without importing torch or Qiskit.

``parse_noise("depolarizing:0.01,readout:0.02")`` -> ``(("depolarizing", 0.01),
("readout", 0.02))``; kinds (paper-spec's open question on real devices, issue 13):

- ``depolarizing``: a one-qubit depolarizing error P after every H, Ry and Rz and a
  two-qubit one P after every CNOT (Qiskit's ``depolarizing_error(P, n)``:
  rho -> (1 - P) rho + P Tr_q(rho) (x) I / 2**n on the gate's qubits);
- ``amplitude-damping``: damping P (Qiskit's ``amplitude_damping_error(P)``) on
  every qubit a gate acts on, after every gate;
- ``readout``: each measured bit flipped with probability P.

Several kinds apply after the same gate in the order written (they do not commute:
damping is not unital). Device names (``noise_device``) are listed from the files of
qiskit-ibm-runtime's offline fake provider, without importing it: cheap, and empty
when the optional extra ``devices`` is not installed.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

from superpos_cli.errors import BadInput

NOISE_KINDS = ("depolarizing", "amplitude-damping", "readout")
_DEVICE_PREFIX = "fake_"
DEVICES_EXTRA = "pip install 'superpos_cli[devices]'"


def parse_noise(text) -> tuple[tuple[str, float], ...]:
    """``"KIND:P[,KIND:P...]"`` (or None / "" / "none", or already-parsed pairs) ->
    ((kind, p), ...) in the order given; BadInput naming the bad entry otherwise."""
    if text is None:
        return ()
    if isinstance(text, (tuple, list)):
        items = [_pair(item) for item in text]
    elif isinstance(text, str):
        stripped = text.strip()
        if stripped.lower() in ("", "none"):
            return ()
        items = [_entry(part.strip()) for part in stripped.split(",")]
    else:
        raise BadInput(f"noise {text!r} must be a string KIND:P[,KIND:P...] with KIND one of {', '.join(NOISE_KINDS)}")
    kinds = [kind for kind, _ in items]
    for kind in kinds:
        if kinds.count(kind) > 1:
            raise BadInput(f"noise lists {kind!r} twice; give each kind once")
    return tuple(items)


def _entry(part: str) -> tuple[str, float]:
    kind, sep, value = (s.strip() for s in part.partition(":"))
    if not sep:
        raise BadInput(f"noise entry {part!r} is not KIND:P (e.g. depolarizing:0.01)")
    try:
        p = float(value)
    except ValueError:
        raise BadInput(f"noise entry {part!r}: probability {value!r} is not a number") from None
    return _pair((kind, p))


def _pair(item) -> tuple[str, float]:
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise BadInput(f"noise entry {item!r} is not (kind, p)")
    kind, p = item
    if kind not in NOISE_KINDS:
        raise BadInput(f"noise kind {kind!r} is not one of {', '.join(NOISE_KINDS)}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or not 0.0 <= p <= 1.0:
        raise BadInput(f"noise {kind} probability {p!r} must be a number in [0, 1]")
    return kind, float(p)


def format_noise(noise: tuple[tuple[str, float], ...]) -> str:
    """The inverse of :func:`parse_noise`: ``"kind:p,kind:p"`` ("" for none)."""
    return ",".join(f"{kind}:{p!r}" for kind, p in noise)


EXACT = "exact"  # shots' word for the exact readout (an ablation axis's off value)
NO_DEVICE = "none"  # noise_device's word for no device


def parse_shots(value) -> int | None:
    """None (or "exact"), or a positive integer number of shots."""
    if value is None or (isinstance(value, str) and value.strip().lower() == EXACT):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"shots must be a positive integer or None, got {value!r}")
    return value


@lru_cache(maxsize=1)
def device_names() -> tuple[str, ...]:
    """Names of the offline IBM device snapshots (``fake_brisbane`` ...), from the fake
    provider's calibration files, without importing it; () if it is not installed."""
    directory = _fake_backends_dir()
    if directory is None:
        return ()
    names = [_DEVICE_PREFIX + d.name for d in directory.iterdir() if d.is_dir() and any(d.glob("conf_*.json"))]
    return tuple(sorted(names))


def _fake_backends_dir() -> Path | None:
    spec = importlib.util.find_spec("qiskit_ibm_runtime")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "fake_provider" / "backends"
    return path if path.is_dir() else None


def check_device(name) -> str | None:
    """None (or "none"), or a known device name; BadInput naming what is allowed otherwise."""
    if name is None or (isinstance(name, str) and name.strip().lower() == NO_DEVICE):
        return None
    names = device_names()
    if not names:
        raise BadInput(f"noise_device {name!r} needs qiskit-ibm-runtime's fake provider: {DEVICES_EXTRA}")
    if name not in names:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise BadInput(f"noise_device {name!r} is not a known device snapshot; e.g. {shown} ({len(names)} in all)")
    return name
