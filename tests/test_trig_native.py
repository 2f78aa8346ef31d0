"""trig_kernels.c (fourier's trigonometric polynomial on CPU) against float64 torch references.

The reference is fourier's eager Clenshaw forward and its backward (libm cos and sin in
float64), itself checked against Qiskit in tests/test_quantum_backends.py. Degrees cover
the specialised loops (1..FIXED_UP_TO = 8) and the generic one above; sizes cross the
C side's block (512) and its one-thread limit (16384).
"""

import shutil

import pytest
import torch

from superpos_cli import native
from superpos_cli.quantum.backends import fourier, trig_native

needs_compiler = pytest.mark.skipif(shutil.which("cc") is None or not native.enabled(),
                                    reason="no C compiler (the torch kernels run instead)")
pytestmark = needs_compiler

DEGREES = [1, 2, 3, 4, 5, 8, 9, 13]
SIZES = [1, 511, 513, 16385, 40000]


def _inputs(n: int, degree: int, dtype: torch.dtype, seed: int = 0, spread: float = 8.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=gen, dtype=torch.float64) * spread
    coef = torch.randn(2, degree + 1, generator=gen, dtype=torch.float64)
    grad = torch.randn(n, generator=gen, dtype=torch.float64)
    return x.to(dtype), coef.to(dtype), grad.to(dtype)


def test_the_library_builds_and_loads_for_both_dtypes():
    for dtype in (torch.float32, torch.float64):
        assert trig_native.kernels(torch.zeros(3, dtype=dtype), 4) is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("n", SIZES)
def test_forward_and_backward_match_the_float64_reference(n, degree, dtype):
    x, coef, grad = _inputs(n, degree, dtype, seed=degree * 100 + n)
    kernels = trig_native.kernels(x, degree)
    y = kernels.forward(x, coef, 0.5, 0.25)
    grad_x, moments = kernels.backward(x, grad, coef, 0.5, 0.25)
    x64, coef64, grad64 = x.double(), coef.double(), grad.double()
    ref_y = fourier._forward_kernel(x64, coef64, 0.5, 0.25)
    ref_grad_x, ref_moments = fourier._backward_kernel(x64, grad64, coef64, 0.5, 0.25)
    # float32: the polynomial sincos (1e-6) and the recurrence's rounding grow with k.
    eps = 1e-6 if dtype == torch.float32 else 1e-13
    scale = 1 + coef64.abs().sum().item()
    torch.testing.assert_close(y.double(), ref_y, rtol=0, atol=eps * scale * (degree + 1))
    torch.testing.assert_close(grad_x.double(), ref_grad_x, rtol=0, atol=eps * scale * (degree + 1) ** 2)
    assert moments.dtype == torch.float64 and moments.shape == (2, degree + 1)
    torch.testing.assert_close(moments, ref_moments, rtol=0,
                               atol=eps * grad64.abs().sum().item() * (degree + 1) ** 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("degree", [4, 13])
def test_any_thread_count_gives_the_same_bits(degree, dtype):
    """Blocks are summed in block order whatever the split across threads."""
    x, coef, grad = _inputs(100_003, degree, dtype, seed=3)
    kernels = trig_native.kernels(x, degree)
    one = kernels.forward(x, coef, 0.5, 0.25, threads=1), *kernels.backward(x, grad, coef, 0.5, 0.25, threads=1)
    two = kernels.forward(x, coef, 0.5, 0.25, threads=2), *kernels.backward(x, grad, coef, 0.5, 0.25, threads=2)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_far_arguments_and_nan_take_libm():
    """float32 beyond the polynomial's range (|w| > 1e4) is redone with libm: the error
    stays that of float32's cos and sin; NaN stays NaN."""
    x = torch.tensor([3.0e4, -2.5e5, 1.0e7, float("nan"), 0.3, 7.0], dtype=torch.float32)
    coef = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float32)  # y = cos w
    y = trig_native.kernels(x, 1).forward(x, coef, 1.0, 0.0)
    ref = torch.cos(x.double())
    assert torch.isnan(y[3]) and not torch.isnan(y[[0, 1, 2, 4, 5]]).any()
    torch.testing.assert_close(y[[0, 1, 2, 4, 5]].double(), ref[[0, 1, 2, 4, 5]], rtol=0, atol=1e-6)


def test_trig_polynomial_takes_the_c_kernels_and_passes_gradcheck(monkeypatch):
    calls = []
    original = trig_native.TrigKernels.backward

    def spy(self, *args, **kwargs):
        calls.append("backward")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(trig_native.TrigKernels, "backward", spy)
    x = (torch.randn(2, 37, dtype=torch.float64) * 4).requires_grad_()
    coef = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, c: fourier.TrigPolynomial.apply(a, c, 0.5, 0.25), (x, coef))
    assert calls


def test_torch_kernels_give_the_same_values(monkeypatch):
    """fourier.NATIVE off (CUDA, no compiler) runs the torch kernels: equal to float rounding."""
    x, coef, grad = _inputs(5000, 4, torch.float32, seed=9)
    outs = {}
    for flag in (True, False):
        monkeypatch.setattr(fourier, "NATIVE", flag)
        xr, cr = x.clone().requires_grad_(), coef.clone().requires_grad_()
        y = fourier.TrigPolynomial.apply(xr, cr, 0.5, 0.25)
        y.backward(grad)
        outs[flag] = y.detach(), xr.grad, cr.grad
    for a, b in zip(outs[True], outs[False]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


def test_degrees_above_the_limit_and_other_devices_get_no_kernels():
    assert trig_native.kernels(torch.zeros(3), trig_native.MAX_DEGREE + 1) is None
    assert trig_native.kernels(torch.zeros(3, dtype=torch.float16), 4) is None
    assert trig_native.kernels(torch.zeros(3, device="meta"), 4) is None
