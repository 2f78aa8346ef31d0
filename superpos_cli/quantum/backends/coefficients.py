"""Readout coefficients and their Jacobian in theta, phi, in one batched simulation.

The fourier backend needs, per (theta, phi), the coefficients coef (2, F+1) of the
readout f(w) = sum_k coef[0, k] cos kw + coef[1, k] sin kw, and in training their
gradient in theta and phi. Built as an autograd graph of the sampled circuits this is
dozens of tiny ops forward and backward, and that fixed cost, not the per-score work,
dominated quantum attention at the paper's sizes. Here both come from one no-grad
simulation of P = 1 + 2 * depth * n_qubits circuits at once:

- Parameter shift at the amplitude level: every angle enters exactly one gate,
  Ry(a) or Rz(a), and d/da R(a) = R(a + pi) / 2; so d psi / d angle is the state of
  the same circuit with that one angle shifted by pi, halved. Exact, no step size.
- Every circuit is simulated as the Fourier coefficients S (L+1, 2**n) of its state
  in x (as :mod:`torch_backend` does: data rotations are frequency shifts in the Y
  eigenbasis), with each layer's gates (single-qubit gates, the CNOT block, the
  change of basis for the next encoding) folded into one (2**n, 2**n) matrix.
- The readout's coefficients are a fixed linear (``real``) or sesquilinear (``prob``)
  map of S, so the Jacobian follows from the shifted states by the same map.

:class:`CircuitCoefficients` wraps it as an autograd Function: backward is one
(2 * depth * n_qubits, 2 (F+1)) matrix-vector product. Sizes: P * depth * 4**n
complex amplitudes for the layer matrices, so :func:`fits` limits it to small
circuits (all the paper's); larger ones use the sampled path in :mod:`fourier`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from superpos_cli.quantum.backends import circuit_native
from superpos_cli.quantum.circuit import CircuitSpec
from superpos_cli.quantum.gates import cnot_permutation, hamming_weight, y_eigenbasis

# Complex entries of the layer matrices, P * depth * 4**n: 2**20 is 16 MiB (complex128).
MAX_ELEMENTS = 2**20


def n_parameters(spec: CircuitSpec) -> int:
    return 2 * spec.depth * spec.n_qubits


def fits(spec: CircuitSpec) -> bool:
    """Whether the batched simulation of ``spec`` stays within :data:`MAX_ELEMENTS`."""
    return (1 + n_parameters(spec)) * spec.depth * spec.dim**2 <= MAX_ELEMENTS


def _kron_all(vectors: list[torch.Tensor]) -> torch.Tensor:
    out = vectors[0]
    for v in vectors[1:]:
        out = torch.kron(out, v)
    return out


@lru_cache(maxsize=None)
def _constants(spec: CircuitSpec, omega: float, degree: int, real: type = np.float64):
    """Everything about ``spec`` that does not depend on the angles, as numpy arrays
    of the precision ``real`` (float64, or float32 with complex64 amplitudes)."""
    n, dim, depth, L = spec.n_qubits, spec.dim, spec.depth, spec.n_encodings
    c128 = torch.complex128
    v = y_eigenbasis(c128)  # (2, 2) columns: Y eigenvectors
    # Rz(phi) Ry(theta) = sum_a p_a B_a with p = (c_phi c_theta, c_phi s_theta,
    # s_phi c_theta, s_phi s_theta) of the half angles; times V on encoding layers.
    basis = torch.tensor([[[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1j, 0], [0, 1j]], [[0, 1j], [1j, 0]]], dtype=c128)
    gates = torch.stack([basis @ v if spec.encodes(layer) else basis for layer in range(depth)])  # (D, 4, 2, 2)
    # p (., 4) @ gate_map (4, 8) = every gate's entries (k, l) as interleaved (re, im),
    # so the product views as complex without another pass.
    gate_map = torch.view_as_real(gates.reshape(depth, 4, 4)).reshape(depth, 4, 8)  # (D, p, entry * re/im)
    # After each layer's gates: the CNOT block, then V^dagger on every qubit when the
    # next layer encodes (row-vector convention: state <- state @ U^T @ fold).
    perm = cnot_permutation(n, spec.cnots())
    permute = torch.zeros(dim, dim, dtype=c128)
    permute[perm, torch.arange(dim)] = 1  # (state @ permute)[j] = state[perm[j]]
    to_y = _kron_all([v.mH] * n)  # (dim, dim)
    folds = [permute @ to_y.T if layer + 1 < depth and spec.encodes(layer + 1) else permute
             for layer in range(depth)]
    # The last layer keeps only the amplitudes the readout reads, k < n_qubits.
    last = folds[-1][:, :n]
    if spec.readout == "real":
        last = last.sum(-1, keepdim=True)  # (dim, 1): sum of the first n amplitudes
    inner = folds[:-1]
    start = _kron_all([v.mH @ torch.full((2,), 1 / math.sqrt(2), dtype=c128)] * n).reshape(1, 1, dim)
    # Frequency shift of an encoding: amplitude b moves from slot j to j + |b|.
    weight = hamming_weight(n)
    shift_index = {}
    slots = 1
    for layer in range(depth):
        if spec.encodes(layer):
            rows = torch.arange(slots + n)[:, None] - weight[None, :] + n  # (slots + n, dim)
            shift_index[layer] = rows * dim + torch.arange(dim)  # flat index into (slots + 2n, dim)
            slots += n
    # Angle shifts: row 0 none, then theta[l, q], then phi[l, q], each by pi.
    n_par = n_parameters(spec)
    shifts = torch.zeros(n_par, 1 + n_par, dtype=torch.float64)
    shifts[:, 1:] = torch.eye(n_par, dtype=torch.float64) * math.pi
    shifts = shifts.reshape(2, depth, n, 1 + n_par)
    readout_map = _readout_map(spec, omega, degree)
    if spec.readout == "real":
        # Last fold and readout in one complex map of the flattened final state:
        # coef = Re(state @ W), W[s, d] = last[d] (R[2s] - i R[2s+1]), since
        # Re(z) a + Im(z) b = Re(z (a - ib)) for the data z_s = sum_d state[s, d] last[d].
        pairs = readout_map.reshape(-1, 2, readout_map.shape[-1])  # (slots, re/im, 2(F+1))
        weights = (pairs[:, 0] - 1j * pairs[:, 1]).to(c128)  # (slots, 2(F+1))
        readout_map = (weights[:, None, :] * last[None, :, 0, None]).reshape(-1, weights.shape[-1])  # (slots dim, 2(F+1))
    cplx = np.result_type(real, np.complex64).type

    def cast(t: torch.Tensor) -> np.ndarray:
        return t.numpy().astype(cplx if t.is_complex() else real)

    return (cast(gate_map), [cast(f) for f in inner], cast(last), cast(start),
            {k: i.numpy() for k, i in shift_index.items()}, cast(shifts), cast(readout_map))


def _readout_map(spec: CircuitSpec, omega: float, degree: int) -> torch.Tensor:
    """Real matrix from the flattened (re, im) of the readout's frequency data to coef (2(F+1)).

    ``real``: the data is s_j = sum_{k<n} S[j, k] with frequency j - L/2 in x, so
    2 (j - L/2) in w when omega = 1/2. ``prob``: the data is the Gram matrix
    G[j, j'] = sum_{k<n} S[j, k] conj S[j', k] at frequency j - j'.
    """
    L = spec.n_encodings
    if spec.readout == "real":
        pairs = [(j, j - L / 2) for j in range(L + 1)]
        shape = L + 1
    else:
        pairs = [(j * (L + 1) + jp, j - jp) for j in range(L + 1) for jp in range(L + 1)]
        shape = (L + 1) ** 2
    out = torch.zeros(shape, 2, 2, degree + 1, dtype=torch.float64)  # (data, re/im, cos/sin, k)
    for index, freq in pairs:
        m = freq / omega  # frequency in w, an integer
        k = int(round(abs(m)))
        sign = 1.0 if m >= 0 else -1.0
        # Re(c e^{i m w}) = Re c cos(kw) - sign Im c sin(kw)
        out[index, 0, 0, k] += 1.0
        out[index, 1, 1, k] += -sign if k else 0.0
    return out.reshape(shape * 2, 2 * (degree + 1))


def _shift(state: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """An encoding's frequency shift: (., slots, dim) -> (., slots + n, dim)."""
    padded = np.zeros((state.shape[0], state.shape[1] + 2 * n, state.shape[2]), dtype=state.dtype)
    padded[:, n:-n] = state
    return padded.reshape(len(padded), -1)[:, index]  # index: (slots + n, dim) into the flattened padded slots


