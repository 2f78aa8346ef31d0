"""Exact spectral path (paper-spec §2): the readout as a trigonometric polynomial.

With L encodings each amplitude has frequencies -L/2..L/2 in x (step 1), so

- ``real`` readout: frequencies up to L/2 in x; for odd L they are half-integers, so
  we use the base angle w = x/2 (period 4 pi) and F = L (odd harmonics only);
- ``prob`` readout: |psi|^2 has frequencies up to L in x (w = x, F = L);
- ``abs`` readout: a square root of such a polynomial has no finite spectrum, so the
  backend falls back to the torch statevector path and says so
  (:func:`fallback_reason` and a :class:`SpectralFallbackWarning`).

Sampling f at the 2F+1 points w_j = 2 pi j / (2F+1) and taking a DFT gives the
coefficients exactly: f(w) = Re sum_{k=0..F} C_k e^{ikw}. The samples come from the
torch backend in float64, so theta and phi get gradients through them.

Evaluation on a batch is Horner's rule in z = e^{iw} on the unit circle (backward
stable), in blocks that stay in cache: one cos, one sin and ~2F complex elementwise
ops per input, nothing of size (B, F) in memory. :class:`TrigPolynomial` gives the
analytic derivative in x and the coefficient gradient sum_b g_b e^{ikw_b}.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import torch

from superpos_cli.quantum.backends import coefficients, trig_native
from superpos_cli.quantum.backends.direct import DirectKernels
from superpos_cli.quantum.backends.torch_backend import TorchCircuit, complex_dtype, with_shots
from superpos_cli.quantum.circuit import CircuitSpec
from superpos_cli.quantum.score_mask import ScoreMask

class SpectralFallbackWarning(UserWarning):
    """The fourier backend evaluated a readout without a finite spectrum via torch."""


@lru_cache(maxsize=None)  # called per layer and step; n_encodings walks the circuit's ops
def spectrum(spec: CircuitSpec) -> tuple[float, int] | None:
    """(omega, F): the readout is a trig polynomial of degree F in w = omega * x; None
    when it has no finite spectrum."""
    L = spec.n_encodings
    if spec.readout == "real":
        return (1.0, L // 2) if L % 2 == 0 else (0.5, L)
    if spec.readout == "prob":
        return 1.0, L
    return None


def fallback_reason(spec: CircuitSpec) -> str | None:
    """Why the fourier backend cannot be exact for ``spec`` (then it uses torch), or None."""
    if spectrum(spec) is None:
        return f"readout {spec.readout!r} has no finite Fourier spectrum; fourier falls back to torch"
    return None


@lru_cache(maxsize=None)
def _dft(degree: int) -> torch.Tensor:
    """(F+1, 2F+1) complex128 map from samples at w_j = 2 pi j/(2F+1) to C_0..C_F."""
    n = 2 * degree + 1
    k = torch.arange(degree + 1, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    weight = torch.full_like(k, 2.0 / n)  # c_k and c_{-k} fold into 2 Re(c_k z^k) ...
    weight[0] = 1.0 / n  # ... except for k = 0
    angle = -2 * math.pi * k * j / n
    return weight * torch.polar(torch.ones_like(angle), angle)  # (F+1, 2F+1)


def _clenshaw(c: torch.Tensor, s: torch.Tensor, cos_coef: list, sin_coef: list) -> torch.Tensor:
    """sum_k cos_coef[k] cos(kw) + sin_coef[k] sin(kw) from c = cos w, s = sin w.

    Clenshaw's recurrence for the Chebyshev series sum a_k T_k(c) and, with the same
    multiplier 2c, for sum b_k U_{k-1}(c) (sin kw = s U_{k-1}(c)): backward stable for
    any degree, unlike expanding into powers of c.
    """
    c2 = 2 * c
    b1 = b2 = d1 = d2 = 0.0
    for k in range(len(cos_coef) - 1, 0, -1):
        b1, b2 = cos_coef[k] + c2 * b1 - b2, b1
        d1, d2 = sin_coef[k] + c2 * d1 - d2, d1
    return cos_coef[0] + c * b1 - b2 + s * d1


def _forward_kernel(x: torch.Tensor, coef: torch.Tensor, omega: float, alpha: float) -> torch.Tensor:
    """alpha x + sum_k coef[0, k] cos(k omega x) + coef[1, k] sin(k omega x)."""
    w = x * omega
    return alpha * x + _clenshaw(torch.cos(w), torch.sin(w), list(coef[0].unbind()), list(coef[1].unbind()))


def _backward_kernel(x, grad, coef, omega: float, alpha: float):
    """(grad * dy/dx, moments (2, F+1) = sum_b grad_b (cos k w_b, sin k w_b))."""
    w = x * omega
    c, s = torch.cos(w), torch.sin(w)
    degree = coef.shape[1] - 1
    ks = range(degree + 1)
    # d/dw sum a_k cos kw + b_k sin kw = sum k b_k cos kw - k a_k sin kw
    slope = _clenshaw(c, s, [k * coef[1, k] for k in ks], [-k * coef[0, k] for k in ks])
    grad_x = grad * (alpha + omega * slope)
    # cos kw, sin kw by the Chebyshev recurrence t_{k+1} = 2c t_k - t_{k-1}.
    cos_k, sin_k = [torch.ones_like(c), c], [torch.zeros_like(s), s]
    for _ in range(2, degree + 1):
        cos_k.append(2 * c * cos_k[-1] - cos_k[-2])
        sin_k.append(2 * c * sin_k[-1] - sin_k[-2])
    moments = torch.stack(
        [torch.stack([(grad * t).sum() for t in cos_k[: degree + 1]]),
         torch.stack([(grad * t).sum() for t in sin_k[: degree + 1]])]
    )  # (2, F+1)
    return grad_x, moments


# ----------------------------------------------------------------- power basis
# For low degrees the polynomial is evaluated in the power basis of c = cos w:
#     f = A(c) + s B(c),   A = sum_k coef[0, k] T_k,   B = sum_k coef[1, k] U_{k-1}
# (cos kw = T_k(c), sin kw = s U_{k-1}(c)): Horner's rule is half of Clenshaw's flops.
# The monomial coefficients of T_k grow like 2^k, so rounding grows with them; up to
# degree 4 (the paper's 4 qubits x depth 2, ``real``) the float32 results stay within
# 1e-5 of Qiskit (tests), and higher degrees keep Clenshaw.
POWER_BASIS_MAX_DEGREE = 4


def _chebyshev_monomials(degree: int) -> tuple[list[list[int]], list[list[int]]]:
    """(T, U): T[k][j], U[k][j] the c^j coefficient of T_k, U_k, for k = 0..degree."""
    T, U = [[1], [0, 1]], [[1], [0, 2]]
    for k in range(2, degree + 1):
        for table in (T, U):
            prev, prev2 = table[k - 1] + [0], table[k - 2] + [0, 0]
            table.append([2 * (prev[j - 1] if j else 0) - prev2[j] for j in range(k + 1)])
    return T, U


@lru_cache(maxsize=None)
def _power_maps(degree: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(tables, power): linear maps of the flattened coef (2(F+1),).

    ``coef_flat @ tables`` -> (4, F+1) rows a, b, d, e (flattened): f = A(c) + s B(c)
    with A = sum a_j c^j, B = sum b_j c^j, and df/dw = D(c) + s E(c), where
    D = c B - (1 - c^2) B' (d_j = j b_{j-1} - (j+1) b_{j+1}) and E = -A'
    (e_j = -(j+1) a_{j+1}). ``power`` (2(F+1), 2(F+1)) maps coef to (a, b) alone;
    the coefficient gradient is ``power @ moments`` with moments
    (sum g c^j, sum g s c^j) from the backward kernel.
    """
    T, U = _chebyshev_monomials(degree)
    n = degree + 1
    power = torch.zeros(2 * n, 2 * n, dtype=torch.float64)
    for k in range(n):
        for j, value in enumerate(T[k]):
            power[k, j] = value  # a_j += coef[0, k] T_k[j]
        if k:
            for j, value in enumerate(U[k - 1]):
                power[n + k, n + j] = value  # b_j += coef[1, k] U_{k-1}[j]
    slope = torch.zeros(2 * n, 2 * n, dtype=torch.float64)  # (a, b) -> (d, e)
    for j in range(n):
        if j:
            slope[n + j - 1, j] += j  # d_j += j b_{j-1}
        if j + 1 < n:
            slope[n + j + 1, j] -= j + 1  # d_j -= (j+1) b_{j+1}
            slope[j + 1, n + j] = -(j + 1)  # e_j = -(j+1) a_{j+1}
    tables = torch.cat([power, power @ slope], dim=1)  # (2n, 4n)
    return tables.to(device, dtype), power.to(device, dtype)


