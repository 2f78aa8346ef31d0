"""The fingerprint of the code that computes superpos's numbers.

A stored trial is reused only when it was computed by the same code
(architecture.md, "A cached result names its code", after asv and
pytest-benchmark). The code is:

* every ``*.py`` and ``*.c`` file of the installed ``superpos_cli`` package: its path
  relative to the package and its bytes, in sorted path order, hashed with
  SHA-256 (a comment change counts too: telling which edits cannot change a
  number is not a hash's job);
* the versions of the libraries that compute numbers: torch, numpy, qiskit,
  qiskit-aer, read from the installed distributions' metadata
  (``importlib.metadata``), so nothing heavy is imported.

:func:`code_fingerprint` returns both parts and ``id``, a 16-hex-digit digest
of the two, the value stores compare and listings show. It is computed once
per process (about 100 small files: a few milliseconds) and cached.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["LIBRARIES", "code_fingerprint", "package_digest"]

LIBRARIES = ("torch", "numpy", "qiskit", "qiskit-aer")
PACKAGE_ROOT = Path(__file__).resolve().parent


def package_digest(root: Path = PACKAGE_ROOT) -> str:
    """SHA-256 hex digest over the relative paths and bytes of ``root/**/*.py``, ``*.c`` and ``*.h``."""
    digest = hashlib.sha256()
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.c"), *root.rglob("*.h")]):
        if "__pycache__" in path.parts:
            continue
        data = path.read_bytes()
        rel = path.relative_to(root).as_posix().encode()
        # Length-prefixed, so no concatenation of two files reads as another.
        digest.update(len(rel).to_bytes(4, "big") + rel + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> dict[str, Any]:
    """``{"id": 16 hex, "sources": sha256 of the package, "versions": {lib: version or None}}``."""
    sources = package_digest()
    libs = {name: _version(name) for name in LIBRARIES}
    text = json.dumps({"sources": sources, "versions": libs}, sort_keys=True)
    return {"id": hashlib.sha256(text.encode()).hexdigest()[:16], "sources": sources, "versions": libs}
