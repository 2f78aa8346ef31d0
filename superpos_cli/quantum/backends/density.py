"""Noisy circuits on the fourier backend: coefficients from a density-matrix simulation.

Why the noisy ``prob`` readout is still an exact trigonometric polynomial with the
noiseless frequencies. Write the circuit as a composition of linear maps on density
matrices, rho -> E_K(... E_2(E_1(rho))): unitary gates U rho U^dagger and the noise
channels (depolarizing, amplitude damping, a device's thermal relaxation), none of
which depends on x. x enters only through the encoded rotations
Ry(theta + x) = Ry(theta) Ry(x), and conjugation by Ry(x) = cos(x/2) I - i sin(x/2) Y
is, entrywise, a combination of cos^2(x/2), sin^2(x/2) and cos(x/2) sin(x/2), i.e. of
1, cos x and sin x. So each of the L encoded gates multiplies by a trigonometric
polynomial of degree 1 in x, every x-independent channel is linear and keeps the
degree, and rho(x) -- hence every probability p_k(x) = rho(x)[k, k] -- is a
trigonometric polynomial in x of degree at most L: the noiseless ``prob`` spectrum
(omega = 1, F = L). Readout errors mix the p_k linearly with constant weights, and
the readout sums them, so f(x) = sum_{k<n} p'_k(x) keeps that spectrum too. Sampling
f at the 2F+1 points w_j = 2 pi j / (2F+1) and taking the DFT is therefore exact, as
for the noiseless circuit, and every score is then evaluated by the same kernel.

The simulation runs the circuit's Pauli transfer program (:mod:`.ptm`): the
instructions of :meth:`CircuitSpec.ops` with the channels of
:mod:`superpos_cli.quantum.noise_spec` after each gate (or, for a device snapshot, the
transpiled program of :mod:`.devices`), every angle-free part folded once per spec.
A step runs it at the 2F+1 sample points of every angle set in one numpy batch, with
the Jacobian in theta and phi from one reverse sweep; :class:`NoisyCoefficients`
hands torch the coefficients and, in backward, one Jacobian-vector product, so
autograd sees a single node, as for the noiseless coefficients.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from superpos_cli.errors import BadInput
from superpos_cli.quantum.backends import ptm
from superpos_cli.quantum.backends.fourier import TrigPolynomial, _dft, spectrum
from superpos_cli.quantum.circuit import CircuitSpec

_H = np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2)
_CNOT = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])  # control first (big-endian)


def max_block(n: int) -> int:
    """Largest fixed block the program keeps dense: up to 4 qubits (256 x 256), measured
    as fast as separate two-qubit maps at the paper's size and with fewer operations for a
    device's routed program; two qubits past that, where a dense block's flops, not
    per-call costs, would dominate."""
    return 4 if n <= 4 else 2


def channels(noise: tuple[tuple[str, float], ...], qubits: tuple[int, ...]) -> list[ptm.Fixed]:
    """The channels after a gate on ``qubits``, in the order listed (readout: at the end)."""
    out = []
    for kind, p in noise:
        if kind == "depolarizing":
            out.append(ptm.Fixed(qubits, ptm.depolarizing_ptm(p, len(qubits))))
        elif kind == "amplitude-damping":
            out.extend(ptm.Fixed((q,), ptm.amplitude_damping_ptm(p)) for q in qubits)
    return out


def instructions(spec: CircuitSpec) -> list:
    """:meth:`CircuitSpec.ops` with their channels, as :mod:`.ptm` instructions."""
    n, depth = spec.n_qubits, spec.depth
    P = 2 * depth * n
    out = []
    for op in spec.ops():
        if op.gate == "h":
            out.append(ptm.Fixed(op.qubits, ptm.unitary_ptm(_H)))
        elif op.gate == "cx":
            out.append(ptm.Fixed(op.qubits, ptm.unitary_ptm(_CNOT)))
        else:
            name, layer, q = op.angle
            coefficients = np.zeros(P)
            coefficients[(0 if name == "theta" else depth * n) + layer * n + q] = 1.0  # (theta.ravel(), phi.ravel())
            out.append(ptm.Rotation(q, ptm.rotation_parts(op.gate), 0.0, coefficients, 1.0 if op.encoded else 0.0))
        out.extend(channels(spec.noise, op.qubits))
    return out


@lru_cache(maxsize=None)
def program(spec: CircuitSpec) -> ptm.Program:
    """The compiled program of a noisy ``prob`` circuit (a device snapshot's, or the spec's own)."""
    n = spec.n_qubits
    if spec.noise_device is not None:
        from superpos_cli.quantum.backends.devices import device_instructions

        steps, functional = device_instructions(spec)
    else:
        p = dict(spec.noise).get("readout", 0.0)
        flip = np.array([[1 - p, p], [p, 1 - p]])  # [measured, prepared]
        steps, functional = instructions(spec), ptm.readout_functional(n, [flip] * n)
    return ptm.compile_program(n, steps, 2 * spec.depth * n, functional, max_block(n))


@lru_cache(maxsize=None)
def _sampling(spec: CircuitSpec) -> tuple[np.ndarray, np.ndarray]:
    """(x at the 2F+1 sample points (2F+1,), real DFT (2F+1, 2(F+1)): samples -> (cos row, sin row))."""
    omega, degree = spectrum(spec)
    points = 2 * degree + 1
    dft = _dft(degree).T.numpy()  # (2F+1, F+1) complex: C_k
    real = np.concatenate([dft.real, -dft.imag], 1)  # f = sum Re C_k cos - Im C_k sin
    return 2 * math.pi * np.arange(points) / points / omega, real


def coefficients_and_jacobian(spec: CircuitSpec, angles: np.ndarray, jacobian: bool = True):
    """coef (G, 2, F+1) of the noisy ``prob`` readout for G flat angle sets (G, P) =
    (theta.ravel(), phi.ravel()), and with ``jacobian`` d coef / d angles (G, P, 2, F+1)."""
    _, degree = spectrum(spec)
    x, dft = _sampling(spec)
    values, slopes = ptm.run(program(spec), angles, x, jacobian)  # (G, 2F+1), (G, 2F+1, P)
    coef = (values @ dft).reshape(len(angles), 2, degree + 1)
    if slopes is None:
        return coef, None
    return coef, np.einsum("gmp,mc->gpc", slopes, dft).reshape(len(angles), -1, 2, degree + 1)


class NoisyCoefficients(torch.autograd.Function):
    """(theta_1, phi_1, ..., theta_G, phi_G) -> (coef_1, ..., coef_G), (2, F+1) each in
    theta's dtype, from one simulation (float64); backward: Jacobian^T grad."""

    @staticmethod
    def forward(ctx, spec: CircuitSpec, *angles):
        thetas = angles[0::2]
        flat = torch.stack([torch.cat([t.reshape(-1), p.reshape(-1)]) for t, p in zip(thetas, angles[1::2])])
        coef, jacobian = coefficients_and_jacobian(spec, flat.detach().cpu().double().numpy())
        device = thetas[0].device
        ctx.jacobian = torch.from_numpy(jacobian.reshape(*jacobian.shape[:2], -1)).to(device)  # (G, P, 2(F+1))
        ctx.meta = thetas[0].shape, [(t.dtype, p.dtype) for t, p in zip(thetas, angles[1::2])]
        return tuple(torch.from_numpy(c).to(device, t.dtype) for c, t in zip(coef, thetas))

    @staticmethod
    def backward(ctx, *grads):
        jacobian = ctx.jacobian
        shape, dtypes = ctx.meta
        g = torch.stack([torch.zeros(jacobian.shape[-1], dtype=jacobian.dtype, device=jacobian.device)
                         if grad is None else grad.detach().reshape(-1) for grad in grads]).to(jacobian.dtype)
        flat = torch.bmm(jacobian, g.unsqueeze(-1)).view(len(grads), 2, *shape)  # (G, theta/phi, depth, n)
        out = [None]
        for f, (theta_dtype, phi_dtype) in zip(flat, dtypes):
            out += [f[0].to(theta_dtype), f[1].to(phi_dtype)]
        return tuple(out)


