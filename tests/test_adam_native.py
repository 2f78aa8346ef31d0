"""adam_kernels.c, the fused step on CPU: against the single-tensor reference loop of
functional.py (torch ops, one tensor at a time) and float64 sin(pi theta)."""

import math

import pytest
import torch

from superpos_cli.optim import adam_native, functional
from superpos_cli.optim.perturbations import PERTURBATIONS, Perturbation, get_perturbation

pytestmark = pytest.mark.skipif(adam_native.kernels([torch.zeros(1)]) is None, reason="no C compiler here")

BLOCK, PARALLEL_FROM = 8192, 65536  # adam_kernels.c's
# (numel, leading coordinates in scope) per tensor: empty, tiny, a block edge on either side,
# partial scopes ending inside and at the end of a block, and tensors past the parallel limit.
TENSORS = [(0, 0), (7, 7), (BLOCK - 1, 5), (BLOCK + 1, BLOCK), (3 * BLOCK + 17, BLOCK + 3), (PARALLEL_FROM + 5, 0),
           (PARALLEL_FROM + 9, PARALLEL_FROM + 9)]
OPTIONS = {
    "adam": dict(weight_decay=0.0, decoupled_weight_decay=False, eps_inside_sqrt=False),
    "l2": dict(weight_decay=0.05, decoupled_weight_decay=False, eps_inside_sqrt=False),
    "adamw": dict(weight_decay=0.05, decoupled_weight_decay=True, eps_inside_sqrt=False),
    "eps-inside": dict(weight_decay=0.0, decoupled_weight_decay=False, eps_inside_sqrt=True),
}
TOLERANCE = {torch.float32: 2e-6, torch.float64: 1e-13}


def _state(dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    params = [torch.randn(n, generator=generator, dtype=dtype) * 3 for n, _ in TENSORS]
    return params, [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params], \
        [torch.zeros((), dtype=torch.float32) for _ in params]


def _steps(fused, dtype, perturbation, options, counts=None, steps=3):
    params, exp_avgs, exp_avg_sqs, state_steps = _state(dtype)
    generator = torch.Generator().manual_seed(4)
    draws = torch.Generator().manual_seed(5)
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=generator, dtype=dtype) for p in params]
        functional.superpositional_adam(
            params, grads, exp_avgs, exp_avg_sqs, state_steps, counts or [k for _, k in TENSORS],
            foreach=False, fused=fused, lr=0.02, beta1=0.9, beta2=0.999, eps=1e-3, perturbation=perturbation,
            perturb_scale=0.5, perturb_unscaled=False, generator=draws, **options)
    return params + exp_avgs + exp_avg_sqs


@pytest.mark.parametrize("dtype", TOLERANCE)
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("perturb", sorted(PERTURBATIONS))
def test_the_c_pass_agrees_with_the_reference_loop(perturb, options, dtype):
    perturbation = get_perturbation(perturb)
    calls = []
    original = adam_native.AdamKernels.step
    try:
        adam_native.AdamKernels.step = lambda self, *args: calls.append(args[5]) or original(self, *args)
        fused = _steps(True, dtype, perturbation, OPTIONS[options])
    finally:
        adam_native.AdamKernels.step = original
    reference = _steps(False, dtype, perturbation, OPTIONS[options])
    for got, want in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, want, atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])
    # plain Adam (no f, eps outside) is torch's fused kernel, every other case the C pass
    plain = perturbation.is_zero and not OPTIONS[options]["eps_inside_sqrt"]
    assert calls == ([] if plain else [{"sin": 1, "cos": 2}.get(perturb, 0 if perturbation.is_zero else 3)] * 3)


@pytest.mark.parametrize("dtype", TOLERANCE)
def test_any_thread_count_gives_the_same_bits(dtype):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _steps(True, dtype, PERTURBATIONS["sin"], OPTIONS["adamw"])
        torch.set_num_threads(2)
        two = _steps(True, dtype, PERTURBATIONS["sin"], OPTIONS["adamw"])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        assert torch.equal(a, b)