def _sincos(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos w, sin w); in float32 without libm: about 30 vector ops once compiled,
    a third of two vectorized libm calls.

    n = round(w / 2 pi); r = w - 2 pi n in [-pi, pi], with 2 pi split into three
    parts (Cody-Waite; n * 6.28125 is exact for |w| < 4e5); then least-squares fits
    on Chebyshev nodes, sin r = r P(r^2) (degree 11) and cos r = Q(r^2) (degree 12).
    Absolute error below 1e-6 for |w| < 1e4, growing to 4e-6 at 4e5 (float32 libm:
    4e-8; the float32 rounding of w itself is 6e-8 |w|); other dtypes use torch's.
    """
    if w.dtype != torch.float32:
        return torch.cos(w), torch.sin(w)
    n = torch.round(w * 0.15915494309189535)
    r = ((w - n * 6.28125) - n * 0.0019353071693331003) - n * 1.0253131677018246e-11
    z = r * r
    sin = (((((-2.0362245223282116e-08 * z + 2.699714741538628e-06) * z - 0.00019808633078355342) * z
             + 0.008332403376698494) * z - 0.16666552424430847) * z + 0.9999995827674866) * r
    cos = (((((1.7245092021056507e-09 * z - 2.707903092868946e-07) * z + 2.47698826569831e-05) * z
             - 0.0013887803070247173) * z + 0.04166648909449577) * z - 0.49999988079071045) * z + 1.0
    return cos, sin


def _horner(c: torch.Tensor, coefficients: list) -> torch.Tensor:
    """sum_j coefficients[j] c^j."""
    out = coefficients[-1]
    for value in reversed(coefficients[:-1]):
        out = out * c + value
    return out


def _power_forward_kernel(x: torch.Tensor, coef: torch.Tensor, omega: float, alpha: float):
    """(alpha x + A(c) + s B(c), c, s), coef (2, F+1) = rows a, b of :func:`_power_maps`.

    c and s are outputs for the backward pass, which then needs no sincos of its own.
    As outputs they are computed once in inductor's generated code, not re-expanded
    at each of their uses (about 30 ops each): the forward compiles in half the time
    and the backward in a tenth, with the same float operations, so the same bits.
    """
    c, s = _sincos(x * omega)
    a, b = list(coef[0].unbind()), list(coef[1].unbind())
    return alpha * x + (_horner(c, a) + s * _horner(c, b[:-1])), c, s


def _power_value_kernel(x: torch.Tensor, coef: torch.Tensor, omega: float, alpha: float) -> torch.Tensor:
    """The value of :func:`_power_forward_kernel` alone (same float operations), for
    evaluations without grad: one output, a third of the forward's memory writes."""
    c, s = _sincos(x * omega)
    a, b = list(coef[0].unbind()), list(coef[1].unbind())
    return alpha * x + (_horner(c, a) + s * _horner(c, b[:-1]))


