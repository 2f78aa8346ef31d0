"""Noisy circuits as folded Pauli-transfer programs, run in numpy with their Jacobian.

Representation. rho = sum_P r_P P over the 4**n Pauli strings (I, X, Y, Z on every
qubit, qubit 0 first), r real. A gate or channel E on k qubits acts on r by its real
Pauli transfer matrix (PTM) R[i, j] = Tr(P_i E(P_j)) / 2**k, (4**k, 4**k); a rotation
exp(-i a G / 2), G = Y or Z, has the PTM C0 + cos(a) C1 + sin(a) C2 (:func:`rotation_parts`).
The readout is a fixed linear functional of r, f = functional . r.

Compiling (:func:`compile_program`, once per circuit). The input is the circuit's
instruction list, each instruction a fixed map (a gate with its channels) or a
rotation whose angle is affine in the learned angles and x. Everything that does not
depend on the angles is folded away:

- a fixed one-qubit map waits on its qubit and is multiplied into the next operation
  there (into a rotation's parts, or a factor of a multi-qubit map) or, at the end,
  into the readout functional;
- two rotations on a qubit with only fixed maps between them become one local op of
  9 parts: sum_{k,l} u_k(a) u_l(b) P_kl with u(a) = (1, cos a, sin a);
- a fixed multi-qubit map joins the previous one when no operation between them
  touches its qubits, up to ``max_block`` qubits (a dense (4**k, 4**k) block);
- fixed maps before anything else on their qubits act on the initial state, those
  after everything else on theirs on the readout functional.

The paper's circuit (4 qubits, depth 2) compiles to 8 local ops and one 256 x 256
block whatever the noise, and a device snapshot's 66-instruction transpiled program
(gates with thermal relaxation and gate errors) to the same shape.

Running (:func:`run`). Rows b = (angle set, sample point), state (B, 4**n) with one
axis of 4 per qubit. A local op is a per-row 4x4 matrix sum_k w_bk P_k (all of them
made by one matmul before the sweep) applied on one axis, a block one matmul; axes
are transposed only to bring an op's qubits last. The Jacobian df_b / d angle comes
from one reverse sweep of per-row adjoints: at a local op with input v and output
adjoint y, df / da = sum_k (dw_k / da) <y, P_k v>. numpy, not torch: a step is ~100
operations on a few thousand numbers, where numpy's per-call cost is a fraction of
torch's and there is no autograd graph to build.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_I2 = np.eye(2, dtype=complex)
PAULIS = np.array([_I2, [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)  # I, X, Y, Z
START = np.array([0.5, 0.0, 0.0, 0.5])  # |0><0| = (I + Z) / 2


@lru_cache(maxsize=None)
def pauli_strings(k: int) -> np.ndarray:
    """(4**k, 2**k, 2**k): P_i = sigma_{i_0} (x) ... (x) sigma_{i_{k-1}}, first qubit most significant."""
    out = PAULIS
    for _ in range(k - 1):
        d = out.shape[1] * 2
        out = np.einsum("aij,bkl->abikjl", out, PAULIS).reshape(len(out) * 4, d, d)
    return out


def clean(array: np.ndarray) -> np.ndarray:
    """Entries below 1e-15 of the largest set to 0: rounding residue (cos(pi/2) ~ 6e-17,
    and its products), which would otherwise multiply through the program into
    subnormal numbers, each ~100x slower in a matmul than a normal one."""
    scale = np.abs(array).max(initial=0.0)
    return np.where(np.abs(array) < 1e-15 * scale, 0.0, array)


def ptm_of_kraus(kraus) -> np.ndarray:
    """PTM of rho -> sum_K K rho K^dagger, Kraus operators (2**k, 2**k) big-endian: (4**k, 4**k)."""
    kraus = np.asarray(kraus, dtype=complex)
    k = int(np.log2(kraus.shape[-1]))
    paulis = pauli_strings(k)
    images = np.einsum("kab,jbc,kdc->jad", kraus, paulis, kraus.conj())  # E(P_j), (4**k, 2**k, 2**k)
    return clean(np.einsum("iba,jab->ij", paulis, images).real / 2**k)  # Tr(P_i E(P_j)) / 2**k


def depolarizing_ptm(p: float, k: int) -> np.ndarray:
    """Qiskit's depolarizing_error(p, k): (1 - p) rho + p Tr(rho) I / 2**k: diag(1, 1-p, ...)."""
    return np.diag([1.0] + [1.0 - p] * (4**k - 1))


