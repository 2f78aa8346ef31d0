"""Noise and shots as circuit options: parsing, exact parity with Aer's density-matrix
simulator (NoiseModels built here, independently of superpos' own), gradients, and
shot statistics against Aer's sampling."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from superpos_cli.errors import BadInput
from superpos_cli.quantum import CircuitSpec, evaluate, parse_noise
from superpos_cli.quantum.backends import fourier


@pytest.fixture(autouse=True)
def eager_fourier(monkeypatch):
    monkeypatch.setattr(fourier, "COMPILE", False)


def _angles(spec, seed, points=5):
    gen = torch.Generator().manual_seed(seed)
    shape = (spec.depth, spec.n_qubits)
    return ((torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * torch.pi,
            (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * torch.pi,
            torch.randn(points, generator=gen, dtype=torch.float64) * 4)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, parsed", [
    (None, ()), ("", ()), ("none", ()),
    ("depolarizing:0.01", (("depolarizing", 0.01),)),
    (" amplitude-damping : 1e-3 , readout:0.02", (("amplitude-damping", 0.001), ("readout", 0.02))),
    ("readout:0,depolarizing:1", (("readout", 0.0), ("depolarizing", 1.0))),
    ((("depolarizing", 0.5),), (("depolarizing", 0.5),)),
])
def test_parse_noise(text, parsed):
    assert parse_noise(text) == parsed


@pytest.mark.parametrize("text, match", [
    ("depolarizing", "not KIND:P"), ("bitflip:0.1", "not one of"), ("depolarizing:x", "not a number"),
    ("depolarizing:1.5", r"in \[0, 1\]"), ("readout:-0.1", r"in \[0, 1\]"), ("readout:nan", r"in \[0, 1\]"),
    ("readout:0.1,readout:0.2", "twice"), (0.1, "must be a string"), ("depolarizing:0.1,", "not KIND:P"),
])
def test_parse_noise_rejects_with_one_line(text, match):
    with pytest.raises(BadInput, match=match) as err:
        parse_noise(text)
    assert "\n" not in str(err.value)


def test_noise_spec_imports_nothing_heavy():
    code = ("import sys, superpos_cli.quantum.noise_spec as m; m.parse_noise('readout:0.1'); m.device_names();"
            "import superpos_cli.models.config;"
            "print(sorted(k for k in ('torch', 'qiskit', 'qiskit_aer', 'qiskit_ibm_runtime') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("kwargs", [dict(noise="depolarizing:0.1"), dict(shots=100), dict(noise_device="fake_x")])
@pytest.mark.parametrize("readout", ["real", "abs"])
def test_noise_and_shots_need_the_prob_readout(kwargs, readout):
    with pytest.raises(BadInput, match="needs readout 'prob'|noise_device") as err:
        CircuitSpec(2, 1, readout=readout, **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("shots", [0, -3, 2.5, True, "100"])
def test_bad_shots(shots):
    with pytest.raises(BadInput, match="shots"):
        CircuitSpec(2, 1, readout="prob", shots=shots)


# --------------------------------------------------------------------------- parity with Aer


def _reference_noise_model(noise):
    """The placement the issue states, built here by hand: after every H, Ry, Rz a
    one-qubit error, after every CNOT a two-qubit one; readout flips each bit."""
    from qiskit_aer.noise import NoiseModel, ReadoutError, amplitude_damping_error, depolarizing_error

    model = NoiseModel(basis_gates=["h", "ry", "rz", "cx"])
    readout = None
    for kind, p in noise:
        if kind == "depolarizing":
            model.add_all_qubit_quantum_error(depolarizing_error(p, 1), ["h", "ry", "rz"])
            model.add_all_qubit_quantum_error(depolarizing_error(p, 2), ["cx"])
        elif kind == "amplitude-damping":
            model.add_all_qubit_quantum_error(amplitude_damping_error(p), ["h", "ry", "rz"])
            model.add_all_qubit_quantum_error(amplitude_damping_error(p).tensor(amplitude_damping_error(p)), ["cx"])
        else:
            readout = ReadoutError([[1 - p, p], [p, 1 - p]])
    return model, readout


def _aer_reference(spec, theta, phi, x):
    """sum_{k<n} of the measured distribution: Aer's exact density matrix, then each
    qubit's ReadoutError.probabilities (rows: prepared, columns: measured)."""
    from qiskit import QuantumCircuit
    from qiskit_aer import AerSimulator

    model, readout = _reference_noise_model(spec.noise)
    n = spec.n_qubits
    out = []
    for value in x.tolist():
        qc = QuantumCircuit(n)
        for op in spec.ops():
            if op.gate == "h":
                qc.h(op.qubits[0])
            elif op.gate == "cx":
                qc.cx(*op.qubits)
            else:
                name, layer, q = op.angle
                angle = float((theta if name == "theta" else phi)[layer, q]) + (value if op.encoded else 0.0)
                getattr(qc, op.gate)(angle, q)
        qc.save_density_matrix()
        rho = np.asarray(AerSimulator(method="density_matrix").run(qc, noise_model=model).result().data()["density_matrix"])
        probs = np.real(np.diag(rho))  # little-endian: index bit q = qubit q
        if readout is not None:
            confusion = np.array([[1.0]])
            for _ in range(n):
                confusion = np.kron(readout.probabilities, confusion)  # qubit 0 least significant
            probs = probs @ confusion
        out.append(sum(probs[sum(((k >> (n - 1 - q)) & 1) << q for q in range(n))] for k in range(n)))
    return torch.tensor(out, dtype=torch.float64)