def _power_backward_kernel(c, s, grad, coef, omega: float, alpha: float):
    """(grad * dy/dx, moments (2, F+1) = sum_b grad_b (c^j, s c^j)), coef = rows d, e;
    c, s = cos w, sin w from :func:`_power_forward_kernel`."""
    d, e = list(coef[0].unbind()), list(coef[1].unbind())
    grad_x = grad * (alpha + omega * (_horner(c, d) + s * _horner(c, e[:-1])))
    powers = [grad]
    for _ in range(len(d) - 1):
        powers.append(powers[-1] * c)
    moments = torch.stack([torch.stack([t.sum() for t in powers]), torch.stack([(t * s).sum() for t in powers])])
    return grad_x, moments


# Fused kernels: eager torch would make ~3 passes over memory per polynomial degree;
# inductor turns each kernel into one loop (measured ~10x faster on 2 cores). Compiled
# once per process and degree (about 10-20 s, cached on disk by inductor); where no
# C++ compiler is available the same functions run eagerly.
def _horner_fma(c: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """sum_j coefficients[j] c^j (coefficients (J,), J >= 1), one multiply-add pass per degree."""
    if coefficients.shape[0] == 1:
        return coefficients[0].expand_as(c)
    out = torch.addcmul(coefficients[-2], c, coefficients[-1])
    for j in range(coefficients.shape[0] - 3, -1, -1):
        out = torch.addcmul(coefficients[j], out, c)
    return out


def _eager_power_forward(x: torch.Tensor, coef: torch.Tensor, omega: float, alpha: float):
    """:func:`_power_forward_kernel` for eager torch: libm cos and sin (one pass each,
    vectorized; the kernels' 30-op sincos pays only when fused) and one fused
    multiply-add per degree. Equal to the kernel to float rounding."""
    w = x * omega
    c, s = torch.cos(w), torch.sin(w)
    y = _horner_fma(c, coef[0]).addcmul(s, _horner_fma(c, coef[1, :-1]))
    return (y.add_(x, alpha=alpha) if alpha else y), c, s


def _eager_power_value(x: torch.Tensor, coef: torch.Tensor, omega: float, alpha: float) -> torch.Tensor:
    return _eager_power_forward(x, coef, omega, alpha)[0]


def _eager_power_backward(c, s, grad, coef, omega: float, alpha: float):
    """:func:`_power_backward_kernel` for eager torch: the moments as one (F+1, N)
    stack of grad c^j and two reductions."""
    slope = _horner_fma(c, coef[0]).addcmul(s, _horner_fma(c, coef[1, :-1]))
    grad_x = grad * (slope.mul_(omega).add_(alpha) if alpha else slope.mul_(omega))
    powers = [grad]
    for _ in range(coef.shape[1] - 1):
        powers.append(powers[-1] * c)
    stacked = torch.stack(powers)  # (F+1, N)
    return grad_x, torch.stack([stacked.sum(1), stacked @ s])  # (2, F+1)


# Eager kernels: small calls (:data:`EAGER_UP_TO`), and every call where no compiler
# works. Clenshaw's kernels as they are (libm cos/sin), the power-basis ones with libm
# instead of the 30-op sincos that pays only when fused.
_EAGER_KERNELS = {"forward": _forward_kernel, "backward": _backward_kernel,
                  "power_forward": _eager_power_forward, "power_value": _eager_power_value,
                  "power_backward": _eager_power_backward}
_KERNELS = {"forward": _forward_kernel, "backward": _backward_kernel,
            "power_forward": _power_forward_kernel, "power_value": _power_value_kernel,
            "power_backward": _power_backward_kernel}
COMPILE = True
# Inductor stores a pointwise value used several times in a buffer once it costs
# over 30 ops; the power-basis backward reuses c (a sincos of ~30 ops) and its
# powers in nine sums, which then became ten passes over memory instead of one.
_INDUCTOR_OPTIONS = {"realize_opcount_threshold": 1000}


# The torch kernels (CUDA, no C compiler, SUPERPOS_NATIVE=0): calls of up to this many
# scores run eagerly, larger ones compiled (the first compiled kernel of a process costs
# 5.6 s on a warm inductor cache, ~20 s more on a cold one; above this size the fused
# kernel is ~10x faster than eager ops).
EAGER_UP_TO = 1 << 18


def _kernel(name: str, *args):
    """Torch kernel ``name`` on ``args`` (the first a flat tensor of scores): eager up to
    :data:`EAGER_UP_TO` scores, compiled above."""
    if args[0].numel() <= EAGER_UP_TO:
        return _EAGER_KERNELS[name](*args)
    return _run(name, *args)


def _run(name: str, *args):
    global COMPILE
    if COMPILE:
        try:
            return _DIRECT.run(name, args)
        except Exception as err:  # noqa: BLE001 - any compiler failure: fall back to eager
            warnings.warn(f"torch.compile unavailable ({type(err).__name__}); fourier runs eagerly", RuntimeWarning)
            COMPILE = False
    return _EAGER_KERNELS[name](*args)


# Direct calls (:mod:`.direct`): at the paper's sizes dynamo's per-call work costs as
# much as the kernel itself.
_DIRECT = DirectKernels(
    _KERNELS,
    {"forward": ("x", "coef", "omega", "alpha"), "backward": ("x", "grad", "coef", "omega", "alpha"),
     "power_forward": ("x", "coef", "omega", "alpha"), "power_value": ("x", "coef", "omega", "alpha"),
     "power_backward": ("c", "s", "grad", "coef", "omega", "alpha")},
    {"forward": 1, "backward": 2, "power_forward": 3, "power_value": 1, "power_backward": 2},
    _INDUCTOR_OPTIONS)


# No-grad evaluations of up to this many scores run the training kernel and drop its
# c and s: in cache those writes cost nothing measurable (textcls evaluations, at most
# ~2**18 scores a call, took as long), and the value-only kernel costs a compile of its
# own, about 14 s per process on a cold inductor cache (its sincos re-expanded into
# every Horner term makes inductor's codegen slow, not the C++), which the main job
# then never pays. Above it the two extra outputs leave the cache: bench's 4.2M-score
# pass ran 1.11-1.19x a cos pass with them (0.94-1.05 without), once 6.5x (fresh 33 MB
# allocations every call), so large evaluations take the value-only kernel.
VALUE_KERNEL_ABOVE = 1 << 18


# CPU tensors run trig_kernels.c (:mod:`.trig_native`) where it builds; the torch kernels
# above then serve CUDA, machines without a C compiler and ``SUPERPOS_NATIVE=0``. Tests
# of the torch kernels turn this off.
NATIVE = True


class TrigPolynomial(torch.autograd.Function):
    """y = alpha x + sum_k coef[0, k] cos(k omega x) + coef[1, k] sin(k omega x).

    coef: (2, F+1). ``alpha`` lets attention fold its scaled score into the same pass
    (logits = scores / sqrt(d_k) + Phi(scores)). Backward: the analytic derivative in
    x and the coefficient gradient sum_b g_b (cos k w_b, sin k w_b). On CPU the C
    kernels of :mod:`.trig_native` (only x is saved); elsewhere degrees up to
    :data:`POWER_BASIS_MAX_DEGREE` run the power-basis kernels, higher ones Clenshaw.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, coef: torch.Tensor, omega: float, alpha: float = 0.0) -> torch.Tensor:
        ctx.omega, ctx.alpha, ctx.shape, ctx.coef_dtype = omega, alpha, x.shape, coef.dtype
        # Detached: the kernels never see requires_grad, so training and no-grad
        # evaluation share one compiled graph (no recompile on the first eval).
        flat, coef = x.detach().reshape(-1), coef.detach()
        degree = coef.shape[1] - 1
        native = trig_native.kernels(flat, degree) if NATIVE else None
        if native is not None:  # CPU: one C pass each way, any degree (trig_native)
            coef = coef.to(x.dtype).contiguous()
            if any(ctx.needs_input_grad[:2]):
                ctx.native, ctx.native_coef = native, coef
                ctx.save_for_backward(x)
            return native.forward(flat, coef, omega, alpha).view(x.shape)
        if degree > POWER_BASIS_MAX_DEGREE:
            ctx.save_for_backward(x, coef)
            return _kernel("forward", flat, coef, omega, alpha).view(x.shape)
        if coef.dtype != x.dtype:  # evaluate() hands it over in x's dtype already
            coef = coef.to(x.dtype)
        tables = (coef.reshape(-1) @ _power_maps(degree, coef.dtype, coef.device)[0]).view(4, degree + 1)
        ctx.slope_table = tables[2:]  # rows d, e
        ctx.power = _power_maps(degree, coef.dtype, coef.device)[1]
        if not any(ctx.needs_input_grad[:2]):  # no grad asked for (an evaluation): nothing to save
            if flat.numel() <= VALUE_KERNEL_ABOVE:
                return _kernel("power_forward", flat, tables[:2], omega, alpha)[0].view(x.shape)
            return _kernel("power_value", flat, tables[:2], omega, alpha).view(x.shape)
        y, c, s = _kernel("power_forward", flat, tables[:2], omega, alpha)
        ctx.save_for_backward(c, s)  # cos w, sin w (N,) each
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.detach().contiguous().reshape(-1)
        if hasattr(ctx, "native"):
            (x,) = ctx.saved_tensors
            grad_x, moments = ctx.native.backward(x.detach().reshape(-1), grad, ctx.native_coef, ctx.omega,
                                                  ctx.alpha)
        elif not hasattr(ctx, "power"):  # Clenshaw (degree > POWER_BASIS_MAX_DEGREE)
            x, coef = ctx.saved_tensors
            grad_x, moments = _kernel("backward", x.detach().reshape(-1), grad, coef.detach(), ctx.omega, ctx.alpha)
        else:
            c, s = ctx.saved_tensors
            grad_x, power_moments = _kernel("power_backward", c, s, grad, ctx.slope_table, ctx.omega, ctx.alpha)
            moments = torch.mv(ctx.power, power_moments.reshape(-1).to(ctx.power.dtype))
        moments = moments.view(2, -1)  # (2, F+1), coef's shape
        dtype = ctx.coef_dtype
        return grad_x.view(ctx.shape), moments if moments.dtype == dtype else moments.to(dtype), None, None


def _angle_readout(theta: torch.Tensor, phi: torch.Tensor) -> bool:
    """Whether circuits of these angles take the detached-coefficient path (:class:`AngleReadout`):
    CPU angles whose dtype the C kernels serve. Elsewhere (CUDA, no compiler) the coefficients
    stay differentiable instead of being simulated twice."""
    return (NATIVE and theta.device.type == "cpu" and phi.device.type == "cpu"
            and trig_native.available(theta.dtype))


class AngleReadout(torch.autograd.Function):
    """(x, theta, phi) -> TrigPolynomial(x) with coefficients from a simulation done beforehand,
    one autograd node: backward gives x's gradient and the angles' (jacobian^T moments).

    For layers prepared together on CPU (:func:`prepare_group`): their coefficients and
    Jacobians come from one no-grad simulation, so a step has no coefficient node at all. In
    training the coefficient node's forward and backward (an autograd Function's bookkeeping
    and a few torch ops, each 5-10x its usual cost right after the step's large matrix
    products) took longer than the simulation. ``coef`` (2, F+1) in x's dtype, detached;
    ``jacobian`` numpy (2Dn, 2(F+1)); ``native`` the :class:`.trig_native.TrigKernels`.
    """

    @staticmethod
    def forward(ctx, x, theta, phi, coef, jacobian, native, omega: float, alpha: float, mask=None):
        # x contiguous (evaluate makes sure); the kernels read any shape as flat. Detached,
        # so kept on ctx without the reference cycle a saved input would otherwise need.
        # ``mask`` (a ScoreMask, x then (B, H, T, T)): its fill where it masks, in the same pass.
        scores = x.detach()
        if jacobian.dtype != native.numpy_dtype:
            jacobian = jacobian.astype(native.numpy_dtype)
        ctx.state = scores, coef, jacobian, native, omega, alpha, (2, *theta.shape), theta.dtype, phi.dtype, mask
        return native.forward(scores, coef, omega, alpha, mask=mask)

    @staticmethod
    def backward(ctx, grad):
        scores, coef, jacobian, native, omega, alpha, shape, theta_dtype, phi_dtype, mask = ctx.state
        if not grad.is_contiguous():
            grad = grad.contiguous()
        grad_x, angles = native.backward_angles(scores, grad, coef, omega, alpha, jacobian, shape,
                                                mask=mask)  # angles (theta/phi, D, n)
        g_theta, g_phi = angles.unbind(0)
        if g_theta.dtype != theta_dtype or g_phi.dtype != phi_dtype:
            g_theta, g_phi = g_theta.to(theta_dtype), g_phi.to(phi_dtype)
        return grad_x, g_theta, g_phi, None, None, None, None, None, None


# No-grad evaluation prepares the same angles again and again (every batch of an
# evaluation pass): reuse the last coefficients per spec while the angles are equal.
_EVAL_CACHE: dict[tuple, tuple] = {}


def _no_grad_coefficients(spec: CircuitSpec, omega: float, degree: int, theta: torch.Tensor, phi: torch.Tensor):
    key = (spec, omega, degree, theta.dtype, phi.dtype, theta.device)
    hit = _EVAL_CACHE.get(key)
    if hit is not None and torch.equal(hit[0], theta) and torch.equal(hit[1], phi):
        return hit[2]
    coef, _ = coefficients.coefficients_and_jacobian(spec, omega, degree, theta, phi)
    coef = torch.from_numpy(coef).to(theta.device, theta.dtype)
    _EVAL_CACHE[key] = theta.detach().clone(), phi.detach().clone(), coef
    return coef


class FourierCircuit:
    """Readout coefficients computed once per (theta, phi); any batch x evaluated from them.

    Small circuits (all the paper's) get the coefficients and their Jacobian from one
    batched simulation (:mod:`coefficients`), so autograd sees one node for them;
    larger ones sample 2F+1 circuits on the torch backend and take a DFT, with
    autograd through the samples.
    """

    def __init__(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor):
        self.spec = spec
        self.omega, self.degree = spectrum(spec)
        self._angles = theta, phi
        self._sampler = None
        if coefficients.fits(spec):
            if torch.is_grad_enabled() and (theta.requires_grad or phi.requires_grad):
                if _angle_readout(theta, phi):
                    # detached coefficients and their Jacobian: evaluate's AngleReadout applies it
                    coef, jacobian = coefficients.coefficients_and_jacobian(spec, self.omega, self.degree, theta, phi)
                    self.coefficients = torch.from_numpy(coef).to(theta.dtype)
                    self._jacobian = jacobian.reshape(len(jacobian), -1)  # (2Dn, 2(F+1))
                else:
                    self.coefficients = coefficients.CircuitCoefficients.apply(theta, phi, spec, self.omega,
                                                                               self.degree)
            else:
                self.coefficients = _no_grad_coefficients(spec, self.omega, self.degree, theta, phi)
            return
        n = 2 * self.degree + 1
        w = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n  # (2F+1,)
        samples = self._torch_circuit().evaluate(w / self.omega)  # (2F+1,)
        coef = _dft(self.degree) @ samples.to(torch.complex128)  # (F+1,) C_k
        # f = Re sum C_k e^{ikw} = sum Re C_k cos kw - Im C_k sin kw
        self.coefficients = torch.stack([coef.real, -coef.imag]).to(theta.dtype)  # (2, F+1)

    _jacobian = None  # numpy (2Dn, 2(F+1)) d coef / d angles, where the coefficients are detached

    @classmethod
    def from_coefficients(cls, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, coef: torch.Tensor,
                          jacobian=None):
        """A circuit whose coefficients were computed elsewhere (:func:`prepare_group`): either
        differentiable in the angles, or detached with their ``jacobian`` (numpy, (2Dn, 2(F+1))),
        which :meth:`evaluate` then applies in its own backward."""
        self = cls.__new__(cls)
        self.spec = spec
        self.omega, self.degree = spectrum(spec)
        self._angles = theta, phi
        self._sampler = None
        self.coefficients = coef
        self._jacobian = jacobian
        return self

    def _torch_circuit(self) -> TorchCircuit:
        if self._sampler is None:
            theta, phi = self._angles
            self._sampler = TorchCircuit(self.spec, theta.double(), phi.double())
        return self._sampler

    # evaluate() takes a ScoreMask (attention passes its mask rather than masked_fill after)
    takes_mask = True

    def evaluate(self, x: torch.Tensor, alpha: float = 0.0, mask: ScoreMask | None = None) -> torch.Tensor:
        """x (...) -> readout (...) [+ alpha x], differentiable in x and the coefficients (or,
        for circuits carrying a Jacobian, in the angles directly). With ``mask`` (x then
        (B, H, T, T) scores), the masked positions hold its fill: ``mask.apply`` of the result,
        folded into the C pass each way where the angles' Jacobian path runs (training on CPU)."""
        if self._jacobian is not None and torch.is_grad_enabled():
            theta, phi = self._angles
            native = trig_native.kernels(x, self.degree) if NATIVE else None
            if native is not None:
                coef = self.coefficients
                if coef.dtype != x.dtype:
                    coef = coef.to(x.dtype).contiguous()
                return AngleReadout.apply(x if x.is_contiguous() else x.contiguous(), theta, phi, coef,
                                          self._jacobian, native, self.omega, alpha, mask)
            # x the C kernels do not take (another dtype): differentiable coefficients instead
            coef = coefficients.CircuitCoefficients.apply(theta, phi, self.spec, self.omega, self.degree)
            y = TrigPolynomial.apply(x.contiguous(), coef.to(x.dtype), self.omega, alpha)
        else:
            y = TrigPolynomial.apply(x.contiguous(), self.coefficients.to(x.dtype), self.omega, alpha)
        return y if mask is None else mask.apply(y)

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        """Amplitudes come from the (float64) torch simulator, itself a spectral evaluation."""
        return self._torch_circuit().statevector(x.double()).to(complex_dtype(self.coefficients.dtype))


class FourierBackend:
    """Exact spectral evaluation: a few dozen flops per input after 2F+1 circuits.

    Noisy circuits (``prob`` readout) take their coefficients from a density-matrix
    simulation (:mod:`.density`, where the argument for exactness is written down);
    ``shots`` samples the readout (:mod:`.shots`).
    """

    name = "fourier"
    differentiable = True
    options = frozenset({"generator"})
    fallback_reason = staticmethod(fallback_reason)

    def supports(self, spec: CircuitSpec) -> str | None:
        return None

    def prepare(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, *,
                generator: torch.Generator | None = None):
        return self._finish(spec, self._exact(spec, theta, phi), generator)

    def prepare_many(self, spec: CircuitSpec, angles, *, generator: torch.Generator | None = None) -> list:
        """One batched simulation (one autograd node) for all angle sets where it
        applies (:func:`prepare_group`), else one prepare each."""
        if spec.noisy:
            from superpos_cli.quantum.backends.density import prepare_noisy_many

            group = prepare_noisy_many(spec, angles)
        else:
            group = prepare_group(spec, angles)
        if group is None:
            group = [self._exact(spec, theta, phi) for theta, phi in angles]
        return [self._finish(spec, circuit, generator) for circuit in group]

    def _exact(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor):
        if spec.noisy:
            from superpos_cli.quantum.backends.density import NoisyFourierCircuit

            return NoisyFourierCircuit(spec, theta, phi)
        reason = fallback_reason(spec)
        if reason is not None:
            warnings.warn(reason, SpectralFallbackWarning, stacklevel=4)
            return TorchCircuit(spec, theta, phi)
        return FourierCircuit(spec, theta, phi)

    @staticmethod
    def _finish(spec: CircuitSpec, circuit, generator):
        return circuit if spec.shots is None else with_shots(circuit, spec, generator)


def prepare_group(spec: CircuitSpec, angles) -> list[FourierCircuit] | None:
    """FourierCircuits for several (theta, phi) of one spec from one batched simulation
    with one autograd node, or None where that does not apply (then prepare each)."""
    if fallback_reason(spec) is not None or not coefficients.fits(spec) or len(angles) < 2:
        return None
    omega, degree = spectrum(spec)
    if all(_angle_readout(t, p) for t, p in angles):
        # One no-grad simulation; each circuit applies its Jacobian itself (AngleReadout).
        flat = torch.stack([a.detach() for pair in angles for a in pair])  # one torch op: np.stack took 2x as long
        stacked = flat.numpy().reshape(len(angles), 2, *flat.shape[1:])  # (G, 2, D, n)
        coef, jacobian = coefficients.group_coefficients_and_jacobian(spec, omega, degree, stacked)
        jacobian = jacobian.reshape(*jacobian.shape[:2], -1)  # (G, 2Dn, 2(F+1))
        return [FourierCircuit.from_coefficients(spec, t, p, torch.from_numpy(c).to(t.dtype), j)
                for (t, p), c, j in zip(angles, coef, jacobian)]
    flat = [a for pair in angles for a in pair]
    coefs = coefficients.GroupCoefficients.apply(spec, omega, degree, *flat)
    return [FourierCircuit.from_coefficients(spec, t, p, c) for (t, p), c in zip(angles, coefs)]
