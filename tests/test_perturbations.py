"""The perturbation registry: pure functions f(theta, generator), table-driven."""

import math

import pytest
import torch

from superpos_cli.optim.perturbations import PERTURBATIONS, get_perturbation

NAMES = sorted(PERTURBATIONS)

# f at theta = [0.25, 0.5, -1/6, 1.0], by hand: sin(pi/4) = cos(pi/4) = sqrt(2)/2,
# sin(pi/2) = 1, cos(pi/2) = 0, sin(-pi/6) = -1/2, cos(-pi/6) = sqrt(3)/2,
# sin(pi) = 0, cos(pi) = -1.
THETA = [0.25, 0.5, -1 / 6, 1.0]
CLOSED_FORM = {
    "sin": [math.sqrt(2) / 2, 1.0, -0.5, 0.0],
    "cos": [math.sqrt(2) / 2, 0.0, math.sqrt(3) / 2, -1.0],
    "none": [0.0, 0.0, 0.0, 0.0],
}
RANDOM = {"gaussian", "uniform"}


def test_registry_names():
    assert set(NAMES) == {"sin", "cos", "gaussian", "uniform", "none"}
    assert {name for name in NAMES if PERTURBATIONS[name].needs_generator} == RANDOM
    assert [name for name in NAMES if PERTURBATIONS[name].is_zero] == ["none"]


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_closed_form(name):
    theta = torch.tensor(THETA, dtype=torch.float64)
    out = PERTURBATIONS[name].fn(theta, None)
    torch.testing.assert_close(out, torch.tensor(CLOSED_FORM[name], dtype=torch.float64), atol=1e-15, rtol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pure_and_shape_preserving(name, dtype):
    theta = torch.randn(3, 5, dtype=dtype, generator=torch.Generator().manual_seed(0))
    before = theta.clone()
    out = PERTURBATIONS[name].fn(theta, torch.Generator().manual_seed(1))
    assert out.shape == theta.shape and out.dtype == dtype
    assert torch.equal(theta, before), "f must not write theta"
    assert out.data_ptr() != theta.data_ptr()


@pytest.mark.parametrize("name", NAMES)
def test_foreach_matches_elementwise(name):
    thetas = [torch.randn(s, generator=torch.Generator().manual_seed(2)) for s in [(4,), (2, 3), (5,)]]
    generator = torch.Generator().manual_seed(3)
    single = [PERTURBATIONS[name].fn(t, generator) for t in thetas]
    generator = torch.Generator().manual_seed(3)
    many = PERTURBATIONS[name].foreach_fn(thetas, generator)
    for a, b in zip(single, many):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_seeded_and_independent_of_theta(name):
    theta = torch.zeros(1000)
    a = PERTURBATIONS[name].fn(theta, torch.Generator().manual_seed(7))
    b = PERTURBATIONS[name].fn(theta + 5, torch.Generator().manual_seed(7))
    c = PERTURBATIONS[name].fn(theta, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_random_distributions():
    generator = torch.Generator().manual_seed(0)
    gauss = PERTURBATIONS["gaussian"].fn(torch.zeros(200_000), generator)
    assert abs(gauss.mean().item()) < 0.01 and abs(gauss.std().item() - 1) < 0.01
    unif = PERTURBATIONS["uniform"].fn(torch.zeros(200_000), generator)
    assert unif.min().item() >= -1 and unif.max().item() < 1
    assert abs(unif.mean().item()) < 0.01 and abs(unif.var().item() - 1 / 3) < 0.01


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_never_touches_global_rng(name):
    state = torch.get_rng_state()
    PERTURBATIONS[name].fn(torch.zeros(10), torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("bad", ["tanh", "SIN", "", None])
def test_unknown_name_lists_allowed(bad):
    with pytest.raises(ValueError) as err:
        get_perturbation(bad)
    message = str(err.value)
    assert "perturb" in message and all(name in message for name in NAMES)


def test_sin_kernel_form_accurate():
    """The float32 form traced into compiled kernels: exact range reduction and a
    polynomial, within 2e-7 of float64 sin(pi * theta) everywhere."""
    kernel_fn = get_perturbation("sin").kernel_fn
    theta = torch.empty(10_000_000).uniform_(-100, 100, generator=torch.Generator().manual_seed(0))
    error = (kernel_fn(theta).double() - torch.sin(math.pi * theta.double())).abs().max().item()
    assert error <= 2e-7
    special = torch.tensor([0.0, 1.0, -3.0, 2.0**24, 0.5, -0.5, 1.5, 2.5, -7.5])
    torch.testing.assert_close(kernel_fn(special), torch.tensor([0.0, 0, 0, 0, 1, -1, -1, 1, 1]), atol=0, rtol=0)
    assert kernel_fn(torch.tensor([float("inf"), float("nan")])).isnan().all()
    theta64 = torch.randn(100, dtype=torch.float64)
    torch.testing.assert_close(kernel_fn(theta64), PERTURBATIONS["sin"].fn(theta64, None), atol=0, rtol=0)