@lru_cache(maxsize=None)
def _initial_state(spec: CircuitSpec, omega: float, degree: int, real: type) -> np.ndarray:
    """The state entering layer 0's gates, independent of the angles: (1, slots, dim)."""
    _, _, _, start, shift_index, _, _ = _constants(spec, omega, degree, real)
    return _shift(start, shift_index[0], spec.n_qubits) if 0 in shift_index else start


def _precision(*dtypes) -> type:
    """float32 (complex64 amplitudes) when every angle is float32: coefficients to
    ~1e-7, a quarter faster; float64 otherwise (the 1e-10 parity tests)."""
    return np.float32 if all(d in (torch.float32, np.float32) for d in dtypes) else np.float64


def coefficients_and_jacobian(spec: CircuitSpec, omega: float, degree: int, theta: torch.Tensor, phi: torch.Tensor):
    """(coef (2, F+1), jacobian (2 * depth * n, 2, F+1)) numpy arrays, no autograd, in
    float32 for float32 angles and float64 otherwise.

    jacobian[i] = d coef / d angle_i, angles flattened as (theta.ravel(), phi.ravel()).
    numpy, not torch: these are ~30 ops on a few thousand numbers, and numpy's
    per-op cost is a fraction of torch's.
    """
    real = _precision(theta.dtype, phi.dtype)
    angles = np.stack([theta.numpy(force=True), phi.numpy(force=True)]).astype(real)  # (2, D, n)
    coef, jacobian = _simulate(spec, omega, degree, angles[None])
    return coef[0], jacobian[0]