def amplitude_damping_ptm(gamma: float) -> np.ndarray:
    """Qiskit's amplitude_damping_error(gamma): Kraus [[1, 0], [0, sqrt(1-g)]], [[0, sqrt(g)], [0, 0]]."""
    return ptm_of_kraus([[[1, 0], [0, np.sqrt(1 - gamma)]], [[0, np.sqrt(gamma)], [0, 0]]])


def unitary_ptm(u) -> np.ndarray:
    return ptm_of_kraus(np.asarray(u, dtype=complex)[None])


def _rotation(gate: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle / 2), np.sin(angle / 2)
    if gate == "ry":
        return np.array([[c, -s], [s, c]], dtype=complex)
    return np.diag([np.exp(-0.5j * angle), np.exp(0.5j * angle)])  # rz


def rotation_ptm(gate: str, angle: float) -> np.ndarray:
    """PTM of Ry(angle) or Rz(angle) (Qiskit's conventions), (4, 4)."""
    return unitary_ptm(_rotation(gate, angle))


@lru_cache(maxsize=None)
def rotation_parts(gate: str) -> np.ndarray:
    """(C0, C1, C2), (3, 4, 4): PTM(R(a)) = C0 + cos(a) C1 + sin(a) C2, read off at 0, pi/2, pi
    (every entry is a combination of cos^2(a/2), sin^2(a/2) and their product)."""
    at0, at90, at180 = (rotation_ptm(gate, a) for a in (0.0, np.pi / 2, np.pi))
    c0 = (at0 + at180) / 2
    return np.stack([clean(c0), clean((at0 - at180) / 2), clean(at90 - c0)])


# --------------------------------------------------------------------------- instructions


@dataclass(frozen=True)
class Fixed:
    """A map independent of the angles on ``qubits``, its matrix's axes in that order."""

    qubits: tuple[int, ...]
    matrix: np.ndarray  # (4**k, 4**k)


@dataclass(frozen=True)
class Rotation:
    """parts[0] + cos(a) parts[1] + sin(a) parts[2] on ``qubit``, a = offset + coefficients
    . angles + slope * x (angles flat: theta.ravel(), then phi.ravel())."""

    qubit: int
    parts: np.ndarray  # (3, 4, 4)
    offset: float
    coefficients: np.ndarray  # (P,)
    slope: float


# --------------------------------------------------------------------------- program


@dataclass(frozen=True)
class Local:
    """A compiled local op: sum_{k,l} u_k(a) u_l(b) parts[3k + l] on ``qubit`` (angle
    forms ``forms`` = (a, b) of the program; b may be the constant form 0)."""

    qubit: int
    index: int  # position among the program's local ops
    forms: tuple[int, int]

    @property
    def qubits(self) -> tuple[int, ...]:
        return (self.qubit,)


@dataclass(frozen=True)
class Program:
    n: int
    start: np.ndarray  # (4**n,), qubit 0's axis first
    ops: tuple  # Local | Fixed, in circuit order
    parts_t: np.ndarray  # (n_local, 9, 4, 4): each part transposed (row convention: v @ P^T)
    forms: np.ndarray  # (A, P): angle form a = offsets + forms @ angles + slopes * x; form 0 is constant 0
    offsets: np.ndarray  # (A,)
    slopes: np.ndarray  # (A,)
    functional: np.ndarray  # (4**n,): f = functional . r


