"""qiskit-aer backend: one ``AerSimulator.run`` per batch via ``parameter_binds``.

Noiseless and exact: the statevector of every input. With noise (``spec.noise``,
``spec.noise_device``) and exact readout: ``method="density_matrix"``, the final
density matrix of every input, its diagonal mapped through the readout errors. With
``spec.shots``: all qubits measured under the NoiseModel (readout errors included)
and the ``prob`` readout, sum_{k<n} p_k, estimated from counts. Seeds come from the
``generator`` option. No autograd; float64.
"""

from __future__ import annotations

import numpy as np
import torch
from qiskit import ClassicalRegister
from qiskit_aer import AerSimulator

from superpos_cli.errors import BadInput
from superpos_cli.quantum.backends.noise_models import aer_noise, readout_matrices
from superpos_cli.quantum.backends.qiskit_backend import count_index, to_big_endian
from superpos_cli.quantum.circuit import CircuitSpec
from superpos_cli.quantum.readout import readout


class AerCircuit:
    """Fixed (theta, phi); a batch of inputs is one simulator run."""

    def __init__(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor,
                 generator: torch.Generator | None = None):
        if spec.shots is not None and generator is None:
            raise BadInput("a circuit with shots needs a torch.Generator (option 'generator')")
        self.spec, self.generator = spec, generator
        built = aer_noise(spec, theta, phi)
        self.x, self.noise, self.layout = built.x, built.noise_model, built.layout
        self.circuit = built.circuit
        if spec.shots is not None:
            register = ClassicalRegister(spec.n_qubits, "meas")  # bit v <- superpos qubit v
            self.circuit.add_register(register)
            self.circuit.measure(self.layout, register)
        elif spec.noisy:
            self.circuit.save_density_matrix(qubits=self.layout)
        else:
            self.circuit.save_statevector()

    def _run(self, x: torch.Tensor):
        values = x.detach().double().reshape(-1).tolist()
        options = {"shots": self.spec.shots or 1}
        if self.generator is not None:
            options["seed_simulator"] = int(torch.randint(2**31 - 1, (1,), generator=self.generator))
        if self.noise is not None:
            options["noise_model"] = self.noise
        method = "density_matrix" if self.spec.noisy else "statevector"
        result = AerSimulator(method=method).run(self.circuit, parameter_binds=[{self.x: values}], **options).result()
        return result, len(values)

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        """x (...) -> psi(x) (..., 2**n), complex128; noiseless exact runs only."""
        if self.spec.shots is not None or self.spec.noisy:
            raise BadInput("statevector is for noiseless, exact circuits; drop noise, noise_device and shots")
        if x.numel() == 0:
            return torch.zeros(*x.shape, self.spec.dim, dtype=torch.complex128)
        result, count = self._run(x)
        data = np.stack([np.asarray(result.get_statevector(i)) for i in range(count)])  # (B, 2**n)
        data = to_big_endian(data, self.spec.n_qubits)
        return torch.from_numpy(data).reshape(*x.shape, self.spec.dim)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """x (...) -> measured-bitstring probabilities (..., 2**n) (readout errors
        included), big-endian; exact runs only."""
        n = self.spec.n_qubits
        if not self.spec.noisy:
            return self.statevector(x).abs().square()
        if x.numel() == 0:
            return torch.zeros(*x.shape, self.spec.dim, dtype=torch.float64)
        result, count = self._run(x)
        diag = np.stack([np.real(np.diag(np.asarray(result.data(i)["density_matrix"]))) for i in range(count)])
        probs = to_big_endian(diag, n)  # (B, 2**n)
        for q, matrix in enumerate(readout_matrices(self.spec)):  # matrix[measured, prepared]
            view = probs.reshape(len(probs), 2**q, 2, -1)  # (B, before, bit q, after)
            probs = np.einsum("mp,iapb->iamb", matrix, view).reshape(probs.shape)
        return torch.from_numpy(np.ascontiguousarray(probs)).reshape(*x.shape, self.spec.dim)

    def evaluate(self, x: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
        """x (...) -> readout (...); with shots, the sampled estimate of sum_{k<n} p_k."""
        n = self.spec.n_qubits
        if self.spec.shots is None:
            if self.spec.noisy:
                value = self.probabilities(x)[..., :n].sum(-1)
            else:
                value = readout(self.statevector(x)[..., :n], self.spec.readout)
        elif x.numel() == 0:
            value = torch.zeros(x.shape, dtype=torch.float64)
        else:
            result, count = self._run(x)
            hits = [sum(c for key, c in result.get_counts(i).items() if count_index(key) < n) for i in range(count)]
            value = torch.tensor(hits, dtype=torch.float64).div_(self.spec.shots).reshape(x.shape)
        return torch.add(value, x.to(value.dtype), alpha=alpha) if alpha else value


class AerBackend:
    """qiskit-aer: exact statevector, exact density matrix under noise, or shots."""

    name = "aer"
    differentiable = False
    options = frozenset({"generator"})

    def supports(self, spec: CircuitSpec) -> str | None:
        return None

    def fallback_reason(self, spec: CircuitSpec) -> str | None:
        return None

    def prepare(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, *,
                generator: torch.Generator | None = None) -> AerCircuit:
        return AerCircuit(spec, theta, phi, generator)

    def prepare_many(self, spec: CircuitSpec, angles, **options) -> list[AerCircuit]:
        return [self.prepare(spec, theta, phi, **options) for theta, phi in angles]
