"""Batched statevector simulator in torch, exploiting where x enters the circuit.

Only the Ry angles depend on x, and Ry(theta + x) = Ry(theta) Ry(x) with
Ry(x) = V diag(e^{-ix/2}, e^{ix/2}) V^dagger (V: eigenvectors of Pauli Y). So the final
state is a trigonometric polynomial in x with L = spec.n_encodings encodings:

    psi(x) = sum_j S[j] e^{i (j - L/2) x},   j = 0..L,   S: (L+1, 2**n)

We simulate S once per (theta, phi) -- a statevector whose leading axis is the
frequency -- by applying every x-independent gate as usual and each data rotation
as a frequency shift in the Y eigenbasis (basis state b with Hamming weight |b| moves
|b| slots up when all n qubits are encoded). Evaluating B inputs is then one small
complex matmul, (B, L+1) @ (L+1, 2**n), instead of B circuit simulations. Exact (no
truncation: the spectrum is finite), differentiable in theta, phi and x, complex64
or complex128 following the dtype of theta/phi.
"""

from __future__ import annotations

import math

import torch

from superpos_cli.errors import BadInput
from superpos_cli.quantum.backends.shots import ShotSampledCircuit
from superpos_cli.quantum.circuit import CircuitSpec
from superpos_cli.quantum.gates import (
    apply_each_qubit,
    cnot_permutation,
    hamming_weight,
    ry_matrix,
    rz_phases,
    y_eigenbasis,
)
from superpos_cli.quantum.readout import readout


def complex_dtype(real: torch.dtype) -> torch.dtype:
    """complex128 for float64, else complex64."""
    return torch.complex128 if real == torch.float64 else torch.complex64


def _shift_frequencies(state: torch.Tensor, weight: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Encode x on every qubit of a Y-basis state: (F, 2**n) -> (F + n, 2**n).

    Slot j holds frequency 2j - e in x/2 after e encodings; each qubit in Y-eigenstate
    1 raises the frequency by 1 and in 0 lowers it by 1, so amplitude b moves from slot
    j to slot j + |b|.
    """
    slots = state.shape[0]
    padded = torch.nn.functional.pad(state, (0, 0, n_qubits, n_qubits))  # (F + 2n, 2**n)
    index = torch.arange(slots + n_qubits, device=state.device)[:, None] - weight[None, :] + n_qubits  # (F + n, 2**n)
    return padded.gather(0, index)  # (F + n, 2**n)


def simulate(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Fourier coefficients S of the final state: (L+1, 2**n), psi(x) = sum_j S[j] e^{i(j-L/2)x}."""
    n = spec.n_qubits
    cdtype, device = complex_dtype(theta.dtype), theta.device  # the constants below go where theta is
    v = y_eigenbasis(cdtype).to(device)
    to_y = v.mH.expand(n, 2, 2)  # (n, 2, 2)
    plus_in_y = v.mH @ torch.full((2,), 1 / math.sqrt(2), dtype=cdtype, device=device)  # V^dagger H|0>, (2,)
    state = plus_in_y
    for _ in range(n - 1):
        state = torch.kron(state, plus_in_y)
    state = state.reshape(1, spec.dim)  # (1, 2**n), in the Y basis

    weight = hamming_weight(n).to(device)
    perm = cnot_permutation(n, spec.cnots()).to(device)
    # Rz(phi) Ry(theta) per layer and qubit; Rz is diagonal, so it scales rows.
    local = rz_phases(phi)[..., :, None] * ry_matrix(theta).to(cdtype)  # (depth, n, 2, 2)
    for layer in range(spec.depth):
        mats = local[layer]  # (n, 2, 2)
        if spec.encodes(layer):
            if layer > 0:
                state = apply_each_qubit(state, to_y)
            state = _shift_frequencies(state, weight, n)
            mats = mats @ v  # back from the Y basis first
        state = apply_each_qubit(state, mats)
        state = state[:, perm]  # CNOT block
    return state  # (L+1, 2**n)


class TorchCircuit:
    """A circuit with fixed (theta, phi), evaluated on any batch of inputs x."""

    def __init__(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor):
        self.spec = spec
        self.coefficients = simulate(spec, theta, phi)  # (L+1, 2**n)
        L = spec.n_encodings
        self.frequencies = torch.arange(L + 1, dtype=theta.dtype, device=theta.device) - L / 2  # (L+1,)

    def _amplitudes(self, x: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        angles = x.to(self.frequencies.dtype)[..., None] * self.frequencies  # (..., L+1)
        basis = torch.complex(torch.cos(angles), torch.sin(angles))  # (..., L+1)
        return basis @ coefficients  # (..., K)

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        """x (...) -> psi(x) (..., 2**n)."""
        return self._amplitudes(x, self.coefficients)

    def evaluate(self, x: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
        """x (...) -> readout (...) [+ alpha x], from the n_qubits amplitudes it needs."""
        needed = self.coefficients[:, : self.spec.n_qubits]  # (L+1, n)
        value = readout(self._amplitudes(x, needed), self.spec.readout)
        return torch.add(value, x, alpha=alpha) if alpha else value


class TorchBackend:
    """Exact, differentiable, batched; the reference inside training. Noiseless only;
    ``shots`` estimates the readout from samples (:mod:`.shots`)."""

    name = "torch"
    differentiable = True
    options = frozenset({"generator"})

    def supports(self, spec: CircuitSpec) -> str | None:
        if spec.noisy:
            return "backend 'torch' simulates state vectors, so no noise; use backend 'fourier' or 'aer'"
        return None

    def fallback_reason(self, spec: CircuitSpec) -> str | None:
        return None

    def prepare(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, *,
                generator: torch.Generator | None = None):
        circuit = TorchCircuit(spec, theta, phi)
        return circuit if spec.shots is None else with_shots(circuit, spec, generator)

    def prepare_many(self, spec: CircuitSpec, angles, **options) -> list:
        return [self.prepare(spec, theta, phi, **options) for theta, phi in angles]


def with_shots(circuit, spec: CircuitSpec, generator: torch.Generator | None) -> ShotSampledCircuit:
    """``circuit`` read out from ``spec.shots`` shots drawn from ``generator``."""
    if generator is None:
        raise BadInput("a circuit with shots needs a torch.Generator (option 'generator')")
    return ShotSampledCircuit(circuit, spec.shots, generator)
