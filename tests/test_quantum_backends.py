"""Every exact backend equals Qiskit's Statevector (independent reference, after the
big-endian conversion in the adapter); no global phase is allowed: the gates are
built with Qiskit's own conventions."""

import itertools
import warnings

import pytest
import torch

from superpos_cli.errors import BadInput
from superpos_cli.quantum import BACKENDS, CircuitSpec, evaluate, get_backend, statevector
from superpos_cli.quantum.backends import fourier
from superpos_cli.quantum.circuit import ENCODINGS, ENTANGLERS, READOUTS

EXACT = ("torch", "fourier", "aer")


@pytest.fixture(autouse=True)
def eager_fourier(monkeypatch):
    # Compiling fourier's kernels takes seconds; one test below covers the compiled path.
    monkeypatch.setattr(fourier, "COMPILE", False)


def _angles(spec, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    shape = (spec.depth, spec.n_qubits)
    return ((torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * torch.pi,
            (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * torch.pi,
            torch.randn(4, generator=gen, dtype=dtype) * 4)


# Every structural option on every qubit count and depth, readouts cycled through them
# so each (n, depth) still sees all three readouts across encodings and entanglers.
CASES = [
    CircuitSpec(n, d, enc, ent, ("real", "abs", "prob")[(n + d + i) % 3])
    for n, d in itertools.product(range(1, 7), range(1, 4))
    for i, (enc, ent) in enumerate(itertools.product(("reupload", "first-layer"), ("chain", "ring")))
]


@pytest.mark.parametrize("seed,spec", list(enumerate(CASES)), ids=[str(s) for s in CASES])
def test_exact_backends_match_qiskit(seed, spec):
    theta, phi, x = _angles(spec, seed=seed)
    ref_state = statevector(spec, theta, phi, x, "qiskit")  # (4, 2**n)
    ref = evaluate(spec, theta, phi, x, "qiskit")
    assert torch.allclose(ref, ref_state[..., : spec.n_qubits].real.sum(-1) if spec.readout == "real" else ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fourier.SpectralFallbackWarning)
        for backend in EXACT:
            assert torch.allclose(statevector(spec, theta, phi, x, backend), ref_state, atol=1e-10), backend
            assert torch.allclose(evaluate(spec, theta, phi, x, backend), ref, atol=1e-10), backend


@pytest.mark.parametrize("readout", ["real", "prob"])
def test_float32_paths_agree_to_1e5(readout):
    spec = CircuitSpec(4, 2, readout=readout)
    theta, phi, x = _angles(spec, seed=1)
    x = torch.linspace(-20, 20, 2001, dtype=torch.float64)
    ref = evaluate(spec, theta, phi, x, "torch")
    for backend in ("torch", "fourier"):
        got = evaluate(spec, theta.float(), phi.float(), x.float(), backend)
        assert got.dtype == torch.float32
        assert (got.double() - ref).abs().max() < 1e-5, backend
    assert statevector(spec, theta.float(), phi.float(), x.float()).dtype == torch.complex64


def test_shapes_follow_x():
    spec = CircuitSpec(3, 2)
    theta, phi, _ = _angles(spec, seed=2)
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    for backend in BACKENDS:
        assert evaluate(spec, theta, phi, x, backend).shape == (2, 3, 5)
        assert statevector(spec, theta, phi, x, backend).shape == (2, 3, 5, 8)


def test_spectrum_is_exact_with_the_stated_period():
    # real readout with odd L has half-integer frequencies: period 4 pi, not 2 pi.
    spec = CircuitSpec(3, 1)
    theta, phi, _ = _angles(spec, seed=3)
    x = torch.tensor([0.3], dtype=torch.float64)
    f = lambda v: evaluate(spec, theta, phi, v, "torch")  # noqa: E731
    assert fourier.spectrum(spec) == (0.5, 3)
    assert torch.allclose(f(x + 4 * torch.pi), f(x))
    assert not torch.allclose(f(x + 2 * torch.pi), f(x))
    assert fourier.spectrum(CircuitSpec(4, 2)) == (1.0, 4)
    assert fourier.spectrum(CircuitSpec(4, 2, readout="prob")) == (1.0, 8)


def test_abs_readout_falls_back_to_torch():
    spec = CircuitSpec(2, 2, readout="abs")
    theta, phi, x = _angles(spec, seed=4)
    assert fourier.fallback_reason(spec) is not None
    assert get_backend("fourier").fallback_reason(CircuitSpec()) is None
    with pytest.warns(fourier.SpectralFallbackWarning, match="no finite Fourier spectrum"):
        got = evaluate(spec, theta, phi, x, "fourier")
    assert torch.allclose(got, evaluate(spec, theta, phi, x, "torch"))


@pytest.mark.parametrize("backend,readout", [("torch", "real"), ("torch", "abs"), ("fourier", "real"), ("fourier", "prob")])
def test_gradients_match_finite_differences(backend, readout):
    spec = CircuitSpec(2, 2, readout=readout)
    theta, phi, x = _angles(spec, seed=5)
    inputs = (theta.requires_grad_(), phi.requires_grad_(), x.requires_grad_())
    assert torch.autograd.gradcheck(lambda t, p, v: evaluate(spec, t, p, v, backend), inputs)


def test_compiled_fourier_matches_eager(monkeypatch):
    monkeypatch.setattr(fourier, "COMPILE", True)
    spec = CircuitSpec(4, 2)
    theta, phi, _ = _angles(spec, seed=6, dtype=torch.float32)
    x = (torch.randn(1000) * 3).requires_grad_()
    y = evaluate(spec, theta, phi, x, "fourier")
    y.backward(torch.ones_like(y))
    ref_x = x.detach().double().requires_grad_()
    ref = evaluate(spec, theta.double(), phi.double(), ref_x, "torch")
    ref.backward(torch.ones_like(ref))
    assert (y.double() - ref).abs().max() < 1e-5
    assert (x.grad.double() - ref_x.grad).abs().max() < 1e-4


def test_aer_shots_estimate_prob_and_are_seeded():
    spec = CircuitSpec(3, 2, readout="prob")
    theta, phi, x = _angles(spec, seed=7)
    exact = evaluate(spec, theta, phi, x, "torch")
    shots = 4000
    sampled = CircuitSpec(3, 2, readout="prob", shots=shots)
    est = evaluate(sampled, theta, phi, x, "aer", seed=11)
    sigma = (exact * (1 - exact) / shots).sqrt()
    assert ((est - exact).abs() <= 5 * sigma + 1e-9).all()
    assert torch.equal(est, evaluate(sampled, theta, phi, x, "aer", seed=11))
    noisy = evaluate(CircuitSpec(3, 2, readout="prob", shots=shots, noise="depolarizing:0.2"), theta, phi, x, "aer",
                     seed=11)
    assert noisy.shape == x.shape and ((noisy >= 0) & (noisy <= 1)).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda s, t, p, x: evaluate(CircuitSpec(3, 2, shots=100), t, p, x, "aer"),  # real readout
        lambda s, t, p, x: evaluate(CircuitSpec(3, 2, readout="prob", shots=0), t, p, x, "aer"),
        lambda s, t, p, x: evaluate(CircuitSpec(3, 2, readout="prob", noise="bitflip:0.1"), t, p, x, "aer"),
        lambda s, t, p, x: evaluate(CircuitSpec(3, 2, readout="prob", noise="depolarizing:1.5"), t, p, x, "aer"),
        lambda s, t, p, x: evaluate(CircuitSpec(3, 2, readout="prob", noise="depolarizing:0.1"), t, p, x, "torch"),
        lambda s, t, p, x: evaluate(CircuitSpec(3, 2, readout="prob", noise="depolarizing:0.1"), t, p, x, "qiskit"),
        lambda s, t, p, x: statevector(CircuitSpec(3, 2, readout="prob", shots=10), t, p, x, "aer"),
        lambda s, t, p, x: evaluate(s, t, p, x, "torch", seed=3),  # seed without shots
        lambda s, t, p, x: evaluate(s, t, p, x, "nope"),
        lambda s, t, p, x: evaluate(s, t[:1], p, x),
    ],
)
def test_bad_backend_values_raise_badinput(call):
    spec = CircuitSpec(3, 2, readout="prob")
    theta, phi, x = _angles(spec, seed=8)
    with pytest.raises(BadInput):
        call(spec, theta, phi, x)


def test_every_backend_implements_the_protocol():
    from superpos_cli.quantum.backends.base import Backend, PreparedCircuit

    spec = CircuitSpec(2, 1)
    theta, phi, x = _angles(spec, seed=12)
    for name in BACKENDS:
        backend = get_backend(name)
        assert isinstance(backend, Backend) and backend.name == name
        assert backend.supports(spec) is None
        circuits = backend.prepare_many(spec, [(theta, phi), (theta + 1, phi)])
        assert len(circuits) == 2 and all(isinstance(c, PreparedCircuit) for c in circuits)
        ref = evaluate(spec, theta, phi, x, "qiskit")
        torch.testing.assert_close(circuits[0].evaluate(x, 0.5), ref + 0.5 * x, atol=1e-10, rtol=0)


def _sampled_coefficients(spec, theta, phi):
    """The reference: 2F+1 circuits on the torch backend and a DFT, autograd through them."""
    omega, degree = fourier.spectrum(spec)
    n = 2 * degree + 1
    w = 2 * torch.pi * torch.arange(n, dtype=torch.float64) / n
    samples = evaluate(spec, theta, phi, w / omega, "torch")
    coef = fourier._dft(degree) @ samples.to(torch.complex128)
    return torch.stack([coef.real, -coef.imag])  # (2, F+1)


FAST_CASES = [
    CircuitSpec(n, d, enc, ent, readout)
    for n, d in [(1, 1), (1, 3), (2, 2), (3, 1), (3, 3), (4, 2), (5, 2)]
    for enc, ent in itertools.product(("reupload", "first-layer"), ("chain", "ring"))
    for readout in ("real", "prob")
]


@pytest.mark.parametrize("seed,spec", list(enumerate(FAST_CASES)), ids=[str(s) for s in FAST_CASES])
def test_batched_coefficients_and_jacobian_match_sampled_autograd(seed, spec):
    from superpos_cli.quantum.backends import coefficients

    theta, phi, _ = _angles(spec, seed=seed)
    omega, degree = fourier.spectrum(spec)
    assert coefficients.fits(spec)
    coef, jacobian = coefficients.coefficients_and_jacobian(spec, omega, degree, theta, phi)
    ref_jac = torch.autograd.functional.jacobian(lambda t, p: _sampled_coefficients(spec, t, p), (theta, phi))
    ref_jac = torch.cat([j.flatten(2) for j in ref_jac], -1).permute(2, 0, 1)  # (2 D n, 2, F+1)
    assert torch.allclose(torch.from_numpy(coef), _sampled_coefficients(spec, theta, phi), atol=1e-12)
    assert torch.allclose(torch.from_numpy(jacobian), ref_jac, atol=1e-12)


@pytest.mark.parametrize("readout", ["real", "prob"])
def test_large_circuits_use_the_sampled_path(monkeypatch, readout):
    from superpos_cli.quantum.backends import coefficients

    monkeypatch.setattr(coefficients, "MAX_ELEMENTS", 0)
    spec = CircuitSpec(3, 2, "first-layer", "ring", readout)
    assert not coefficients.fits(spec)
    theta, phi, x = _angles(spec, seed=9)
    assert torch.allclose(evaluate(spec, theta, phi, x, "fourier"), evaluate(spec, theta, phi, x, "qiskit"), atol=1e-10)
    inputs = (theta.requires_grad_(), phi.requires_grad_(), x.requires_grad_())
    assert torch.autograd.gradcheck(lambda t, p, v: evaluate(spec, t, p, v, "fourier"), inputs)


def test_fourier_float32_gradients_match_float64():
    spec = CircuitSpec(4, 2)
    theta, phi, _ = _angles(spec, seed=10)
    x = torch.linspace(-20, 20, 501, dtype=torch.float64)
    grads = {}
    for dtype in (torch.float32, torch.float64):
        t, p = theta.to(dtype).requires_grad_(), phi.to(dtype).requires_grad_()
        evaluate(spec, t, p, x.to(dtype), "fourier").sin().sum().backward()
        assert t.grad.dtype == dtype and p.grad.dtype == dtype
        grads[dtype] = torch.cat([t.grad.double(), p.grad.double()])
    assert torch.allclose(grads[torch.float32], grads[torch.float64], atol=1e-3)


@pytest.mark.parametrize("readout", ["real", "prob"])
def test_group_coefficients_match_one_at_a_time(readout):
    import numpy as np

    from superpos_cli.quantum.backends import coefficients
    from superpos_cli.quantum.backends import fourier as fourier_mod

    spec = CircuitSpec(n_qubits=3, depth=2, readout=readout)
    omega, degree = fourier_mod.spectrum(spec)
    gen = torch.Generator().manual_seed(3)
    angles = [(torch.rand(2, 3, generator=gen, dtype=torch.float64) * 6 - 3,
               torch.rand(2, 3, generator=gen, dtype=torch.float64) * 6 - 3) for _ in range(3)]
    stacked = np.stack([np.stack([t.numpy(), p.numpy()]) for t, p in angles])
    coef, jacobian = coefficients.group_coefficients_and_jacobian(spec, omega, degree, stacked)
    for g, (theta, phi) in enumerate(angles):
        c1, j1 = coefficients.coefficients_and_jacobian(spec, omega, degree, theta, phi)
        np.testing.assert_allclose(coef[g], c1, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jacobian[g], j1, rtol=1e-12, atol=1e-12)


def test_compiled_direct_calls_match_eager_across_sizes(monkeypatch):
    from superpos_cli.quantum.backends import fourier as fourier_mod

    monkeypatch.setattr(fourier_mod, "COMPILE", True)
    # Sizes change after the first (capturing) call: the direct path has dynamic sizes.
    coef = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    for n in (37, 1000, 5, 4096):
        x = torch.randn(n) * 5
        grad = torch.randn(n)
        y = fourier_mod._run("forward", x, coef, 0.5, 0.25)
        torch.testing.assert_close(y, fourier_mod._forward_kernel(x, coef, 0.5, 0.25), rtol=1e-5, atol=1e-5)
        gx, moments = fourier_mod._run("backward", x, grad, coef, 0.5, 0.25)
        ref_gx, ref_moments = fourier_mod._backward_kernel(x, grad, coef, 0.5, 0.25)
        torch.testing.assert_close(gx, ref_gx, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(moments, ref_moments, rtol=1e-4, atol=1e-3)
    assert any(entry for entry in fourier_mod._DIRECT.entries.values()), "the direct path was not taken"


def _fourier_args(name, n, gen):
    x, grad = torch.randn(n, generator=gen) * 5, torch.randn(n, generator=gen)
    coef = torch.randn(2, 5, generator=gen)
    return {"forward": (x, coef), "backward": (x, grad, coef), "power_forward": (x, coef),
            "power_value": (x, coef), "power_backward": (x.cos(), x.sin(), grad, coef)}[name] + (0.5, 0.25)


def _direct_users():
    return {"fourier": (fourier, _fourier_args)}


@pytest.mark.parametrize("user, name", [(user, name) for user, (module, _) in _direct_users().items()
                                        for name in sorted(module._KERNELS)])
def test_every_kernel_takes_the_direct_path(user, name, monkeypatch):
    """Each compiled kernel of the fourier backend is called
    straight after its first call (dynamo's per-call guards cost ~150-250 us, as much as
    a textcls kernel), with dynamo's results (NaN marks included) at a new size too, and
    with the eager kernel's to float rounding."""
    module, make_args = _direct_users()[user]
    monkeypatch.setattr(module, "COMPILE", True)
    monkeypatch.setattr(module._DIRECT, "entries", {})
    gen = torch.Generator().manual_seed(1)
    args = make_args(name, 3000, gen)
    first = module._run(name, *args)
    (entry,) = module._DIRECT.entries.values()
    assert entry, f"{user} {name}: the direct path was refused"
    for n in (3000, 777):
        args = make_args(name, n, torch.Generator().manual_seed(n))
        direct = module._DIRECT.call(name, args)
        dynamo = torch.compile(module._KERNELS[name], dynamic=True)(*args)
        eager = module._KERNELS[name](*args)
        assert isinstance(direct, tuple) == (module._DIRECT.n_outputs[name] > 1) == isinstance(first, tuple)
        direct, dynamo, eager = ((out if isinstance(out, tuple) else (out,)) for out in (direct, dynamo, eager))
        for a, b, c in zip(direct, dynamo, eager):
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
            torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-3, equal_nan=True)


@pytest.mark.parametrize("user", ["fourier"])
def test_a_compiler_failure_falls_back_to_eager_kernels_once(user, monkeypatch):
    """Where inductor fails, _run warns once, stops compiling and returns the eager
    kernel's result; the next call goes straight to eager."""
    module, make_args = _direct_users()[user]
    monkeypatch.setattr(module, "COMPILE", True)
    calls = []

    def broken(name, args):
        calls.append(name)
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(module._DIRECT, "run", broken)
    name = "power_forward"
    args = make_args(name, 500, torch.Generator().manual_seed(2))
    eager = getattr(module, "_EAGER_KERNELS", module._KERNELS)[name]
    with pytest.warns(RuntimeWarning, match="torch.compile unavailable"):
        out = module._run(name, *args)
    assert module.COMPILE is False and calls == [name]
    again = module._run(name, *args)
    assert calls == [name]
    for a, b, c in zip(out, again, eager(*args)):
        torch.testing.assert_close(a, c, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(b, c, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("degree", range(1, 5))
def test_power_basis_matches_clenshaw_with_gradients(degree, dtype, tol, monkeypatch):
    """Degrees up to POWER_BASIS_MAX_DEGREE run the power-basis kernels (the torch path):
    value, d/dx and d/dcoef must equal the Clenshaw kernels (eager, float64) on the same inputs."""
    from superpos_cli.quantum.backends import fourier as fourier_mod

    monkeypatch.setattr(fourier_mod, "NATIVE", False)

    assert degree <= fourier_mod.POWER_BASIS_MAX_DEGREE
    gen = torch.Generator().manual_seed(degree)
    x64 = torch.randn(2000, generator=gen, dtype=torch.float64) * 8
    coef64 = torch.randn(2, degree + 1, generator=gen, dtype=torch.float64)
    coef64[1, 0] = 0.0  # sin(0 w) = 0: never part of a readout's coefficients
    grad64 = torch.randn(2000, generator=gen, dtype=torch.float64)
    x = x64.to(dtype).requires_grad_()
    coef = coef64.to(dtype).requires_grad_()
    y = fourier_mod.TrigPolynomial.apply(x, coef, 0.5, 0.25)
    y.backward(grad64.to(dtype))
    ref_y = fourier_mod._forward_kernel(x64, coef64, 0.5, 0.25)
    ref_gx, ref_moments = fourier_mod._backward_kernel(x64, grad64, coef64, 0.5, 0.25)
    scale = 1 + coef64.abs().sum().item()
    torch.testing.assert_close(y.detach().double(), ref_y, rtol=0, atol=tol * scale)
    torch.testing.assert_close(x.grad.double(), ref_gx, rtol=0, atol=tol * scale)
    # Moments are sums over 2000 inputs: float32 rounding grows with the count.
    torch.testing.assert_close(coef.grad.double()[:, :], ref_moments, rtol=0,
                               atol=tol * grad64.abs().sum().item() * (degree + 1))


def test_sincos_float32_accuracy():
    from superpos_cli.quantum.backends import fourier as fourier_mod

    w = torch.linspace(-1e4, 1e4, 2_000_001, dtype=torch.float64)
    w = torch.cat([w, torch.linspace(-7, 7, 100_001, dtype=torch.float64)]).float()
    cos, sin = fourier_mod._sincos(w)
    exact = w.double()
    assert (cos.double() - torch.cos(exact)).abs().max() < 1e-6
    assert (sin.double() - torch.sin(exact)).abs().max() < 1e-6
    far = torch.linspace(-4e5, 4e5, 100_001, dtype=torch.float64).float()
    assert (fourier_mod._sincos(far)[1].double() - torch.sin(far.double())).abs().max() < 1e-5
    cos64, sin64 = fourier_mod._sincos(exact)
    assert torch.equal(cos64, torch.cos(exact)) and torch.equal(sin64, torch.sin(exact))


def test_small_calls_run_eagerly_and_larger_ones_compiled(monkeypatch):
    """Up to EAGER_UP_TO scores a call, forward and backward never reach the compiled
    kernels (a textcls process compiles nothing); above it both do; the values agree
    to float rounding."""
    calls = []

    def compiled(name, *args):
        calls.append((name, args[0].numel()))
        return fourier._DIRECT.run(name, args)

    monkeypatch.setattr(fourier, "NATIVE", False)  # the torch kernels' dispatch (CUDA, no compiler)
    monkeypatch.setattr(fourier, "COMPILE", True)
    monkeypatch.setattr(fourier, "EAGER_UP_TO", 1000)
    monkeypatch.setattr(fourier, "_run", compiled)
    gen = torch.Generator().manual_seed(5)
    theta, phi = torch.rand(2, 4, generator=gen) * 3, torch.rand(2, 4, generator=gen) * 3
    out = {}
    scores = torch.randn(1001, generator=gen) * 4
    for n in (1000, 1001):
        x = scores[:n].clone().requires_grad_()
        angle = theta.clone().requires_grad_()
        y = get_backend("fourier").prepare(CircuitSpec(n_qubits=4, depth=2), angle, phi).evaluate(x, 0.25)
        y.square().sum().backward()
        out[n] = y.detach()[:1000], x.grad[:1000]  # per score; the angles' gradient sums over all
        assert calls == ([] if n == 1000 else [("power_forward", n), ("power_backward", n)])
    for small, large in zip(out[1000], out[1001]):
        torch.testing.assert_close(small, large, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("eager_up_to", [0, 1 << 40])
@pytest.mark.parametrize("above", [0, 1 << 40])
def test_evaluations_of_any_size_give_the_training_kernels_values(above, eager_up_to, monkeypatch):
    """No-grad evaluations take the value-only kernel above VALUE_KERNEL_ABOVE scores
    and the training kernel below it: the same float operations, so the same bits,
    compiled and eager alike (the torch kernels; trig_kernels.c has one kernel for both)."""
    monkeypatch.setattr(fourier, "NATIVE", False)
    monkeypatch.setattr(fourier, "EAGER_UP_TO", eager_up_to)
    gen = torch.Generator().manual_seed(4)
    theta, phi = torch.rand(2, 4, generator=gen) * 3, torch.rand(2, 4, generator=gen) * 3
    x = torch.randn(5000, generator=gen) * 4
    circuit = get_backend("fourier").prepare(CircuitSpec(n_qubits=4, depth=2), theta, phi)
    with torch.no_grad():
        expected = circuit.evaluate(x, 0.25)
        monkeypatch.setattr(fourier, "VALUE_KERNEL_ABOVE", above)
        assert torch.equal(circuit.evaluate(x, 0.25), expected)
    grad_theta = theta.clone().requires_grad_()
    trained = get_backend("fourier").prepare(CircuitSpec(n_qubits=4, depth=2), grad_theta, phi).evaluate(x, 0.25)
    assert torch.equal(trained.detach(), expected)


@pytest.mark.parametrize("encoding, entangler, readout",
                         [(e, g, r) for e in ENCODINGS for g in ENTANGLERS for r in READOUTS])
def test_the_torch_simulation_stays_on_the_device_of_its_angles(encoding, entangler, readout):
    # On the meta device every op checks its operands' devices and computes nothing, so
    # a constant built on the CPU (the Y basis, the CNOT map, the frequencies) fails
    # here as it fails on CUDA (benchmarks/gpu_check.sh found one there), without a GPU.
    spec = CircuitSpec(encoding=encoding, entangler=entangler, readout=readout)
    theta, phi = (torch.randn(spec.depth, spec.n_qubits, device="meta", requires_grad=True) for _ in range(2))
    circuit = get_backend("torch").prepare(spec, theta, phi)
    value = circuit.evaluate(torch.randn(3, 5, device="meta"), alpha=0.5)
    value.sum().backward()
    assert value.device.type == "meta" and value.shape == (3, 5) and theta.grad.device.type == "meta"