# No-grad evaluation prepares the same angles again and again: keep the last ones.
_EVAL_CACHE: dict[tuple, tuple] = {}


class NoisyFourierCircuit:
    """Fixed (theta, phi) of a noisy ``prob`` circuit; any batch x from its coefficients."""

    def __init__(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, coef: torch.Tensor | None = None):
        if spec.readout != "prob":
            raise BadInput(f"noise needs readout 'prob', got {spec.readout!r}")
        self.spec = spec
        self.omega, _ = spectrum(spec)
        self.coefficients = _coefficients(spec, theta, phi) if coef is None else coef  # (2, F+1)

    def evaluate(self, x: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
        """x (...) -> noisy readout (...) [+ alpha x], differentiable in x and the coefficients."""
        return TrigPolynomial.apply(x.contiguous(), self.coefficients.to(x.dtype), self.omega, alpha)

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        raise BadInput("a noisy circuit has a density matrix, not a state vector")


def _coefficients(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and (theta.requires_grad or phi.requires_grad):
        return NoisyCoefficients.apply(spec, theta, phi)[0]
    key = (spec, theta.dtype, theta.device)
    hit = _EVAL_CACHE.get(key)
    if hit is not None and torch.equal(hit[0], theta) and torch.equal(hit[1], phi):
        return hit[2]
    flat = torch.cat([theta.reshape(-1), phi.reshape(-1)]).detach().cpu().double().numpy()[None]
    coef = torch.from_numpy(coefficients_and_jacobian(spec, flat, jacobian=False)[0][0]).to(theta.device, theta.dtype)
    _EVAL_CACHE[key] = theta.detach().clone(), phi.detach().clone(), coef
    return coef


def prepare_noisy_many(spec: CircuitSpec, angles) -> list[NoisyFourierCircuit]:
    """Several angle sets of one noisy spec in one batched simulation (one autograd node)."""
    if len(angles) < 2 or not torch.is_grad_enabled():
        return [NoisyFourierCircuit(spec, theta, phi) for theta, phi in angles]
    coefs = NoisyCoefficients.apply(spec, *[a for pair in angles for a in pair])
    return [NoisyFourierCircuit(spec, theta, phi, coef) for (theta, phi), coef in zip(angles, coefs)]
