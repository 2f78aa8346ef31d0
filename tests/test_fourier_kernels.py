"""The power-basis kernels hand cos w, sin w from forward to backward (fast to
compile); compiled, they must give the same bits as the single-pass formulas they
replaced, each of which recomputed the sincos (the reference, kept here)."""

import pytest
import torch

from superpos_cli.quantum.backends import fourier


def _reference_forward(x, coef, omega: float, alpha: float):
    c, s = fourier._sincos(x * omega)
    a, b = list(coef[0].unbind()), list(coef[1].unbind())
    return alpha * x + (fourier._horner(c, a) + s * fourier._horner(c, b[:-1]))


def _reference_backward(x, grad, coef, omega: float, alpha: float):
    c, s = fourier._sincos(x * omega)
    d, e = list(coef[0].unbind()), list(coef[1].unbind())
    grad_x = grad * (alpha + omega * (fourier._horner(c, d) + s * fourier._horner(c, e[:-1])))
    powers = [grad]
    for _ in range(len(d) - 1):
        powers.append(powers[-1] * c)
    return grad_x, torch.stack([torch.stack([t.sum() for t in powers]), torch.stack([(t * s).sum() for t in powers])])


def _compiled(fn):
    return torch.compile(fn, dynamic=True, options=fourier._INDUCTOR_OPTIONS)


def test_split_kernels_equal_the_single_pass_formulas_bit_for_bit():
    torch.manual_seed(0)
    forward, backward = _compiled(fourier._power_forward_kernel), _compiled(fourier._power_backward_kernel)
    ref_forward, ref_backward = _compiled(_reference_forward), _compiled(_reference_backward)
    # Training sizes of textcls (B * H * T * T); the first call fixes both graphs' size hint alike.
    for n in (32 * 4 * 17 * 17, 32 * 4 * 21 * 21, 20 * 4 * 9 * 9, 1001):
        x, grad, coef = torch.randn(n) * 20, torch.randn(n), torch.randn(2, 5)
        y, c, s = forward(x, coef, 0.5, 0.25)
        assert torch.equal(y, ref_forward(x, coef, 0.5, 0.25))
        cos, sin = fourier._sincos(x * 0.5)
        assert torch.equal(c, cos) and torch.equal(s, sin)
        grad_x, moments = backward(c, s, grad, coef, 0.5, 0.25)
        ref_grad_x, ref_moments = ref_backward(x, grad, coef, 0.5, 0.25)
        assert torch.equal(grad_x, ref_grad_x) and torch.equal(moments, ref_moments)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_trig_polynomial_gradients_match_autograd_of_the_formula(dtype):
    """Through TrigPolynomial (c, s saved in forward) vs autograd of the eager formula."""
    torch.manual_seed(1)
    x = (torch.randn(3, 50, dtype=dtype) * 5).requires_grad_()
    coef = torch.randn(2, 5, dtype=dtype, requires_grad=True)
    y = fourier.TrigPolynomial.apply(x, coef, 0.5, 0.25)
    weights = torch.randn_like(y)
    gx, gc = torch.autograd.grad((y * weights).sum(), (x, coef))
    k = torch.arange(5, dtype=dtype)
    xr, cr = x.detach().double().requires_grad_(), coef.detach().double().requires_grad_()
    wr = xr.unsqueeze(-1) * 0.5 * k
    yr = 0.25 * xr + (cr[0] * torch.cos(wr) + cr[1] * torch.sin(wr)).sum(-1)
    rx, rc = torch.autograd.grad((yr * weights.double()).sum(), (xr, cr))
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    assert torch.allclose(y.double(), yr, atol=tol * 10)
    assert torch.allclose(gx.double(), rx, atol=tol * 10) and torch.allclose(gc.double(), rc, rtol=tol, atol=tol * 50)


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_eager_fallback_kernels_equal_the_compiled_formulas(degree):
    """Where no compiler works, the power-basis kernels run with libm cos/sin and
    fused multiply-adds: equal to the kernels' formulas (run here eagerly, in
    float64, where their sincos is libm's) to rounding."""
    torch.manual_seed(degree)
    x, grad = torch.randn(5000, dtype=torch.float64) * 20, torch.randn(5000, dtype=torch.float64)
    coef = torch.randn(2, degree + 1, dtype=torch.float64)
    y, c, s = fourier._eager_power_forward(x, coef, 0.5, 0.25)
    ref_y, ref_c, ref_s = fourier._power_forward_kernel(x, coef, 0.5, 0.25)
    assert torch.allclose(y, ref_y, rtol=0, atol=1e-12) and torch.equal(c, ref_c) and torch.equal(s, ref_s)
    assert torch.allclose(fourier._eager_power_value(x, coef, 0.5, 0.0), fourier._power_value_kernel(x, coef, 0.5, 0.0),
                          rtol=0, atol=1e-12)
    grad_x, moments = fourier._eager_power_backward(c, s, grad, coef, 0.5, 0.25)
    ref_grad_x, ref_moments = fourier._power_backward_kernel(c, s, grad, coef, 0.5, 0.25)
    assert torch.allclose(grad_x, ref_grad_x, rtol=0, atol=1e-12)
    assert torch.allclose(moments, ref_moments, rtol=1e-12, atol=1e-9)