KINDS = ["depolarizing:0.03", "amplitude-damping:0.05", "readout:0.04",
         "depolarizing:0.02,amplitude-damping:0.04,readout:0.03", "amplitude-damping:0.04,depolarizing:0.02"]
PARITY = [
    CircuitSpec(n, d, enc, ent, "prob", noise=KINDS[(n + d + i) % len(KINDS)])
    for n, d in itertools.product(range(1, 6), range(1, 4))
    for i, (enc, ent) in enumerate([("reupload", "chain"), ("first-layer", "ring")])
] + [CircuitSpec(3, 2, readout="prob", noise=kind) for kind in KINDS]


@pytest.mark.parametrize("seed,spec", list(enumerate(PARITY)), ids=[str(s.n_qubits) + str(s.depth) + s.encoding[0]
                                                                      + s.entangler[0] + ":" + ",".join(
                                                                          k for k, _ in s.noise) for s in PARITY])
def test_noisy_fourier_matches_aer_density_matrix(seed, spec):
    theta, phi, x = _angles(spec, seed)
    ref = _aer_reference(spec, theta, phi, x)
    assert not torch.allclose(ref, evaluate(spec.noiseless, theta, phi, x, "torch"), atol=1e-4)  # noise matters
    got = evaluate(spec, theta, phi, x, "fourier")
    torch.testing.assert_close(got, ref, atol=1e-8, rtol=0)
    torch.testing.assert_close(evaluate(spec, theta, phi, x, "aer"), ref, atol=1e-8, rtol=0)


@pytest.mark.parametrize("noise", ["depolarizing:0.1", "amplitude-damping:0.2,readout:0.1"])
def test_noisy_gradients_match_finite_differences(noise):
    spec = CircuitSpec(2, 2, readout="prob", noise=noise)
    theta, phi, x = _angles(spec, seed=3)
    inputs = (theta.requires_grad_(), phi.requires_grad_(), x.requires_grad_())
    assert torch.autograd.gradcheck(lambda t, p, v: evaluate(spec, t, p, v, "fourier"), inputs)