def apply_on(vectors: np.ndarray, matrix: np.ndarray, qubits, n: int) -> np.ndarray:
    """matrix on the axes ``qubits`` of vectors (N, 4**n) (column convention): (N, 4**n)."""
    k = len(qubits)
    view = np.moveaxis(vectors.reshape(len(vectors), *[4] * n), [1 + q for q in qubits], list(range(n + 1 - k, n + 1)))
    shape = view.shape
    out = (view.reshape(-1, 4**k) @ matrix.T).reshape(shape)
    return np.moveaxis(out, list(range(n + 1 - k, n + 1)), [1 + q for q in qubits]).reshape(len(vectors), -1)


def embed(matrix: np.ndarray, qubits, union) -> np.ndarray:
    """A map on ``qubits`` as a map on ``union`` (its axes in union's order)."""
    positions = [union.index(q) for q in qubits]
    basis = np.eye(4 ** len(union))
    return apply_on(basis, matrix, positions, len(union)).T


def _as_soon_as_possible(instructions) -> list:
    """The instructions stably sorted by their earliest moment (1 + the latest moment of
    an earlier instruction on one of their qubits): the same circuit, with every qubit's
    single-qubit instructions before a later multi-qubit one elsewhere, so that a
    transpiled program's CNOTs of one block meet with nothing between them."""
    depth: dict[int, int] = {}
    keyed = []
    for position, inst in enumerate(instructions):
        qubits = (inst.qubit,) if isinstance(inst, Rotation) else inst.qubits
        moment = 1 + max(depth.get(q, -1) for q in qubits)
        for q in qubits:
            depth[q] = moment
        keyed.append((moment, position, inst))
    return [inst for _, _, inst in sorted(keyed, key=lambda item: item[:2])]


def compile_program(n: int, instructions, n_parameters: int, functional: np.ndarray, max_block: int) -> Program:
    """The folded program of ``instructions`` (see the module docstring)."""
    start = START
    for _ in range(n - 1):
        start = np.kron(start, START)
    start = start[None]  # (1, 4**n)
    pending: list[np.ndarray | None] = [None] * n  # fixed one-qubit map waiting on each qubit
    ops: list = []  # Fixed, or a mutable local record [qubit, parts (9, 4, 4), forms list]
    last: list[int | None] = [None] * n  # index in ops of the last op on each qubit
    forms = [(0.0, np.zeros(n_parameters), 0.0)]

    def take(q):
        held, pending[q] = pending[q], None
        return np.eye(4) if held is None else held

    for inst in _as_soon_as_possible(instructions):
        if isinstance(inst, Rotation):
            q = inst.qubit
            parts = inst.parts @ take(q)  # (3, 4, 4): the waiting map first
            forms.append((inst.offset, np.asarray(inst.coefficients, dtype=float), inst.slope))
            prev = last[q]
            if prev is not None and isinstance(ops[prev], list) and ops[prev][2][1] == 0:
                _, old, pair = ops[prev]  # one angle so far: old[3k] are its parts
                ops[prev][1] = np.stack([parts[l] @ old[3 * k] for k in range(3) for l in range(3)])
                pair[1] = len(forms) - 1
            else:
                padded = np.zeros((9, 4, 4))
                padded[0::3] = parts  # u_0(b) = 1 for the constant form b = 0
                ops.append([q, padded, [len(forms) - 1, 0]])
                last[q] = len(ops) - 1
        elif len(inst.qubits) == 1:
            q = inst.qubits[0]
            pending[q] = inst.matrix if pending[q] is None else inst.matrix @ pending[q]
        else:
            qubits = tuple(inst.qubits)
            factors = take(qubits[0])
            for q in qubits[1:]:
                factors = np.kron(factors, take(q))
            matrix = inst.matrix @ factors
            seen = [last[q] for q in qubits if last[q] is not None]
            if not seen:  # nothing has touched these qubits: part of the initial state
                start = apply_on(start, matrix, qubits, n)
                continue
            prev = max(seen)
            if isinstance(ops[prev], Fixed):
                union = tuple(sorted(set(ops[prev].qubits) | set(qubits)))
                if len(union) <= max_block:  # no op since ``prev`` touches ``qubits``: join it
                    joined = embed(matrix, qubits, union) @ embed(ops[prev].matrix, ops[prev].qubits, union)
                    ops[prev] = Fixed(union, joined)
                    for q in qubits:
                        last[q] = prev
                    continue
            ops.append(Fixed(qubits, matrix))
            for q in qubits:
                last[q] = len(ops) - 1
    # The end: waiting maps, then fixed maps that nothing follows, into the functional.
    functional = functional[None]
    for q in range(n):
        if pending[q] is not None:
            functional = apply_on(functional, pending[q].T, (q,), n)
    blocked: set[int] = set()
    kept = []
    for op in reversed(ops):
        qubits = op.qubits if isinstance(op, Fixed) else (op[0],)
        if isinstance(op, Fixed) and not blocked & set(qubits):
            functional = apply_on(functional, op.matrix.T, qubits, n)
        else:
            blocked |= set(qubits)
            kept.append(op)
    compiled, parts = [], []
    for op in reversed(kept):
        if isinstance(op, Fixed):
            compiled.append(Fixed(op.qubits, clean(op.matrix)))
        else:
            compiled.append(Local(op[0], len(parts), tuple(op[2])))
            parts.append(clean(op[1].transpose(0, 2, 1)))
    return Program(n, clean(start[0]), tuple(compiled), np.array(parts).reshape(-1, 9, 4, 4),
                   np.array([f[1] for f in forms]), np.array([f[0] for f in forms]),
                   np.array([f[2] for f in forms]), clean(functional[0]))


