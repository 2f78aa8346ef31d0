"""Kernels compiled ahead of time: built once per machine, loaded in milliseconds.

The first ``torch.compile``d kernel of a process costs about 5.6 s on a warm inductor
cache (dynamo's trace, inductor's import and cache load) and 20 s more on a cold
one, in every worker of every command. An AOTInductor package
(``torch._inductor.aoti_compile_and_package``) of the same kernel is a shared
library that torch's C++ loader opens in about 5 ms without importing dynamo or
inductor, and its calls cost 20-30 us (a direct dynamo-compiled call: 35-65 us).

Lifecycle, per kernel signature (name, dtypes, fixed shapes; 1-d tensors of any
length >= 2):

1. A process that finds no package for a signature it needs records it in
   ``wanted/`` (one small file) and runs the eager or dynamo path as before.
2. When a ``superpos`` command ends (:func:`start_builder`, called by the console
   script only), a detached builder (``python -m superpos_cli.quantum.backends.aot``,
   ``nice 19``, its log in ``build.log``) compiles every wanted signature, about 12 s
   each (25 s for the first, which also builds inductor's precompiled header), one
   builder at a time. No package appears while a command runs, so every trial of a
   sweep takes the same kernels.
3. Later processes load the package (:meth:`AotKernels.lookup`).

Packages live in ``$SUPERPOS_AOT_DIR``, by default next to inductor's own cache
(``$TORCHINDUCTOR_CACHE_DIR``, else ``<tmp>/torchinductor_<user>``) under
``superpos-aot``; a package's name hashes the kernel module's source, torch's version,
the machine and the CPU's flags, so any of these changing builds anew.
``SUPERPOS_AOT=0`` turns packages off (the test suite does, so that a package built
mid-run cannot change a later test's rounding). Packages give inductor's generated
code, the same float operations as the dynamo path (checked bit for bit in the
tests); the eager kernels round differently (libm cos/sin), so a result computed
before a package existed can differ from a later one in the last bits.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import torch

from superpos_cli.cpuinfo import cpu_flags
from superpos_cli.quantum.backends.direct import ScalarCache, signature

ENV_SWITCH = "SUPERPOS_AOT"
ENV_DIR = "SUPERPOS_AOT_DIR"


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "no", "false")


def cache_dir() -> Path:
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    inductor = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not inductor:  # inductor's default (torch._inductor.runtime.cache_dir_utils), without importing it
        try:
            user = getpass.getuser()
        except (KeyError, ModuleNotFoundError, OSError):
            user = f"uid_{os.getuid()}" if hasattr(os, "getuid") else "unknown_user"
        inductor = os.path.join(tempfile.gettempdir(), "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))
    return Path(inductor) / "superpos-aot"


def _portable(described: tuple) -> list | None:
    """A :func:`.direct.signature` as JSON data (the wanted file, the package's name):
    per argument [dtype, "n"] for 1-d, [dtype, shape] otherwise, or "float"; None where
    an argument is off the CPU (packages are CPU code)."""
    out = []
    for arg in described:
        if arg is float:
            out.append("float")
            continue
        dtype, device, shape = arg
        if device.type != "cpu":
            return None
        out.append([str(dtype), "n" if shape == 1 else list(shape)])
    return out


class AotKernels:
    """name -> kernel of one module, with AOT packages where built (:meth:`lookup`)."""

    def __init__(self, module_name: str, kernels: dict[str, Callable], options: dict | None = None):
        self.module_name, self.kernels, self.options = module_name, kernels, options or {}
        self._loaded: dict[tuple, object] = {}  # (name, signature) -> runner, or None: no package (this process)
        self._scalar = ScalarCache()
        self._stamp: str | None = None

    def stamp(self) -> str:
        """What a package depends on besides its signature, hashed."""
        if self._stamp is None:
            source = Path(sys.modules[self.module_name].__file__).read_bytes()
            parts = [source, torch.__version__.encode(), platform.machine().encode(), cpu_flags().encode(),
                     json.dumps(self.options, sort_keys=True).encode(), Path(__file__).read_bytes()]
            self._stamp = hashlib.sha256(b"\0".join(parts)).hexdigest()[:20]
        return self._stamp

    def _name(self, name: str, signature: list) -> str:
        digest = hashlib.sha256(json.dumps([self.stamp(), name, signature]).encode()).hexdigest()[:20]
        return f"{self.module_name.rsplit('.', 1)[-1]}-{name}-{digest}"

    def lookup(self, name: str, args: Sequence):
        """A callable running kernel ``name`` on ``args`` from its package, or None
        (no package yet: the signature is recorded as wanted; packages off; or
        arguments packages do not take)."""
        described = signature(args)
        if described is None:
            return None
        key = (name, described)
        try:
            return self._loaded[key]
        except KeyError:
            portable = _portable(described) if enabled() else None
            runner = self._loaded[key] = None if portable is None else self._load(name, portable)
            return runner

    def _load(self, name: str, signature: list):
        stem = self._name(name, signature)
        path = cache_dir() / f"{stem}.pt2"
        if not path.is_file():
            self._want(stem, name, signature)
            return None
        try:
            runner = _open(path)
        except Exception:  # noqa: BLE001 - an unreadable package: the other paths still work
            return None
        scalar = self._scalar

        def call(args):  # floats as the 0-dim float64 tensors the package was exported with
            return runner([scalar(a, torch.float64) for a in args])

        return call

    def _want(self, stem: str, name: str, signature: list) -> None:
        wanted = cache_dir() / "wanted"
        try:
            wanted.mkdir(parents=True, exist_ok=True)
            (wanted / f"{stem}.json").write_text(json.dumps(
                {"module": self.module_name, "name": name, "signature": signature, "stamp": self.stamp()}))
        except OSError:
            pass

    def build(self, name: str, signature: list, path: Path) -> None:
        """Export kernel ``name`` at ``signature`` (1-d lengths dynamic) and compile its package to ``path``."""
        kernel = self.kernels[name]

        class Kernel(torch.nn.Module):
            def forward(self, *args):
                return kernel(*args)

        examples, dynamic = [], []
        length = torch.export.Dim("n", min=2)
        for spec in signature:
            if spec == "float":
                examples.append(torch.tensor(0.5, dtype=torch.float64))
                dynamic.append(None)
            else:
                dtype = getattr(torch, spec[0].removeprefix("torch."))
                shape = (64,) if spec[1] == "n" else tuple(spec[1])
                examples.append(torch.rand(shape, dtype=dtype) + 0.5)
                dynamic.append({0: length} if spec[1] == "n" else None)
        exported = torch.export.export(Kernel(), tuple(examples), dynamic_shapes=(tuple(dynamic),))  # forward(*args)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.part.pt2")  # the packager wants .pt2
        torch._inductor.aoti_compile_and_package(exported, package_path=str(partial), inductor_configs=self.options)
        os.replace(partial, path)


def _open(path: Path) -> Callable[[list], list]:
    """The package's runner, list of tensors in, list out. torch's C++ loader (what
    ``torch._inductor.aoti_load_package`` wraps) needs no Python import of inductor;
    where its signature differs, the public loader."""
    try:
        loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
        return loader.run
    except (AttributeError, TypeError, RuntimeError):
        model = torch._inductor.aoti_load_package(str(path))
        return lambda inputs: list(model(*inputs))


def pending() -> list[Path]:
    """Wanted signatures not built yet (their files in ``wanted/``)."""
    wanted = cache_dir() / "wanted"
    try:
        return sorted(p for p in wanted.glob("*.json")
                      if not (cache_dir() / f"{p.stem}.pt2").is_file() and not (cache_dir() / f"{p.stem}.failed").is_file())
    except OSError:
        return []


def start_builder() -> bool:
    """Start the detached builder if packages are wanted and none is building; True if started."""
    if not enabled() or not pending():
        return False
    lock = cache_dir() / "build.lock"
    try:
        pid = int(lock.read_text())
        os.kill(pid, 0)
        return False  # a builder is running
    except (OSError, ValueError):
        pass
    with open(cache_dir() / "build.log", "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "superpos_cli.quantum.backends.aot"], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            preexec_fn=(lambda: os.nice(19)) if hasattr(os, "nice") else None,
            env={**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": "1"})
    lock.write_text(str(process.pid))
    print("superpos: compiling this machine's kernels in the background (once, about 12 s of one core each, "
          f"nice 19; log {cache_dir() / 'build.log'}); later runs start faster", file=sys.stderr)
    return True


def build_pending() -> int:
    """Build every wanted package (the builder process's work); the number built."""
    import importlib

    built = 0
    for wanted in pending():
        try:
            spec = json.loads(wanted.read_text())
            module = importlib.import_module(spec["module"])
            kernels: AotKernels = module._AOT
            if kernels.stamp() != spec["stamp"]:  # written by other code: drop it
                wanted.unlink(missing_ok=True)
                continue
            kernels.build(spec["name"], spec["signature"], cache_dir() / f"{wanted.stem}.pt2")
            built += 1
            print(f"built {wanted.stem}", flush=True)
        except Exception as err:  # noqa: BLE001 - one failure must not stop the others; logged, not retried
            print(f"failed {wanted.stem}: {type(err).__name__}: {err}", flush=True)
            (cache_dir() / f"{wanted.stem}.failed").write_text(f"{type(err).__name__}: {err}\n")
        wanted.unlink(missing_ok=True)
    return built


if __name__ == "__main__":
    try:
        build_pending()
    finally:
        (cache_dir() / "build.lock").unlink(missing_ok=True)