def group_coefficients_and_jacobian(spec: CircuitSpec, omega: float, degree: int, angles: np.ndarray):
    """As :func:`coefficients_and_jacobian` for G angle sets at once, angles (G, 2, D, n):
    (coef (G, 2, F+1), jacobian (G, 2 * depth * n, 2, F+1)). One simulation of G * P
    circuits costs little more than one of P (numpy's per-op cost dominates)."""
    angles = np.asarray(angles)
    return _simulate(spec, omega, degree, angles.astype(_precision(angles.dtype), copy=False))


def _simulate(spec: CircuitSpec, omega: float, degree: int, angles: np.ndarray):
    """(coef (G, 2, F+1), jacobian (G, 2Dn, 2, F+1)) for angles (G, 2, D, n): in C where it
    builds (:mod:`.circuit_native`, one call), else the numpy simulation below."""
    native = circuit_native.kernel(angles.dtype.type) if NATIVE else None
    if native is not None:
        coef = native(spec, omega, degree, angles, _constants(spec, omega, degree, angles.dtype.type),
                      _initial_state(spec, omega, degree, angles.dtype.type))
        coef = coef.reshape(len(angles), -1, 2, degree + 1)  # (G, P, 2, F+1), shifted circuits halved
        return coef[:, 0], coef[:, 1:]
    return _simulate_numpy(spec, omega, degree, angles)


# The coefficient simulation runs circuit_kernels.c where it builds; tests of the numpy
# path (and the comparison of both) turn this off.
NATIVE = True


def _simulate_numpy(spec: CircuitSpec, omega: float, degree: int, angles: np.ndarray):
    real = angles.dtype.type  # float32 or float64: the precision of every array below
    gate_map, inner, last, start, shift_index, shifts, readout_map = _constants(spec, omega, degree, real)
    cplx = np.result_type(real, np.complex64).type
    n, depth = spec.n_qubits, spec.depth
    G = len(angles)
    # The circuit batch G * P runs along the last axis: numpy's inner loops stay long.
    half = (angles.transpose(1, 2, 3, 0)[..., None] + shifts[..., None, :]).reshape(*shifts.shape[:3], -1) * 0.5
    # (cos, sin) of every half angle, (theta/phi, D, n, GP, 2): two real ufuncs, a
    # seventh of the time of the complex exp they replace (20 us) at these sizes.
    trig = np.empty((*half.shape, 2), dtype=real)
    np.cos(half, out=trig[..., 0])
    np.sin(half, out=trig[..., 1])
    # p = (c_phi c_theta, c_phi s_theta, s_phi c_theta, s_phi s_theta), (D, n * GP, 4)
    products = (trig[1][..., :, None] * trig[0][..., None, :]).reshape(depth, -1, 4)
    entries = (products @ gate_map).view(cplx).reshape(depth, n, -1, 2, 2)  # (D, n, GP, 2, 2)
    mats = np.ascontiguousarray(entries.transpose(0, 3, 4, 1, 2))  # (D, 2, 2, n, GP): per layer and qubit, the gate
    unitary = mats[:, :, :, 0]  # (D, 2, 2, GP)
    for q in range(1, n):  # kron over qubits, qubit 0 most significant
        size = unitary.shape[1] * 2
        unitary = (unitary[:, :, None, :, None] * mats[:, None, :, None, :, q]).reshape(depth, size, size, -1)
    steps = np.ascontiguousarray(unitary.transpose(0, 3, 2, 1))  # (D, P, dim, dim): state @ U^T
    state = _initial_state(spec, omega, degree, real)  # (1, slots, dim): start, shifted if layer 0 encodes
    for layer in range(depth):
        if layer and layer in shift_index:
            state = _shift(state, shift_index[layer], n)
        state = state @ steps[layer]  # (P, slots, dim): state @ U^T
        if layer + 1 < depth:
            state = (state.reshape(-1, state.shape[-1]) @ inner[layer]).reshape(*state.shape[:2], -1)
    if spec.readout == "real":  # the last fold is part of readout_map (see _constants)
        coef = (state.reshape(len(state), -1) @ readout_map).real.reshape(G, -1, 2, degree + 1)
        return coef[:, 0], coef[:, 1:] * 0.5
    state = (state.reshape(-1, state.shape[-1]) @ last).reshape(*state.shape[:2], -1)  # (P, L+1, n)
    state = state.reshape(G, -1, *state.shape[1:])  # (G, P, L+1, n)
    conj = state[:, 0].conj().swapaxes(-1, -2)  # (G, n, L+1)
    cross = state[:, 1:] @ conj[:, None]  # (G, P-1, L+1, L+1)
    data = np.concatenate([(state[:, 0] @ conj)[:, None], cross + cross.conj().swapaxes(-1, -2)], 1)
    data = np.ascontiguousarray(data).reshape(G * len(shifts[0, 0, 0]), -1)
    coef = (data.view(real) @ readout_map).reshape(G, -1, 2, degree + 1)  # (G, P, 2, F+1)
    return coef[:, 0], coef[:, 1:] * 0.5