def test_noisy_prepare_many_equals_one_at_a_time():
    from superpos_cli.quantum import get_backend

    spec = CircuitSpec(3, 2, readout="prob", noise="depolarizing:0.05,amplitude-damping:0.02")
    backend = get_backend("fourier")
    angles = [tuple(a.requires_grad_() for a in _angles(spec, seed)[:2]) for seed in range(3)]
    x = _angles(spec, 9, points=50)[2]
    together = sum(c.evaluate(x).square().sum() for c in backend.prepare_many(spec, angles))
    grads = torch.autograd.grad(together, [a for pair in angles for a in pair])
    alone = sum(backend.prepare(spec, t, p).evaluate(x).square().sum() for t, p in angles)
    ref = torch.autograd.grad(alone, [a for pair in angles for a in pair])
    torch.testing.assert_close(together, alone, atol=1e-12, rtol=0)
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- the folded program


def _device_or_skip(name="fake_manila"):
    from superpos_cli.quantum.noise_spec import device_names

    if name not in device_names():
        pytest.skip("needs the devices extra (qiskit-ibm-runtime)")
    return name


@pytest.mark.parametrize("noise", KINDS + ["device"])
def test_the_paper_circuit_folds_to_eight_local_ops_and_one_block(noise):
    """Every angle-free gate and channel folds away: 4 qubits x 2 layers of local ops,
    one 256 x 256 block between them, the last block inside the readout functional;
    a device snapshot's 66-instruction transpiled program folds to the same."""
    from superpos_cli.quantum.backends import density, ptm

    kwargs = {"noise_device": _device_or_skip()} if noise == "device" else {"noise": noise}
    program = density.program(CircuitSpec(4, 2, readout="prob", **kwargs))
    assert [type(op).__name__ for op in program.ops] == ["Local"] * 4 + ["Fixed"] + ["Local"] * 4
    assert program.ops[4].qubits == (0, 1, 2, 3)
    assert all(isinstance(op, ptm.Fixed) or op.forms[1] for op in program.ops)  # Ry and Rz merged


@pytest.mark.parametrize("spec", [
    CircuitSpec(4, 2, "first-layer", "ring", "prob", noise="amplitude-damping:0.04,depolarizing:0.02,readout:0.03"),
    CircuitSpec(5, 2, readout="prob", noise="depolarizing:0.02,amplitude-damping:0.03"),  # two-qubit blocks
    "device",
], ids=["4-ring", "5-chain", "device"])
def test_program_jacobian_matches_finite_differences(spec):
    """The reverse sweep's Jacobian of the coefficients, for two angle sets at once,
    against central differences of the same simulation."""
    from superpos_cli.quantum.backends import density

    if spec == "device":
        spec = CircuitSpec(3, 2, entangler="ring", readout="prob", noise_device=_device_or_skip())
    P = 2 * spec.depth * spec.n_qubits
    angles = np.random.default_rng(0).uniform(-np.pi, np.pi, (2, P))
    coef, jacobian = density.coefficients_and_jacobian(spec, angles)
    eps = 1e-5
    for i in range(P):
        step = np.zeros(P)
        step[i] = eps
        up = density.coefficients_and_jacobian(spec, angles + step, jacobian=False)[0]
        down = density.coefficients_and_jacobian(spec, angles - step, jacobian=False)[0]
        np.testing.assert_allclose(jacobian[:, i], (up - down) / (2 * eps), atol=1e-8, rtol=0)
    alone = density.coefficients_and_jacobian(spec, angles[1:], jacobian=False)[0]
    np.testing.assert_allclose(coef[1:], alone, atol=1e-14, rtol=0)


# --------------------------------------------------------------------------- shots


def _aer_shot_estimates(spec, theta, phi, value, repeats, seed):
    """``repeats`` shot estimates of the readout at one input, from Aer's sampler."""
    from superpos_cli.quantum import prepare

    circuit = prepare(spec, theta, phi, "aer", seed=seed)
    return circuit.evaluate(torch.full((repeats,), value, dtype=torch.float64))