def _f_through_the_kernel(theta, kind):
    """f(theta) itself: hp with no Adam term and c = -1, g = 1 (theta' = 0 * theta + f * 1)."""
    params, grads = [theta.clone()], [torch.ones_like(theta)]
    hp = [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # decay 0, den 1, lr 0, c -1
    adam_native.kernels(params).step(params, grads, [torch.zeros_like(theta)], [torch.zeros_like(theta)],
                                     [theta.numel()], kind, None, hp)
    return params[0]


@pytest.mark.parametrize("dtype", TOLERANCE)
@pytest.mark.parametrize("kind, f", [(adam_native.SIN, math.sin), (adam_native.COS, math.cos)])
def test_the_trig_terms_match_float64(kind, f, dtype):
    theta = torch.cat([torch.linspace(-4, 4, 4001), torch.tensor([0.5, -0.5, 1.5, 1e3 + 0.25, 2.0**23 + 1, 3e7, -1e9]),
                       torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 100]).to(dtype)
    got = _f_through_the_kernel(theta, kind).double()
    # pi * theta as torch rounds it for cos (and for sin in float64); the float32 sine reduces exactly
    angle = theta.double() * math.pi if kind == adam_native.SIN and dtype == torch.float32 else (theta * math.pi).double()
    want = torch.tensor([f(a) for a in angle.tolist()], dtype=torch.float64)
    tolerance = 4e-7 if dtype == torch.float32 else 1e-15
    # away from 0, float32 cos(pi theta) carries the rounding of pi * theta (ulp(pi theta) / 2)
    slack = angle.abs() * (2.0**-24 if dtype == torch.float32 and kind == adam_native.COS else 2.0**-53)
    assert ((got - want).abs() <= tolerance + slack).all()
    special = _f_through_the_kernel(torch.tensor([math.nan, math.inf, -math.inf], dtype=dtype), kind)
    assert special.isnan().all()


def test_a_plugin_named_like_a_builtin_is_evaluated_as_given():
    """Only the registry's own sin and cos are computed inside the C pass; any other f
    (here a plugin named "sin" that doubles it) is evaluated first and passed in."""
    doubled = Perturbation("sin", lambda t, g=None: 2 * torch.sin(t * math.pi),
                           lambda ts, g=None: [2 * torch.sin(t * math.pi) for t in ts], needs_generator=False)
    fused = _steps(True, torch.float64, doubled, OPTIONS["adam"])
    reference = _steps(False, torch.float64, doubled, OPTIONS["adam"])
    builtin = _steps(True, torch.float64, PERTURBATIONS["sin"], OPTIONS["adam"])
    for got, want in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, want, atol=1e-13, rtol=1e-13)
    last = len(TENSORS) - 1  # the last parameter, wholly in scope
    assert not torch.allclose(fused[last], builtin[last])


def test_without_the_c_kernels_the_fused_path_runs_as_before(monkeypatch):
    monkeypatch.setattr(adam_native, "_load", lambda dtype: None)  # no compiler, or SUPERPOS_NATIVE=0
    assert not functional.native_fused([torch.zeros(3)])
    calls = []
    monkeypatch.setattr(functional, "_torch_fused_adam", lambda *a, **k: calls.append(len(a[0])))
    monkeypatch.setattr(functional, "_ensure_compiled", lambda kernel, count: None)
    monkeypatch.setattr(functional, "_get_kernel", lambda key, perturbation: functional.CompiledKernel(
        key[0], key[1], key[2], lambda *args: calls.append("compiled"), 0.0, None))
    _steps(True, torch.float32, PERTURBATIONS["sin"], OPTIONS["adam"], steps=1)
    assert "compiled" in calls and calls[0] == sum(1 for n, k in TENSORS if not 0 < k == n)


def test_tensors_off_the_cpu_or_not_contiguous_are_not_taken():
    assert adam_native.kernels([torch.zeros(4, 4).t()]) is None
    assert adam_native.kernels([torch.zeros(3)], [torch.zeros(3, dtype=torch.float64)]) is None
    assert adam_native.kernels([torch.zeros(3, dtype=torch.bfloat16)]) is None
    assert adam_native.kernels([torch.zeros(3, device="meta")]) is None


COUNTS = [0.0, 1.0, 41.0, 3.5, 2.0**24 - 1, 2.0**24, 1e30]  # 2**24 + 1 rounds back to 2**24 in float32


def test_step_counters_count_as_torchs_foreach_add():
    kernels = adam_native.kernels([torch.zeros(1)])
    ours = [torch.tensor(c, dtype=torch.float32) for c in COUNTS] + [torch.tensor([7.0])]  # 0-d and (1,)
    theirs = [t.clone() for t in ours]
    values = kernels.add_one_to_steps(ours)
    torch._foreach_add_(theirs, 1)
    assert [t.item() for t in ours] == [t.item() for t in theirs]
    assert values == [t.item() for t in theirs]


@pytest.mark.parametrize("counter", [torch.tensor(3.0, dtype=torch.float64), torch.zeros(2), torch.tensor(1, dtype=torch.int64)],
                         ids=["float64", "two-elements", "int64"])
def test_step_counters_it_does_not_take_are_left_to_torch(counter):
    kernels = adam_native.kernels([torch.zeros(1)])
    steps = [torch.tensor(1.0), counter]
    before = [t.clone() for t in steps]
    assert kernels.add_one_to_steps(steps) is None
    assert all(torch.equal(a, b) for a, b in zip(steps, before))


def test_tensors_at_different_step_counts_get_their_own_bias_corrections():
    from superpos_cli.optim.optimizer import SuperpositionalAdam

    def run(**path):
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(n)) for n in (5, 300, 9)]
        optimizer = SuperpositionalAdam(params, lr=0.01, perturb="sin", perturb_scale=0.5, scope="all", **path)
        generator = torch.Generator().manual_seed(1)
        for step in range(6):
            for i, p in enumerate(params):  # the middle tensor skips every other step
                p.grad = None if (i == 1 and step % 2) else torch.randn(p.shape, generator=generator)
            optimizer.step()
        return params, [optimizer.state[p]["step"].item() for p in params]

    native, native_steps = run()
    reference, reference_steps = run(foreach=True)
    assert native_steps == reference_steps == [6.0, 3.0, 6.0]
    for a, b in zip(native, reference):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-6)