class CircuitCoefficients(torch.autograd.Function):
    """(theta, phi) -> coef (2, F+1) in theta's dtype; backward: jacobian^T grad."""

    @staticmethod
    def forward(ctx, theta, phi, spec: CircuitSpec, omega: float, degree: int):
        coef, jacobian = coefficients_and_jacobian(spec, omega, degree, theta, phi)
        # (2 * D * n, 2(F+1)) on theta's device: backward is one torch matvec.
        ctx.jacobian = torch.from_numpy(jacobian.reshape(len(jacobian), -1)).to(theta.device)
        ctx.meta = theta.shape, theta.dtype, phi.dtype
        return torch.from_numpy(coef).to(theta.device, theta.dtype)

    @staticmethod
    def backward(ctx, grad):
        shape, theta_dtype, phi_dtype = ctx.meta
        flat = torch.mv(ctx.jacobian, grad.detach().reshape(-1).to(ctx.jacobian.dtype))  # (2 * D * n,)
        g_theta, g_phi = flat.view(2, *shape)
        return g_theta.to(theta_dtype), g_phi.to(phi_dtype), None, None, None


class GroupCoefficients(torch.autograd.Function):
    """(theta_1, phi_1, ..., theta_G, phi_G) -> (coef_1, ..., coef_G), one simulation for all.

    For models with several quantum layers of one circuit spec: one simulation and one
    autograd node per step instead of one each per layer. Both directions work in numpy
    on CPU: at these sizes (a few hundred numbers) each torch op's fixed cost (5-10 us,
    10x that right after the step's large matrix products) is most of the time.
    """

    @staticmethod
    def forward(ctx, spec: CircuitSpec, omega: float, degree: int, *angles):
        thetas = angles[0::2]
        device, dtype = thetas[0].device, thetas[0].dtype  # callers group by dtype
        on_cpu = device.type == "cpu"
        if on_cpu:
            stacked = np.stack([a.detach().numpy() for a in angles])
        else:
            stacked = torch.stack(angles).detach().cpu().numpy()
        stacked = stacked.reshape(len(thetas), 2, *thetas[0].shape)  # (G, 2, D, n)
        coef, jacobian = group_coefficients_and_jacobian(spec, omega, degree, stacked)
        ctx.jacobian = jacobian.reshape(*jacobian.shape[:2], -1)  # (G, 2Dn, 2(F+1)) numpy
        ctx.meta = thetas[0].shape, [(t.dtype, p.dtype) for t, p in zip(thetas, angles[1::2])], device
        if on_cpu:  # one tensor per layer over its own slice of coef: separate tensors, not views of one
            return tuple(torch.from_numpy(c).to(dtype) for c in coef)
        out = torch.from_numpy(coef).to(device, dtype)
        return tuple(c.clone() for c in out.unbind(0))

    @staticmethod
    def backward(ctx, *grads):
        jacobian = ctx.jacobian  # (G, 2Dn, 2(F+1))
        shape, dtypes, device = ctx.meta
        g = np.zeros(jacobian.shape[::2], dtype=jacobian.dtype)  # (G, 2(F+1))
        for i, grad in enumerate(grads):
            if grad is not None:
                g[i] = grad.detach().reshape(-1).cpu().numpy()
        flat = np.matmul(jacobian, g[:, :, None]).reshape(len(grads), 2, *shape)  # (G, theta/phi, D, n)
        out = [None, None, None]
        for f, (theta_dtype, phi_dtype) in zip(flat, dtypes):
            out += [torch.from_numpy(f[0]).to(device, theta_dtype), torch.from_numpy(f[1]).to(device, phi_dtype)]
        return tuple(out)
