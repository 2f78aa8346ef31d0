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

from superpos_cli.quantum.backends.torch_backend import TorchCircuit, complex_dtype
from superpos_cli.quantum.circuit import CircuitSpec

# Elements per block: each block's few complex temporaries (8 bytes/element at
# complex64) fit in a core's L2 cache, while keeping the per-op overhead amortised.
BLOCK = 2**16


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


def _unit(w: torch.Tensor) -> torch.Tensor:
    """e^{iw} (torch.polar is not vectorised on CPU; cos and sin are)."""
    return torch.complex(torch.cos(w), torch.sin(w))


def _horner(z: torch.Tensor, coefficients: list[complex]) -> torch.Tensor:
    """sum_k coefficients[k] z^k (at least two coefficients), in place after one op."""
    r = z * coefficients[-1]
    r.add_(coefficients[-2])
    for c in reversed(coefficients[:-2]):
        r.mul_(z).add_(c)
    return r


def _as_complex(coef: torch.Tensor) -> list[complex]:
    re, im = coef.tolist()
    return [complex(a, b) for a, b in zip(re, im)]


class TrigPolynomial(torch.autograd.Function):
    """y = Re sum_{k=0..F} C_k z^k with z = e^{i omega x}; coef = (Re C, Im C), (2, F+1).

    Forward keeps z (one complex per input) for backward: the derivative
    dy/dx = omega Re sum_k i k C_k z^k and the coefficient gradient
    (Re m_k, -Im m_k) with moments m_k = sum_b g_b z_b^k reuse it.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, coef: torch.Tensor, omega: float) -> torch.Tensor:
        c = _as_complex(coef)
        z = _unit(x.reshape(-1) * omega if omega != 1.0 else x.reshape(-1))  # (N,)
        out = torch.empty(z.shape, dtype=x.dtype)
        for zb, ob in zip(z.split(BLOCK), out.split(BLOCK)):
            ob.copy_(_horner(zb, c).real)
        ctx.save_for_backward(z, coef)
        ctx.omega = omega
        return out.view(x.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        z, coef = ctx.saved_tensors
        need_x, need_coef = ctx.needs_input_grad[:2]
        c = _as_complex(coef)
        # sum_{k>=1} i k C_k z^k = z * sum_{k>=1} i k C_k z^(k-1); 0j pads F = 1 to two terms.
        slope = [1j * k * ck for k, ck in enumerate(c)][1:] + [0j]
        gflat = grad.reshape(-1)
        grad_x = torch.empty_like(gflat) if need_x else None
        moments = torch.zeros(len(c), dtype=z.dtype)  # m_k = sum_b g_b z_b^k
        start = 0
        for zb, gb in zip(z.split(BLOCK), gflat.split(BLOCK)):
            if need_x:
                deriv = _horner(zb, slope).mul_(zb)
                torch.mul(deriv.real, gb, out=grad_x[start : start + len(zb)]).mul_(ctx.omega)
            if need_coef:
                power = zb * gb  # g z
                sums = [gb.sum(), power.sum()]
                for _ in range(len(c) - 2):
                    sums.append(power.mul_(zb).sum())
                moments += torch.stack(sums)
            start += len(zb)
        grad_coef = torch.stack([moments.real, -moments.imag]).to(coef.dtype) if need_coef else None  # (2, F+1)
        return (grad_x.view(grad.shape) if need_x else None), grad_coef, None


class FourierCircuit:
    """Readout coefficients sampled once per (theta, phi); any batch x evaluated from them."""

    def __init__(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor):
        self.spec = spec
        self.omega, self.degree = spectrum(spec)
        self._sampler = TorchCircuit(spec, theta.double(), phi.double())
        n = 2 * self.degree + 1
        w = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n  # (2F+1,)
        samples = self._sampler.evaluate(w / self.omega)  # (2F+1,)
        coef = _dft(self.degree) @ samples.to(torch.complex128)  # (F+1,)
        self.coefficients = torch.stack([coef.real, coef.imag]).to(theta.dtype)  # (2, F+1)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """x (...) -> readout (...), differentiable in x and the coefficients."""
        return TrigPolynomial.apply(x, self.coefficients.to(x.dtype), self.omega)

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        """Amplitudes come from the (float64) torch sampler, itself a spectral evaluation."""
        return self._sampler.statevector(x.double()).to(complex_dtype(self.coefficients.dtype))


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