@pytest.mark.parametrize("shots", [100, 1024])
def test_shot_estimates_are_distributed_as_aers(shots):
    from scipy import stats

    spec = CircuitSpec(3, 2, readout="prob", noise="depolarizing:0.05,readout:0.02", shots=shots)
    theta, phi, x = _angles(spec, seed=4)
    value, repeats = float(x[0]), 400
    exact = float(evaluate(CircuitSpec(3, 2, readout="prob", noise=spec.noise), theta, phi, x[:1], "fourier")[0])
    ours = evaluate(spec, theta, phi, torch.full((repeats,), value, dtype=torch.float64), "fourier", seed=5)
    aer = _aer_shot_estimates(spec, theta, phi, value, repeats, seed=6)
    # Binomial(shots, P) / shots: mean P, variance P (1 - P) / shots, on the 1/shots grid.
    for sample in (ours, aer):
        assert torch.allclose(sample * shots, (sample * shots).round(), atol=1e-9)
        assert abs(sample.mean().item() - exact) < 5 * (exact * (1 - exact) / shots / repeats) ** 0.5
        chi2 = sample.var().item() * (repeats - 1) / (exact * (1 - exact) / shots)
        assert stats.chi2.ppf(1e-4, repeats - 1) < chi2 < stats.chi2.ppf(1 - 1e-4, repeats - 1)
    assert stats.ks_2samp(ours.numpy(), aer.numpy()).pvalue > 1e-3
    # The same test tells the noiseless circuit's shots apart from the noisy ones.
    noiseless = evaluate(CircuitSpec(3, 2, readout="prob", shots=shots), theta, phi,
                         torch.full((repeats,), value, dtype=torch.float64), "fourier", seed=7)
    assert stats.ks_2samp(noiseless.numpy(), aer.numpy()).pvalue < 1e-3


def test_shots_are_seeded_and_pass_the_gradient_straight_through():
    spec = CircuitSpec(2, 2, readout="prob", noise="depolarizing:0.05", shots=256)
    theta, phi, x = _angles(spec, seed=8, points=64)
    a = evaluate(spec, theta, phi, x, "fourier", seed=1)
    assert torch.equal(a, evaluate(spec, theta, phi, x, "fourier", seed=1))
    assert not torch.equal(a, evaluate(spec, theta, phi, x, "fourier", seed=2))
    grads = []
    for s, seed in ((spec, 1), (CircuitSpec(2, 2, readout="prob", noise="depolarizing:0.05"), None)):
        t, p, v = theta.clone().requires_grad_(), phi.clone().requires_grad_(), x.clone().requires_grad_()
        evaluate(s, t, p, v, "fourier", seed=seed).sum().backward()
        grads.append(torch.cat([t.grad.ravel(), p.grad.ravel(), v.grad]))
    torch.testing.assert_close(grads[0], grads[1], atol=0, rtol=0)


# --------------------------------------------------------------------------- the model option


def test_noise_reaches_the_textcls_model_and_trains():
    from superpos_cli.models.attention import QuantumAttention
    from superpos_cli.tasks import build_task

    task = build_task("textcls", 0, {"readout": "prob", "noise": "depolarizing:0.01", "shots": 128,
                                     "n_train": 64, "n_val": 32})
    model = task.build_model()
    layers = [m for m in model.modules() if isinstance(m, QuantumAttention)]
    assert layers and all(m.circuit.noise == (("depolarizing", 0.01),) and m.circuit.shots == 128 for m in layers)


@pytest.mark.parametrize("options", [{"noise": "depolarizing:0.01"}, {"shots": 10}, {"noise": "warp:0.1"},
                                     {"readout": "prob", "noise": "depolarizing:0.01", "backend": "torch"}])
def test_bad_noise_options_fail_before_any_work(options):
    from superpos_cli.tasks import build_task

    with pytest.raises(BadInput):
        build_task("textcls", 0, options).build_model()


def _sampler_paths():
    """The shot sampler's implementations: the C one where it builds here, and torch's."""
    from superpos_cli.quantum.backends.shots import native_available

    return ["native", "torch"] if native_available() else ["torch"]


SAMPLER_PATHS = _sampler_paths()