def readout_functional(n: int, confusion, final=None) -> np.ndarray:
    """f = sum_{k<n} P(measured k), k big-endian over the circuit's qubits, as a functional
    on r: confusion[q] (2, 2) is qubit q's [measured, prepared] matrix; circuit qubit v is
    measured on qubit final[v] (default v)."""
    final = list(range(n)) if final is None else list(final)
    measured = np.arange(2**n)
    bits = (measured[:, None] >> (n - 1 - np.arange(n))) & 1  # (2**n, n), qubit 0 first
    k = (bits[:, final] << (n - 1 - np.arange(n))).sum(1)  # the circuit's index of each outcome
    g = (k < n).astype(float)[None]  # indicator over measured outcomes
    lift = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, -1.0]])  # Tr(diag(.) sigma) for I, X, Y, Z
    for q in range(n):
        # over prepared outcomes: sum_m ind[m] C[m, p]; then the Pauli coefficients
        view = np.moveaxis(g.reshape(*[2] * q, 2, -1), q, -1)
        g = np.moveaxis(view @ np.asarray(confusion[q], dtype=float), -1, q).reshape(1, -1)
    out = g.reshape(*[2] * n)
    for q in range(n):
        out = np.moveaxis(np.tensordot(lift, out, axes=([1], [q])), 0, q)
    return out.reshape(-1)


# --------------------------------------------------------------------------- running

