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

The 2F+1 density matrices (times G angle sets) are one batch, (G (2F+1), 2**n, 2**n)
complex128, stepped gate by gate along :meth:`CircuitSpec.ops` with the channels of
:mod:`superpos_cli.quantum.noise_spec` after each gate (or, for a device snapshot,
along the transpiled program of :mod:`.devices`); torch autograd gives the gradients
in theta and phi through it. A unitary acts as rho -> U (U rho)^dagger, valid because
rho stays Hermitian, so each gate is two small batched matmuls on a view.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from superpos_cli.errors import BadInput
from superpos_cli.quantum.backends.fourier import TrigPolynomial, _dft, spectrum
from superpos_cli.quantum.circuit import CircuitSpec, Op
from superpos_cli.quantum.gates import apply_each_qubit, cnot_permutation, ry_matrix, rz_phases

_H = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.complex128) / math.sqrt(2)


def left(rho: torch.Tensor, matrix: torch.Tensor, qubits: tuple[int, ...], n: int) -> torch.Tensor:
    """matrix (on ``qubits``, adjacent and ascending, or one) applied to rho's row index:
    (M, D, D), (M or 1, 2**k, 2**k) -> (M, D, D)."""
    q, k = qubits[0], len(qubits)
    M, D, _ = rho.shape
    view = rho.reshape(M, 2**q, 2**k, -1)  # (M, before, gate qubits, after * D)
    return (matrix[:, None] @ view).reshape(M, D, D)


def conjugate(rho: torch.Tensor, matrix: torch.Tensor, qubit: int, n: int) -> torch.Tensor:
    """U rho U^dagger for a one-qubit U (M or 1, 2, 2) on ``qubit``."""
    return left(left(rho, matrix, (qubit,), n).mH, matrix, (qubit,), n)