@pytest.mark.parametrize("path", SAMPLER_PATHS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shots", [100, 1024, 20])
@pytest.mark.parametrize("p", [0.002, 0.03, 0.12, 0.3, 0.5, 0.97, 0.995])
def test_shot_counts_follow_the_binomial(shots, p, dtype, path):
    """Chi-square of 20,000 counts against scipy's Binomial(shots, p) pmf, bins merged
    to expected counts >= 20: both regimes (inversion below N min(P, 1-P) = 20, in
    float32 as training runs it and in float64, the Cornish-Fisher count above) must be
    indistinguishable from exact sampling, on either implementation."""
    _check_binomial(shots, p, 20_000, seed=int(p * 1000) + shots, dtype=dtype, path=path)


@pytest.mark.parametrize("path", SAMPLER_PATHS)
@pytest.mark.parametrize("shots, p", [(1024, 0.015), (1024, 0.985), (100, 0.15)])
def test_inversion_counts_past_its_first_chunks(shots, p, path):
    """Means near 20 (counts past the inversion's first three chunks of steps, where
    every lane of a block must continue) in float32, a million draws."""
    from superpos_cli.quantum.backends.shots import _STEP_CHUNK, EXACT_BELOW

    assert min(p, 1 - p) * shots < EXACT_BELOW and stats_sf_above(shots, min(p, 1 - p), 3 * _STEP_CHUNK) > 1e-3
    _check_binomial(shots, p, 1_000_000, seed=7 + shots, dtype=torch.float32, path=path)


def stats_sf_above(shots, p, k):
    from scipy import stats

    return stats.binom.sf(k - 1, shots, p)


@pytest.mark.parametrize("path", SAMPLER_PATHS)
@pytest.mark.parametrize("shots, p", [(100, 0.2), (1024, 0.0196), (1024, 0.98)])
def test_cornish_fisher_is_indistinguishable_at_its_threshold(shots, p, path):
    """A million counts at a mean just above 20, where the approximation starts: a test
    that tells the second-order (skewness-only) version apart (p ~ 3e-6 here)."""
    from superpos_cli.quantum.backends.shots import EXACT_BELOW

    assert min(p, 1 - p) * shots >= EXACT_BELOW
    _check_binomial(shots, p, 1_000_000, seed=shots, path=path)


@pytest.mark.parametrize("path", SAMPLER_PATHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_each_count_is_its_regimes_formula_at_the_drawn_variates(dtype, path):
    """Independently of the sampler's code: with its variates (the normal and the
    uniform each element draws from the call's seeds), a count is scipy's binomial
    quantile at the uniform where N min(P, 1 - P) < EXACT_BELOW and the Cornish-Fisher
    count (numpy, float64) at the normal elsewhere, on both sides of the threshold,
    at both tails, over more than one block, with alpha x folded in."""
    from scipy import stats

    from superpos_cli.quantum.backends import shots as S

    n, count = 1024, 3000
    gen = torch.Generator().manual_seed(5)
    means = torch.rand(count, generator=gen, dtype=torch.float64) * 40  # 0..40 around EXACT_BELOW = 20
    prob = torch.where(torch.arange(count) % 2 == 0, means / n, 1 - means / n)
    x = torch.randn(count, generator=gen, dtype=torch.float64)
    v = (prob + 0.25 * x).to(dtype)
    prob = (v - 0.25 * x.to(dtype)).clamp(0, 1).double().numpy()  # P as the sampler sees it
    seeds = S._seeds(torch.Generator().manual_seed(9))
    out = S.sample_estimate(v, x.to(dtype), 0.25, n, torch.Generator().manual_seed(9), path=path)
    counts = np.round((out.double() - 0.25 * x.to(dtype).double()).numpy() * n)
    z = S._normals(seeds[0], count, dtype, "cpu").double().numpy()
    u = S._uniforms(seeds[1], torch.arange(count), dtype).double().numpy()
    mean = prob * n
    small = np.minimum(mean, n - mean) < S.EXACT_BELOW
    assert 0.3 < small.mean() < 0.7
    q = np.where(prob > 0.5, 1 - prob, prob)
    inverted = stats.binom.ppf(u, n, q)
    inverted = np.where(prob > 0.5, n - inverted, inverted)
    sd = np.sqrt(mean * (1 - prob))
    g, k = (1 - 2 * prob) / sd, (1 - 6 * prob * (1 - prob)) / sd**2
    quantile = z + g * (z**2 - 1) / 6 + k * (z**3 - 3 * z) / 24 - g**2 * (2 * z**3 - 5 * z) / 36
    approximated = np.clip(np.floor(mean + sd * quantile + 0.5), 0, n)
    expected = np.where(small, inverted, approximated)
    # float32 rounds P, the CDF and the expansion: a count may land on a neighbour
    agree = (counts == expected).mean() if dtype == torch.float64 else (np.abs(counts - expected) <= 1).mean()
    assert agree == 1.0 if dtype == torch.float64 else agree > 0.999
    assert (counts[small] == expected[small]).mean() > (0.9999 if dtype == torch.float64 else 0.995)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_native_and_torch_samplers_draw_the_same_counts(dtype):
    """The C sampler against its torch twin at the same seeds: the same count for every
    element (NaN kept, P clamped, sizes across block edges), on one thread or two."""
    from superpos_cli.quantum.backends import shots as S

    if not S.native_available(dtype):
        pytest.skip("no C compiler here: the torch path is the only one")
    for size in (1, 1023, 1025, 5000):
        gen = torch.Generator().manual_seed(size)
        x = torch.randn(size, generator=gen, dtype=dtype)
        v = torch.rand(size, generator=gen, dtype=dtype) ** 3 + 0.25 * x
        v[:: 97] = float("nan")
        v[1:: 89] = 1.5 + 0.25 * x[1:: 89]
        c, t = (S.sample_estimate(v, x, 0.25, 1024, torch.Generator().manual_seed(1), path=path)
                for path in ("native", "torch"))
        torch.testing.assert_close(((c - 0.25 * x) * 1024).round(), ((t - 0.25 * x) * 1024).round(),
                                   rtol=0, atol=0, equal_nan=True)
        seeds = (3, 4)
        one, two = (S._native_estimate(S._native_kernel(dtype), v, x, 0.25, 1024, seeds, threads=k) for k in (1, 2))
        torch.testing.assert_close(one, two, rtol=0, atol=0, equal_nan=True)


def test_the_native_sampler_builds_where_there_is_a_compiler():
    import shutil

    from superpos_cli.quantum.backends.shots import native_available

    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler")
    assert native_available(torch.float32) and native_available(torch.float64)


def test_splitmix_is_the_reference_generator():
    """The torch bits (int64 products wrapping) against numpy's uint64 arithmetic and
    splitmix64's published first output for seed 0."""
    from superpos_cli.quantum.backends.shots import GOLDEN, splitmix

    assert int(splitmix(0, torch.tensor([1]))[0]) & (2**64 - 1) == 0xE220A8397B1DCDAF
    gen = np.random.default_rng(0)
    counters = gen.integers(0, 2**62, 1000, dtype=np.int64)
    seed = int(gen.integers(0, 2**63 - 1))
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + counters.astype(np.uint64) * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    assert np.array_equal(splitmix(seed, torch.from_numpy(counters)).numpy().view(np.uint64), z)


@pytest.mark.parametrize("path", SAMPLER_PATHS)
def test_a_nan_readout_stays_nan_under_shots(path):
    from superpos_cli.quantum.backends.shots import sample_estimate

    v = torch.tensor([0.5, float("nan"), 0.001, 0.3])
    out = sample_estimate(v, torch.zeros(4), 0.0, 1024, torch.Generator().manual_seed(0), path=path)
    assert out[1].isnan() and not out[[0, 2, 3]].isnan().any()


def _check_binomial(shots, p, draws, seed, dtype=torch.float64, path="auto"):
    from scipy import stats

    from superpos_cli.quantum.backends.shots import sample_counts

    gen = torch.Generator().manual_seed(seed)
    counts = sample_counts(torch.full((draws,), p, dtype=dtype), shots, gen, path=path).double().numpy()
    assert np.allclose(counts, counts.round()) and counts.min() >= 0 and counts.max() <= shots
    expected = stats.binom.pmf(np.arange(shots + 1), shots, p) * draws
    observed = np.bincount(counts.astype(int), minlength=shots + 1).astype(float)
    bins_e, bins_o, acc_e, acc_o = [], [], 0.0, 0.0
    for e, o in zip(expected, observed):
        acc_e, acc_o = acc_e + e, acc_o + o
        if acc_e >= 20:
            bins_e.append(acc_e), bins_o.append(acc_o)
            acc_e = acc_o = 0.0
    bins_e[-1] += acc_e
    bins_o[-1] += acc_o
    chi2 = sum((o - e) ** 2 / e for o, e in zip(bins_o, bins_e))
    assert stats.chi2.sf(chi2, len(bins_e) - 1) > 1e-4


# --------------------------------------------------------------------------- device snapshots


@pytest.mark.parametrize("entangler", ["chain", "ring"])
def test_device_snapshot_matches_aer_with_the_backends_noise_model(entangler):
    pytest.importorskip("qiskit_ibm_runtime")
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.noise.device.models import basic_device_readout_errors

    from superpos_cli.quantum.backends.devices import chain_layout, load_device
    from superpos_cli.quantum.backends.noise_models import aer_noise

    spec = CircuitSpec(3, 2, entangler=entangler, readout="prob", noise_device="fake_manila")
    backend = load_device("fake_manila")
    assert chain_layout(backend, 3) == [0, 1, 2]
    theta, phi, x = _angles(spec, seed=11, points=4)
    program = aer_noise(spec, theta, phi)  # the same transpiled program, the model built independently
    model = NoiseModel.from_backend(backend)
    readout = {tuple(q): e.probabilities for q, e in basic_device_readout_errors(None, target=backend.target)}
    ref = []
    for value in x.tolist():
        qc = program.circuit.assign_parameters({program.x: value})
        qc.save_density_matrix(qubits=program.layout)
        rho = np.asarray(AerSimulator(method="density_matrix").run(qc, noise_model=model).result()
                         .data()["density_matrix"])
        probs = np.real(np.diag(rho))  # little-endian over superpos qubits 0, 1, 2
        confusion = np.array([[1.0]])
        for physical in program.layout:
            confusion = np.kron(readout[(physical,)], confusion)
        probs = probs @ confusion
        ref.append(sum(probs[sum(((k >> (2 - q)) & 1) << q for q in range(3))] for k in range(3)))
    ref = torch.tensor(ref, dtype=torch.float64)
    torch.testing.assert_close(evaluate(spec, theta, phi, x, "fourier"), ref, atol=1e-8, rtol=0)
    assert not torch.allclose(ref, evaluate(spec.noiseless, theta, phi, x, "torch"), atol=1e-3)


def test_device_gradients_match_finite_differences():
    pytest.importorskip("qiskit_ibm_runtime")
    spec = CircuitSpec(2, 1, readout="prob", noise_device="fake_manila")
    theta, phi, x = _angles(spec, seed=12, points=3)
    inputs = (theta.requires_grad_(), phi.requires_grad_(), x.requires_grad_())
    assert torch.autograd.gradcheck(lambda t, p, v: evaluate(spec, t, p, v, "fourier"), inputs)


def test_unknown_device_names_what_is_allowed():
    from superpos_cli.quantum.noise_spec import device_names

    with pytest.raises(BadInput, match="noise_device 'fake_nowhere'") as err:
        CircuitSpec(2, 1, readout="prob", noise_device="fake_nowhere")
    assert "\n" not in str(err.value)
    if device_names():
        assert "fake_manila" in device_names() and "e.g." in str(err.value)


def test_noise_and_a_device_snapshot_exclude_each_other():
    with pytest.raises(BadInput, match="exclude each other") as err:
        CircuitSpec(2, 1, readout="prob", noise="depolarizing:0.1", noise_device=_device_or_skip())
    assert "\n" not in str(err.value)
