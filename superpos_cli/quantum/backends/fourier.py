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
import re
import warnings
from functools import lru_cache

import torch

from superpos_cli.quantum.backends import coefficients
from superpos_cli.quantum.backends.torch_backend import TorchCircuit, complex_dtype
from superpos_cli.quantum.circuit import CircuitSpec

class SpectralFallbackWarning(UserWarning):
    """The fourier backend evaluated a readout without a finite spectrum via torch."""


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


# Fused kernels: eager torch would make ~3 passes over memory per polynomial degree;
# inductor turns each kernel into one loop (measured ~10x faster on 2 cores). Compiled
# once per process and degree (about 10-20 s, cached on disk by inductor); where no
# C++ compiler is available the same functions run eagerly.
_KERNELS = {"forward": _forward_kernel, "backward": _backward_kernel}
_compiled: dict[str, object] = {}
COMPILE = True


def _kernel(name: str):
    if not COMPILE:
        return _KERNELS[name]
    if name not in _compiled:
        _compiled[name] = torch.compile(_KERNELS[name], dynamic=True)
    return _compiled[name]


def _run(name: str, *args):
    global COMPILE
    try:
        if COMPILE:
            direct = _direct_call(name, args)
            if direct is not None:
                return direct
        return _kernel(name)(*args)
    except Exception as err:  # noqa: BLE001 - any compiler failure: fall back to eager
        if not COMPILE:
            raise
        warnings.warn(f"torch.compile unavailable ({type(err).__name__}); fourier runs eagerly", RuntimeWarning)
        COMPILE = False
        return _KERNELS[name](*args)


# Direct calls: at the paper's sizes (a few 10k scores) dynamo's per-call work (frame
# evaluation, guards) costs as much as the kernel itself. Each (kernel, dtype, device,
# rank, coefficient shape) gets its own torch.compile whose backend captures the one
# graph inductor built; later calls hand the arguments straight to it. The first call
# checks the direct result against dynamo's bit for bit; anything unexpected (several
# graphs, an unknown input) keeps that key on the ordinary dynamo path.
_ARG_NAMES = {"forward": ("x", "coef", "omega", "alpha"), "backward": ("x", "grad", "coef", "omega", "alpha")}
_direct: dict[tuple, object] = {}


def _direct_key(name: str, args) -> tuple | None:
    *tensors, coef, omega, alpha = args
    x = tensors[0]
    if x.dim() != 1 or x.numel() < 2 or type(omega) is not float or type(alpha) is not float:
        return None
    for t in (*tensors, coef):
        if not t.is_contiguous() or t.requires_grad:
            return None
    return (name, x.dtype, x.device, *(t.dtype for t in tensors[1:]), coef.dtype, coef.device, tuple(coef.shape))


_scalars: dict[tuple, torch.Tensor] = {}


def _scalar(value: float, dtype: torch.dtype) -> torch.Tensor:
    """A 0-dim tensor for a float argument, cached (omega and alpha take few values)."""
    key = (value, dtype)
    out = _scalars.get(key)
    if out is None:
        if len(_scalars) > 256:
            _scalars.clear()
        out = _scalars[key] = torch.tensor(value, dtype=dtype)
    return out


def _direct_call(name: str, args):
    key = _direct_key(name, args)
    if key is None:
        return None
    entry = _direct.get(key)
    if entry is False:
        return None
    if entry is not None:
        fn, builders = entry
        scope = dict(zip(_ARG_NAMES[name], args))
        out = fn(*[build(scope) for build in builders])
        return out[0] if name == "forward" else (out[0], out[1])
    captured = []

    def backend(gm, example_inputs):
        from torch._inductor.compile_fx import compile_fx

        builders = _builders(gm)  # before compile_fx, which drops the placeholders' metadata
        fn = compile_fx(gm, example_inputs)
        captured.append((builders, fn))
        return fn

    result = torch.compile(_KERNELS[name], dynamic=True, backend=backend)(*args)
    _direct[key] = False
    if len(captured) == 1:
        builders, fn = captured[0]
        if builders is not None:
            scope = dict(zip(_ARG_NAMES[name], args))
            out = fn(*[build(scope) for build in builders])
            expected = (result,) if name == "forward" else tuple(result)
            if len(out) >= len(expected) and all(
                    isinstance(o, torch.Tensor) and o.shape == e.shape and torch.equal(o, e)
                    for o, e in zip(out, expected)):
                _direct[key] = fn, builders
    return result