def permute(rho: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """P rho P^T for a basis permutation: rho'[i, j] = rho[perm[i], perm[j]]."""
    return rho[:, perm][:, :, perm]


def _split(rho: torch.Tensor, qubit: int, n: int) -> torch.Tensor:
    """(M, D, D) -> (M, before, 2, after, before, 2, after) around ``qubit``."""
    a, b = 2**qubit, 2 ** (n - qubit - 1)
    return rho.reshape(len(rho), a, 2, b, a, 2, b)


def replace_by_mixed(rho: torch.Tensor, qubit: int, n: int) -> torch.Tensor:
    """I/2 (x) Tr_qubit(rho), the qubit's state replaced by the maximally mixed one."""
    view = _split(rho, qubit, n)
    traced = view.diagonal(dim1=2, dim2=5).sum(-1)  # (M, a, b, a, b)
    eye = torch.eye(2, dtype=rho.dtype).reshape(1, 1, 2, 1, 1, 2, 1) / 2
    return (traced[:, :, None, :, :, None, :] * eye).reshape(rho.shape)


def depolarize(rho: torch.Tensor, p: float, qubits: tuple[int, ...], n: int) -> torch.Tensor:
    """Qiskit's depolarizing_error(p, k): (1 - p) rho + p I/2**k (x) Tr_qubits(rho)."""
    mixed = rho
    for q in qubits:
        mixed = replace_by_mixed(mixed, q, n)
    return (1 - p) * rho + p * mixed


def damp(rho: torch.Tensor, gamma: float, qubit: int, n: int) -> torch.Tensor:
    """Amplitude damping: Kraus [[1, 0], [0, sqrt(1-g)]] and [[0, sqrt(g)], [0, 0]]."""
    view = _split(rho, qubit, n)
    s = math.sqrt(1 - gamma)
    scale = torch.tensor([[1.0, s], [s, 1 - gamma]], dtype=rho.dtype).reshape(1, 1, 2, 1, 1, 2, 1)
    out = _add_decay(view * scale, view[:, :, 1, :, :, 1, :] * gamma)  # |1><1| -> |0><0|
    return out.reshape(rho.shape)


def _add_decay(out: torch.Tensor, decayed: torch.Tensor) -> torch.Tensor:
    """out with ``decayed`` added to its (0, 0) block: (M, a, 2, b, a, 2, b)."""
    zero = torch.zeros_like(decayed)
    block = torch.stack([torch.stack([decayed, zero], 4), torch.stack([zero, zero], 4)], 2)  # (M, a, 2, b, a, 2, b)
    return out + block


def after_gate(rho: torch.Tensor, op: Op, noise: tuple[tuple[str, float], ...], n: int) -> torch.Tensor:
    """The channels of ``noise`` after gate ``op``, in the order listed."""
    for kind, p in noise:
        if kind == "depolarizing":
            rho = depolarize(rho, p, op.qubits, n)
        elif kind == "amplitude-damping":
            for q in op.qubits:
                rho = damp(rho, p, q, n)
    return rho


@lru_cache(maxsize=None)
def _after_hadamards(spec: CircuitSpec) -> torch.Tensor:
    """The state after the leading Hadamards and their noise: angle-free, (1, D, D)."""
    n = spec.n_qubits
    rho = torch.zeros(1, spec.dim, spec.dim, dtype=torch.complex128)
    rho[0, 0, 0] = 1.0
    for op in spec.ops()[:n]:
        rho = after_gate(conjugate(rho, _H[None], op.qubits[0], n), op, spec.noise, n)
    return rho


def probabilities(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Measured-bitstring probabilities (readout errors included), big-endian, gate by
    gate: theta, phi (G, depth, n), x (M,) -> (G, M, 2**n) float64, autograd in theta, phi."""
    if spec.noise_device is not None:
        from superpos_cli.quantum.backends.devices import device_probabilities

        return device_probabilities(spec, theta, phi, x)
    n = spec.n_qubits
    G, M = theta.shape[0], x.shape[0]
    theta, phi, x = theta.to(torch.float64), phi.to(torch.float64), x.to(torch.float64)
    rho = _after_hadamards(spec).expand(G * M, -1, -1)
    hadamards = spec.ops()[:n]
    for op in spec.ops()[len(hadamards):]:
        if op.gate == "cx":
            rho = permute(rho, cnot_permutation(n, (op.qubits,)))
        else:
            name, layer, q = op.angle
            angle = (theta if name == "theta" else phi)[:, layer, q][:, None].expand(G, M)  # (G, M)
            if op.encoded:
                angle = angle + x
            angle = angle.reshape(-1)  # (G M,)
            matrix = ry_matrix(angle).to(torch.complex128) if op.gate == "ry" else torch.diag_embed(rz_phases(angle))
            rho = conjugate(rho, matrix, q, n)
        rho = after_gate(rho, op, spec.noise, n)
    probs = rho.diagonal(dim1=1, dim2=2).real  # (G M, D)
    p = dict(spec.noise).get("readout")
    if p is not None:
        flip = torch.tensor([[1 - p, p], [p, 1 - p]], dtype=torch.float64)  # [measured, prepared]
        probs = apply_each_qubit(probs, flip.expand(n, 2, 2))
    return probs.reshape(G, M, -1)


def readout_values(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The noisy ``prob`` readout: theta, phi (G, depth, n), x (M,) -> (G, M) float64."""
    if spec.noise_device is None and spec.n_qubits <= MAX_FOLDED_QUBITS:
        return folded_readout(spec, theta, phi, x)
    return probabilities(spec, theta, phi, x)[..., : spec.n_qubits].sum(-1)


# ----------------------------------------------------------------------- folded path
#
# Up to MAX_FOLDED_QUBITS the same simulation runs in the Pauli transfer (PTM)
# representation: rho = sum_P r_P P with real r, one axis of size 4 (I, X, Y, Z) per
# qubit. A layer's single-qubit gates and their channels are then one real 4x4 matrix
# per qubit (x enters as Ad Ry(theta + x) = Ad Ry(theta) Ad Ry(x)), and the CNOT block
# with its channels one constant real (4**n, 4**n) matrix, built once by running the
# gate-by-gate functions above on a basis of matrices; with depolarizing (or no) gate
# noise it is a scaled signed permutation, applied as one gather and one multiply.
# A few dozen small real ops per simulation instead of ~20 complex ones per gate.

MAX_FOLDED_QUBITS = 5  # a dense block is 4**n x 4**n float64: 8 MiB at 5


def interleave(rho: torch.Tensor, n: int) -> torch.Tensor:
    """(B, D, D) -> (B, 4**n): axis q of the result is 2 r_q + c_q (qubit 0 first)."""
    view = rho.reshape(len(rho), *[2] * (2 * n))
    order = [0] + [axis for q in range(n) for axis in (1 + q, 1 + n + q)]
    return view.permute(order).reshape(len(rho), 4**n)


def _basis_matrices(n: int) -> torch.Tensor:
    """The 4**n matrices E_b whose interleaved vectors are the unit vectors: (4**n, D, D)."""
    view = torch.eye(4**n, dtype=torch.complex128).reshape(4**n, *[2] * (2 * n))
    order = [0] + [1 + 2 * q for q in range(n)] + [2 + 2 * q for q in range(n)]  # rows, then columns
    return view.permute(order).reshape(4**n, 2**n, 2**n)


def unitary_superop(u: torch.Tensor) -> torch.Tensor:
    """vec(U rho U^dagger) = S vec(rho), vec index 2 r + c: (..., 2, 2) -> (..., 4, 4)."""
    return (u[..., :, None, :, None] * u.conj()[..., None, :, None, :]).reshape(*u.shape[:-2], 4, 4)


# Columns: vec(I), vec(X), vec(Y), vec(Z) (index 2 r + c); vec(rho) = T r.
_PAULI_VECS = torch.tensor([[1, 0, 0, 1], [0, 1, 1, 0], [0, -1j, 1j, 0], [1, 0, 0, -1]], dtype=torch.complex128).T
_PAULI_INV = _PAULI_VECS.mH / 2  # r = T^-1 vec(rho)


def ptm(superop: torch.Tensor) -> torch.Tensor:
    """A one-qubit superoperator (..., 4, 4) (column convention) as its real PTM."""
    return (_PAULI_INV @ superop @ _PAULI_VECS).real


@lru_cache(maxsize=None)
def _rotation_ptm_parts(gate: str) -> torch.Tensor:
    """(C0, C1, C2), (3, 4, 4): PTM of Ry(a) or Rz(a) = C0 + cos(a) C1 + sin(a) C2, read
    off the exact superoperators at a = 0, pi/2, pi (every entry is of that form)."""
    angles = torch.tensor([0.0, math.pi / 2, math.pi], dtype=torch.float64)
    matrix = ry_matrix(angles).to(torch.complex128) if gate == "ry" else torch.diag_embed(rz_phases(angles))
    at0, at90, at180 = ptm(unitary_superop(matrix)).unbind(0)
    c0, c1 = (at0 + at180) / 2, (at0 - at180) / 2
    return torch.stack([c0, c1, at90 - c0])


def rotation_ptm(gate: str, angle: torch.Tensor) -> torch.Tensor:
    """PTM of Ry/Rz for a tensor of angles: (...) -> (..., 4, 4), real, differentiable."""
    trig = torch.stack([torch.ones_like(angle), torch.cos(angle), torch.sin(angle)], -1)  # (..., 3)
    return (trig @ _rotation_ptm_parts(gate).reshape(3, 16)).reshape(*angle.shape, 4, 4)


def _kron_power(matrix: torch.Tensor, n: int) -> torch.Tensor:
    out = matrix
    for _ in range(n - 1):
        out = torch.kron(out, matrix)
    return out


@lru_cache(maxsize=None)
def _folded_constants(spec: CircuitSpec):
    """Angle-free parts in the PTM: (start (1, 4**n), one-qubit channel (4, 4), CNOT
    block (as a gather (index, scale) or a dense (in, out) matrix for state @ block),
    readout functional through the last block (4**n,))."""
    n = spec.n_qubits
    to_ptm, from_ptm = _kron_power(_PAULI_INV, n), _kron_power(_PAULI_VECS, n)  # (4**n, 4**n)
    start = (interleave(_after_hadamards(spec), n) @ to_ptm.T).real  # (1, 4**n)
    one = ptm(interleave(after_gate(_basis_matrices(1), Op("ry", (0,)), spec.noise, 1), 1).T)  # (4, 4)
    block = _basis_matrices(n)  # (4**n, D, D): input basis
    for pair in spec.layers()[0].cnots:
        block = after_gate(permute(block, cnot_permutation(n, (pair,))), Op("cx", pair), spec.noise, n)
    block = (to_ptm @ interleave(block, n).T @ from_ptm).real.T.contiguous()  # (in, out): state @ block
    # f = sum_{k<n} P(measured k) = sum_r P(prepared r) sum_{k<n} P(k | r), r on the diagonal
    p = dict(spec.noise).get("readout", 0.0)
    flip = torch.tensor([[1 - p, p], [p, 1 - p]], dtype=torch.float64)  # [measured, prepared]
    given = apply_each_qubit(torch.eye(spec.dim, dtype=torch.float64), flip.expand(n, 2, 2))  # (r, k)
    functional = interleave(torch.diag(given[:, :n].sum(-1)).to(torch.complex128)[None], n)[0]  # on vec(rho)
    functional = (functional @ from_ptm).real  # on r: f = functional . r
    block = torch.where(block.abs() < 1e-14, 0.0, block)  # rounding from the change of basis
    last = block @ functional  # the final CNOT block folded into the readout
    nonzero = block != 0
    if bool((nonzero.sum(0) == 1).all()):  # one input per output: a scaled signed permutation
        source = nonzero.to(torch.int64).argmax(0)  # (out,)
        block = (source, block[source, torch.arange(len(source))])
    return start, one, block, last


def folded_readout(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """As :func:`readout_values`, in the PTM: (G, depth, n), (M,) -> (G, M).

    Per qubit of a layer the local map is A(theta, phi) X(x) with X = Ad Ry(x) =
    C0 + cos x C1 + sin x C2 (the encoded Ry comes first: :meth:`CircuitSpec.layers`).
    X is applied as one matmul with the stacked (C0, C1, C2) and a weighted sum, A as
    a matmul batched over the G angle sets only: torch's CPU bmm loops over its batch,
    so no batch here ever runs over the G * M rows.
    """
    n = spec.n_qubits
    start, one, block, last = _folded_constants(spec)
    theta, phi, x = theta.to(torch.float64), phi.to(torch.float64), x.to(torch.float64)
    G, M = theta.shape[0], x.shape[0]
    data_parts = _rotation_ptm_parts("ry").transpose(1, 2).permute(1, 0, 2).reshape(4, 12)  # [C0^T | C1^T | C2^T]
    weights = torch.stack([torch.ones_like(x), torch.cos(x), torch.sin(x)], -1)[:, None, :, None]  # (M, 1, 3, 1)
    state = start.expand(G * M, -1).reshape(G, M, -1)  # (G, M, 4**n)
    layers = spec.layers()
    for index, layer in enumerate(layers):
        local = None  # (n, G, 4, 4): the angle-dependent part, column convention
        for position in range(len(layer.local[0])):
            ops = [gates[position] for gates in layer.local]  # one gate per qubit, same kind
            if ops[0].encoded and position:
                raise ValueError("the folded simulation needs the encoded gate first in each layer")
            name, layer_index, _ = ops[0].angle
            angles = (theta if name == "theta" else phi)[:, layer_index, :].T  # (n, G)
            gate = rotation_ptm(ops[0].gate, angles)  # (n, G, 4, 4)
            local = one @ (gate if local is None else gate @ local)
        rows = local.transpose(-1, -2)  # (n, G, 4, 4): state @ A^T
        for q in reversed(range(n)):
            # Qubit q is the last axis: act on it, then rotate it to the front; after all n
            # qubits the axes are back in order.
            view = state.reshape(G, M, -1, 4)  # (G, M, 4**(n-1), 4)
            if layer.encoded:
                view = ((view @ data_parts).reshape(G, M, -1, 3, 4) * weights).sum(-2)  # @ X(x_m)^T
            view = view.reshape(G, -1, 4) @ rows[q]  # (G, M 4**(n-1), 4) @ A_q^T
            state = view.reshape(G * M, -1, 4).transpose(1, 2).reshape(G, M, -1)
        if index + 1 < len(layers):
            if isinstance(block, tuple):
                source, scale = block
                state = state[..., source] * scale  # (G, M, 4**n)
            else:
                state = state @ block
    return state @ last  # (G, M)


@lru_cache(maxsize=None)
def _real_dft(degree: int) -> torch.Tensor:
    """(2F+1, 2(F+1)) real map from samples to coef = (cos row, sin row), flattened."""
    dft = _dft(degree).T  # (2F+1, F+1) complex: C_k
    return torch.cat([dft.real, -dft.imag], 1).contiguous()  # f = sum Re C_k cos - Im C_k sin


def sampled_coefficients(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """coef (G, 2, F+1) of the noisy ``prob`` readout for G angle sets (G, depth, n), by
    the simulation at the 2F+1 sample points and a DFT (autograd through both)."""
    omega, degree = spectrum(spec)
    points = 2 * degree + 1
    w = 2 * math.pi * torch.arange(points, dtype=torch.float64) / points  # (2F+1,)
    samples = readout_values(spec, theta, phi, w / omega)  # (G, 2F+1)
    return (samples @ _real_dft(degree)).reshape(len(samples), 2, degree + 1)


def noisy_coefficients(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """coef (G, 2, F+1) of the noisy ``prob`` readout for G angle sets (G, depth, n),
    differentiable in theta and phi."""
    return sampled_coefficients(spec, theta, phi).to(theta.dtype)


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
        return noisy_coefficients(spec, theta[None], phi[None])[0].to(theta.dtype)
    key = (spec, theta.dtype, theta.device)
    hit = _EVAL_CACHE.get(key)
    if hit is not None and torch.equal(hit[0], theta) and torch.equal(hit[1], phi):
        return hit[2]
    with torch.no_grad():
        coef = noisy_coefficients(spec, theta[None], phi[None])[0].to(theta.dtype)
    _EVAL_CACHE[key] = theta.detach().clone(), phi.detach().clone(), coef
    return coef


def prepare_noisy_many(spec: CircuitSpec, angles) -> list[NoisyFourierCircuit]:
    """Several angle sets of one noisy spec in one batched simulation."""
    if len(angles) < 2 or not torch.is_grad_enabled():
        return [NoisyFourierCircuit(spec, theta, phi) for theta, phi in angles]
    thetas = torch.stack([theta.to(torch.float64) for theta, _ in angles])
    phis = torch.stack([phi.to(torch.float64) for _, phi in angles])
    coefs = noisy_coefficients(spec, thetas, phis)  # (G, 2, F+1)
    return [NoisyFourierCircuit(spec, theta, phi, coef.to(theta.dtype)) for (theta, phi), coef in zip(angles, coefs)]