_TORCH_FROM = 2**16  # multiply-adds from which a product goes through torch


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b; large products through torch (zero-copy), so they run on torch's threads
    (one per trial), not OpenBLAS's own pool: unless its environment variables are set
    before numpy loads, OpenBLAS starts a thread per core, and a 17 x 256 x 256 product
    took 20x longer with another process on the second core."""
    if a.size * b.shape[-1] < _TORCH_FROM:
        return a @ b
    import torch

    return torch.matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def _arrange(state: np.ndarray, order: list[int], target: list[int]) -> np.ndarray:
    """state (B, 4**n) with axes in ``order`` (qubits) rearranged to ``target``."""
    if order == target:
        return state
    n = len(order)
    perm = [0] + [1 + order.index(q) for q in target]
    return np.ascontiguousarray(state.reshape(len(state), *[4] * n).transpose(perm)).reshape(len(state), -1)


def _target(order: list[int], qubits) -> list[int]:
    """An axis order with ``qubits`` last (in their order), the rest as they were."""
    k = len(qubits)
    if order[len(order) - k:] == list(qubits):
        return order
    return [q for q in order if q not in qubits] + list(qubits)


def run(program: Program, angles: np.ndarray, x: np.ndarray, jacobian: bool = False):
    """f at every (angle set, x): angles (G, P), x (M,) -> values (G, M), and with
    ``jacobian`` d values / d angles (G, M, P); float64."""
    n = program.n
    G, M = len(angles), len(x)
    B = G * M
    a = ((angles @ program.forms.T + program.offsets)[:, None, :] + x[:, None] * program.slopes).reshape(B, -1)
    cos, sin = np.cos(a), np.sin(a)
    u = np.stack([np.ones_like(a), cos, sin], -1)  # (B, A, 3)
    locals_ = [op for op in program.ops if isinstance(op, Local)]
    first = np.array([op.forms[0] for op in locals_], dtype=int)
    second = np.array([op.forms[1] for op in locals_], dtype=int)
    w = (u[:, first, :, None] * u[:, second, None, :]).reshape(B, len(locals_), 9)  # (B, L, 9)
    # Every local op's per-row matrix, transposed: (L, B, 4, 4); the state goes as v @ this.
    maps = np.matmul(w.transpose(1, 0, 2), program.parts_t.reshape(len(locals_), 9, 16)).reshape(-1, B, 4, 4)
    state = np.repeat(program.start[None], B, 0)  # (B, 4**n)
    order = list(range(n))
    saved = []
    for op in program.ops:
        target = _target(order, op.qubits)
        state, order = _arrange(state, order, target), target
        k = len(op.qubits)
        view = state.reshape(B, -1, 4**k)  # (B, rest, 4**k)
        if isinstance(op, Fixed):
            state = _matmul(view.reshape(-1, 4**k), op.matrix.T)
        else:
            state = _matmul(view, maps[op.index])  # (B, rest, 4)
        if jacobian:
            saved.append((order, None if isinstance(op, Fixed) else view))  # the op's input, for its slopes
        state = state.reshape(B, -1)
    functional = _arrange(program.functional[None], list(range(n)), order)[0]
    values = _matmul(state, functional[:, None]).reshape(G, M)
    if not jacobian:
        return values, None
    du = np.stack([np.zeros_like(a), -sin, cos], -1)  # (B, A, 3)
    grams = np.empty((len(locals_), B, 16))
    adjoint = np.repeat(functional[None], B, 0)  # (B, 4**n), axes in ``order``
    for op in reversed(program.ops):
        op_order, view = saved.pop()
        adjoint, order = _arrange(adjoint, order, op_order), op_order
        k = len(op.qubits)
        y = adjoint.reshape(B, -1, 4**k)
        if isinstance(op, Fixed):
            adjoint = _matmul(y.reshape(-1, 4**k), op.matrix).reshape(B, -1)
            continue
        grams[op.index] = _matmul(view.transpose(0, 2, 1), y).reshape(B, 16)  # sum over rest of v y^T
        adjoint = _matmul(y, maps[op.index].transpose(0, 2, 1)).reshape(B, -1)
    # <y, P_kl v> per local op and row, then df/da = du(a) t u(b), df/db = u(a) t du(b).
    t = np.matmul(grams, program.parts_t.reshape(len(locals_), 9, 16).transpose(0, 2, 1)).reshape(-1, B, 3, 3)
    ua, ub = u[:, first].transpose(1, 0, 2), u[:, second].transpose(1, 0, 2)  # (L, B, 3)
    # df / d form, per row. Every form but the constant 0 belongs to one slot of one op,
    # so the indexed writes below never collide (form 0's column is junk, its row in
    # ``forms`` zero).
    slopes = np.zeros((B, len(program.offsets)))
    slopes[:, first] = np.einsum("obk,obkl,obl->bo", du[:, first].transpose(1, 0, 2), t, ub)
    slopes[:, second] += np.einsum("obk,obkl,obl->bo", ua, t, du[:, second].transpose(1, 0, 2))
    return values, (slopes @ program.forms).reshape(G, M, -1)