def _builders(gm):
    """Per graph input, a function of the kernel's arguments (by name) that makes it."""
    out = []
    for node in gm.graph.nodes:
        if node.op != "placeholder":
            continue
        grapharg = node.meta.get("grapharg")
        if grapharg is None:
            return None
        source = grapharg.source.name
        source = source() if callable(source) else source
        example = grapharg.example
        match = re.fullmatch(r"L\['(\w+)'\](\.size\(\)\[(\d+)\]|\.storage_offset\(\))?", source)
        if match is None:
            return None
        arg, dim = match.group(1), match.group(3)
        if match.group(2) == ".storage_offset()":
            out.append(lambda scope, arg=arg: scope[arg].storage_offset())
        elif dim is not None:
            out.append(lambda scope, arg=arg, dim=int(dim): scope[arg].shape[dim])
        elif isinstance(example, torch.Tensor) and example.dim() == 0 and arg in ("omega", "alpha"):
            out.append(lambda scope, arg=arg, dtype=example.dtype: _scalar(scope[arg], dtype))
        elif arg in ("x", "coef", "grad"):
            out.append(lambda scope, arg=arg: scope[arg])
        else:
            return None
    return out


class TrigPolynomial(torch.autograd.Function):
    """y = alpha x + sum_k coef[0, k] cos(k omega x) + coef[1, k] sin(k omega x).

    coef: (2, F+1). ``alpha`` lets attention fold its scaled score into the same pass
    (logits = scores / sqrt(d_k) + Phi(scores)). Backward: the analytic derivative in
    x and the coefficient gradient sum_b g_b (cos k w_b, sin k w_b).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, coef: torch.Tensor, omega: float, alpha: float = 0.0) -> torch.Tensor:
        ctx.save_for_backward(x, coef)
        ctx.omega, ctx.alpha = omega, alpha
        # Detached: the kernels never see requires_grad, so training and no-grad
        # evaluation share one compiled graph (no recompile on the first eval).
        return _run("forward", x.detach().reshape(-1), coef.detach(), omega, alpha).view(x.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, coef = ctx.saved_tensors
        grad_x, moments = _run("backward", x.detach().reshape(-1), grad.detach().contiguous().reshape(-1), coef.detach(), ctx.omega, ctx.alpha)
        grad_x = grad_x.view(x.shape)
        return grad_x, moments.to(coef.dtype), None, None


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
                self.coefficients = coefficients.CircuitCoefficients.apply(theta, phi, spec, self.omega, self.degree)
            else:
                self.coefficients = _no_grad_coefficients(spec, self.omega, self.degree, theta, phi)
            return
        n = 2 * self.degree + 1
        w = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n  # (2F+1,)
        samples = self._torch_circuit().evaluate(w / self.omega)  # (2F+1,)
        coef = _dft(self.degree) @ samples.to(torch.complex128)  # (F+1,) C_k
        # f = Re sum C_k e^{ikw} = sum Re C_k cos kw - Im C_k sin kw
        self.coefficients = torch.stack([coef.real, -coef.imag]).to(theta.dtype)  # (2, F+1)

    @classmethod
    def from_coefficients(cls, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, coef: torch.Tensor):
        """A circuit whose coefficients were computed elsewhere (:func:`prepare_group`)."""
        self = cls.__new__(cls)
        self.spec = spec
        self.omega, self.degree = spectrum(spec)
        self._angles = theta, phi
        self._sampler = None
        self.coefficients = coef
        return self

    def _torch_circuit(self) -> TorchCircuit:
        if self._sampler is None:
            theta, phi = self._angles
            self._sampler = TorchCircuit(self.spec, theta.double(), phi.double())
        return self._sampler

    def evaluate(self, x: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
        """x (...) -> readout (...) [+ alpha x], differentiable in x and the coefficients."""
        return TrigPolynomial.apply(x.contiguous(), self.coefficients.to(x.dtype), self.omega, alpha)

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        """Amplitudes come from the (float64) torch simulator, itself a spectral evaluation."""
        return self._torch_circuit().statevector(x.double()).to(complex_dtype(self.coefficients.dtype))


class FourierBackend:
    """Exact spectral evaluation: a few dozen flops per input after 2F+1 circuits."""

    name = "fourier"
    differentiable = True
    sampling = False
    fallback_reason = staticmethod(fallback_reason)

    def prepare(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor) -> FourierCircuit | TorchCircuit:
        reason = fallback_reason(spec)
        if reason is not None:
            warnings.warn(reason, SpectralFallbackWarning, stacklevel=3)
            return TorchCircuit(spec, theta, phi)
        return FourierCircuit(spec, theta, phi)


def prepare_group(spec: CircuitSpec, angles: list[tuple[torch.Tensor, torch.Tensor]]) -> list[FourierCircuit] | None:
    """FourierCircuits for several (theta, phi) of one spec from one batched simulation
    with one autograd node, or None where that does not apply (then prepare each)."""
    if fallback_reason(spec) is not None or not coefficients.fits(spec) or len(angles) < 2:
        return None
    omega, degree = spectrum(spec)
    flat = [a for pair in angles for a in pair]
    coefs = coefficients.GroupCoefficients.apply(spec, omega, degree, *flat)
    return [FourierCircuit.from_coefficients(spec, t, p, c) for (t, p), c in zip(angles, coefs)]
