"""circuit_kernels.c (the coefficient simulation) against the numpy simulation it replaces,
over every circuit option, and the grouped CPU path (AngleReadout) against autograd through
the per-layer coefficient node."""

import itertools
import shutil

import numpy as np
import pytest
import torch

from superpos_cli import native
from superpos_cli.quantum.backends import circuit_native, coefficients, fourier
from superpos_cli.quantum.circuit import ENCODINGS, ENTANGLERS, CircuitSpec

pytestmark = pytest.mark.skipif(shutil.which("cc") is None or not native.enabled(),
                                reason="no C compiler (numpy runs instead)")

SPECS = [CircuitSpec(n_qubits=n, depth=d, encoding=e, entangler=t, readout=r)
         for n, d, e, t, r in itertools.product((1, 2, 4), (1, 2, 3), ENCODINGS, ENTANGLERS, ("real", "prob"))]


@pytest.mark.parametrize("real, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("spec", [s for s in SPECS if coefficients.fits(s)], ids=str)
def test_c_simulation_equals_numpy(spec, real, tol, monkeypatch):
    assert circuit_native.kernel(real) is not None
    omega, degree = fourier.spectrum(spec)
    angles = np.random.default_rng(spec.n_qubits * 10 + spec.depth).uniform(-3, 3, (3, 2, spec.depth, spec.n_qubits))
    angles = angles.astype(real)
    coef, jacobian = coefficients._simulate(spec, omega, degree, angles)
    monkeypatch.setattr(coefficients, "NATIVE", False)
    ref_coef, ref_jacobian = coefficients._simulate(spec, omega, degree, angles)
    assert coef.dtype == ref_coef.dtype == real and coef.shape == ref_coef.shape and jacobian.shape == ref_jacobian.shape
    np.testing.assert_allclose(coef, ref_coef, rtol=0, atol=tol)
    np.testing.assert_allclose(jacobian, ref_jacobian, rtol=0, atol=tol)


@pytest.mark.parametrize("readout", ["real", "prob"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grouped_layers_give_the_per_layer_gradients(readout, dtype, monkeypatch):
    """prepare_group on CPU (one no-grad simulation, AngleReadout applying each Jacobian)
    equals prepare() per layer on the torch path (fourier.NATIVE off: autograd through
    CircuitCoefficients and the torch kernels) in value and in the gradients of x, theta
    and phi."""
    spec = CircuitSpec(n_qubits=4, depth=2, readout=readout)
    gen = torch.Generator().manual_seed(7)
    angles = [(torch.rand(2, 4, generator=gen, dtype=dtype) * 6 - 3, torch.rand(2, 4, generator=gen, dtype=dtype) * 6 - 3)
              for _ in range(3)]
    x = torch.randn(3, 700, generator=gen, dtype=dtype) * 3
    weights = torch.randn(3, 700, generator=gen, dtype=dtype)
    results = []
    for grouped in (True, False):
        monkeypatch.setattr(fourier, "NATIVE", grouped)
        params = [(t.clone().requires_grad_(), p.clone().requires_grad_()) for t, p in angles]
        xs = x.clone().requires_grad_()
        backend = fourier.FourierBackend()
        circuits = fourier.prepare_group(spec, params) if grouped else [backend.prepare(spec, t, p) for t, p in params]
        assert (circuits[0]._jacobian is not None) == grouped
        y = torch.stack([c.evaluate(xs[i], 0.25) for i, c in enumerate(circuits)])
        (y * weights).sum().backward()
        results.append((y.detach(), xs.grad, *[a.grad for pair in params for a in pair]))
    tol = 1e-10 if dtype == torch.float64 else 2e-4
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_without_the_c_polynomial_kernels_coefficients_stay_differentiable(monkeypatch):
    """Where trig_kernels.c is unavailable, prepares keep the coefficient node (no Jacobian
    carried, nothing simulated twice) and the angles still get their gradient."""
    from superpos_cli.quantum.backends import trig_native

    monkeypatch.setattr(trig_native, "available", lambda dtype: False)
    spec = CircuitSpec(n_qubits=4, depth=2)
    params = [(torch.rand(2, 4).requires_grad_(), torch.rand(2, 4).requires_grad_()) for _ in range(2)]
    circuits = fourier.prepare_group(spec, params) + [fourier.FourierBackend().prepare(spec, *params[0])]
    assert all(c._jacobian is None and c.coefficients.requires_grad for c in circuits)
    sum(c.evaluate(torch.randn(300)).sum() for c in circuits).backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for pair in params for a in pair)
