"""The coefficient simulation of :mod:`.coefficients` in C (``circuit_kernels.c``).

At the paper's circuit (4 qubits, depth 2) one step simulates 17 circuits per layer
(the angles and their parameter shifts); numpy's ~30 small ops took 0.3 ms for two
layers alone and ~0.7 ms inside training, where each op runs on caches the step's
matrix products have just evicted. The C loop does the same arithmetic in one call,
from the same constants (:func:`.coefficients._constants`), built by :mod:`.native` at
first use. :func:`kernel` returns None where there is no compiler or
``SUPERPOS_NATIVE=0``; :mod:`.coefficients` then runs numpy.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np

from superpos_cli import native

_SOURCE = Path(__file__).with_name("circuit_kernels.c")


def _pointer(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]  # ~10x cheaper than array.ctypes.data


class _Simulator:
    """simulate() of circuit_kernels.c for one precision."""

    def __init__(self, library: ctypes.CDLL, real: type):
        self.real = real
        self._call = library.simulate
        self._call.restype = ctypes.c_int
        i32, p = ctypes.c_int, ctypes.c_void_p
        self._call.argtypes = [i32] * 6 + [p] * 9 + [i32, i32, p]
        self._plans: dict = {}

    def _arrays(self, spec, omega: float, degree: int, constants, initial: np.ndarray) -> tuple:
        key = (spec, omega, degree)
        plan = self._plans.get(key)
        if plan is None:
            gate_map, inner, last, _start, _index, shifts, readout_map = constants
            n, dim = spec.n_qubits, spec.dim
            real, cplx = self.real, np.result_type(self.real, np.complex64)

            def flat(a, dtype):
                return np.ascontiguousarray(np.asarray(a, dtype=dtype))

            encodes = flat([1 if spec.encodes(layer) else 0 for layer in range(spec.depth)], np.int32)
            weight = flat([bin(b).count("1") for b in range(dim)], np.int32)
            inner_all = flat(np.stack(inner) if inner else np.zeros((1, dim, dim)), cplx)
            slots0 = initial.shape[1]
            slots_max = spec.n_encodings + 1
            arrays = (encodes, weight, flat(gate_map, real), inner_all, flat(last, cplx), flat(initial[0], cplx),
                      flat(readout_map.T, cplx if spec.readout == "real" else real))  # (width, .): dot products
            shifts = flat(shifts, real)
            # arrays stay referenced by the plan, so their pointers stay valid
            plan = (arrays, shifts, tuple(_pointer(a) for a in arrays), _pointer(shifts), slots0, slots_max,
                    readout_map.shape[-1])
            self._plans[key] = plan
        return plan

    def __call__(self, spec, omega: float, degree: int, angles: np.ndarray, constants, initial) -> np.ndarray:
        """(G, P, 2(F+1)) coefficients of every circuit of angles (G, 2, D, n), the shifted ones
        (p > 0) halved: [:, 1:] is the Jacobian."""
        _, shifts, pointers, shifts_pointer, slots0, slots_max, width = self._arrays(spec, omega, degree, constants,
                                                                                      initial)
        if angles.dtype != self.real or not angles.flags.c_contiguous:
            angles = np.ascontiguousarray(angles, dtype=self.real)
        G, P = len(angles), shifts.shape[-1]
        out = np.empty((G, P, width), dtype=self.real)
        status = self._call(spec.n_qubits, spec.depth, slots0, slots_max, width, int(spec.readout == "prob"),
                            *pointers, _pointer(angles), shifts_pointer, G, P, _pointer(out))
        if status:
            raise MemoryError("circuit_kernels.c could not allocate its state")
        return out


@functools.lru_cache(maxsize=None)
def kernel(real: type) -> _Simulator | None:
    """The simulator for numpy float type ``real`` (float32 or float64), or None."""
    library = native.load(_SOURCE, ("SINGLE",) if real is np.float32 else ())
    return None if library is None else _Simulator(library, real)
