"""qiskit-aer backend: one ``AerSimulator.run`` per batch via ``parameter_binds``.

Without shots it saves the exact statevector of every input. With ``shots=N`` it
measures all qubits and estimates the ``prob`` readout, sum_{k<n} p_k, from counts
(amplitudes, hence ``real`` and ``abs``, cannot be estimated from counts), optionally
under a depolarizing noise model ``noise=("depolarizing", p)``: error p after every
one-qubit gate and a two-qubit depolarizing error p after every CNOT. ``seed`` fixes
the sampling. No autograd; float64.
"""

from __future__ import annotations

import numpy as np
import torch
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, depolarizing_error

from superpos_cli.errors import BadInput
from superpos_cli.quantum.backends.qiskit_backend import QiskitCircuit, count_index, to_big_endian
from superpos_cli.quantum.circuit import CircuitSpec
from superpos_cli.quantum.readout import readout

NOISE_KINDS = ("depolarizing",)


def noise_model(noise: tuple[str, float]) -> NoiseModel:
    """A NoiseModel from ``("depolarizing", p)``, 0 <= p <= 1."""
    if not (isinstance(noise, (tuple, list)) and len(noise) == 2 and noise[0] in NOISE_KINDS):
        raise BadInput(f"noise {noise!r} is not (kind, p) with kind one of {', '.join(NOISE_KINDS)}")
    p = noise[1]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise BadInput(f"noise probability {p!r} must be a number in [0, 1]")
    model = NoiseModel()
    model.add_all_qubit_quantum_error(depolarizing_error(p, 1), ["h", "ry", "rz"])
    model.add_all_qubit_quantum_error(depolarizing_error(p, 2), ["cx"])
    return model


class AerCircuit:
    """Fixed (theta, phi); a batch of inputs is one simulator run."""

    def __init__(
        self,
        spec: CircuitSpec,
        theta: torch.Tensor,
        phi: torch.Tensor,
        shots: int | None = None,
        noise: tuple[str, float] | None = None,
        seed: int | None = None,
    ):
        if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
            raise BadInput(f"shots must be a positive integer, got {shots!r}")
        if shots is not None and spec.readout != "prob":
            raise BadInput(
                f"readout {spec.readout!r} needs amplitudes, which counts cannot estimate; use readout 'prob' with shots"
            )
        if noise is not None and shots is None:
            raise BadInput("noise needs shots: the exact statevector path is noiseless")
        self.spec, self.shots, self.seed = spec, shots, seed
        self.noise = noise_model(noise) if noise is not None else None
        adapter = QiskitCircuit(spec)
        self.x = adapter.x
        self.circuit = adapter.circuit.assign_parameters(adapter.angle_binds(theta, phi))
        if shots is None:
            self.circuit.save_statevector()
        else:
            self.circuit.measure_all()

    def _run(self, x: torch.Tensor):
        values = x.detach().double().reshape(-1).tolist()
        options = {"shots": self.shots or 1}
        if self.seed is not None:
            options["seed_simulator"] = self.seed
        if self.noise is not None:
            options["noise_model"] = self.noise
        simulator = AerSimulator(method="statevector")
        result = simulator.run(self.circuit, parameter_binds=[{self.x: values}], **options).result()
        return result, len(values)

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        """x (...) -> psi(x) (..., 2**n), complex128; exact runs only."""
        if self.shots is not None:
            raise BadInput("statevector is exact; drop shots and noise")
        if x.numel() == 0:
            return torch.zeros(*x.shape, self.spec.dim, dtype=torch.complex128)
        result, count = self._run(x)
        data = np.stack([np.asarray(result.get_statevector(i)) for i in range(count)])  # (B, 2**n)
        data = to_big_endian(data, self.spec.n_qubits)
        return torch.from_numpy(data).reshape(*x.shape, self.spec.dim)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """x (...) -> readout (...); with shots, the sampled estimate of sum_{k<n} p_k."""
        if self.shots is None:
            return readout(self.statevector(x)[..., : self.spec.n_qubits], self.spec.readout)
        if x.numel() == 0:
            return torch.zeros(x.shape, dtype=torch.float64)
        result, count = self._run(x)
        n = self.spec.n_qubits
        hits = [
            sum(c for key, c in result.get_counts(i).items() if count_index(key) < n) for i in range(count)
        ]
        return torch.tensor(hits, dtype=torch.float64).div_(self.shots).reshape(x.shape)


class AerBackend:
    """qiskit-aer: exact statevector, or shots with optional depolarizing noise."""

    name = "aer"
    differentiable = False
    sampling = True

    def prepare(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, **options) -> AerCircuit:
        return AerCircuit(spec, theta, phi, **options)
