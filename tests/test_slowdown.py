"""SUPERPOS_TEST_SLOWDOWN wraps objects from outside: more work, the same results."""

import pytest
import torch

from superpos_cli.errors import BadInput

from superpos_cli.models.attention import QuantumAttention
from superpos_cli.optim import SuperpositionalAdam
from superpos_cli.quantum import CircuitSpec
from superpos_cli.slowdown import SlowedOptimizer, slowdown_factor, slowed_module, slowed_optimizer


@pytest.fixture
def slowdown(monkeypatch):
    def set_value(value):
        monkeypatch.setenv("SUPERPOS_TEST_SLOWDOWN", value)
        slowdown_factor.cache_clear()

    yield set_value
    monkeypatch.delenv("SUPERPOS_TEST_SLOWDOWN", raising=False)
    slowdown_factor.cache_clear()


def _attention_output_and_grad(wrap):
    torch.manual_seed(0)
    attn = QuantumAttention(16, 2, dropout=0.3, circuit=CircuitSpec(n_qubits=2, depth=1), backend="torch")
    calls = []
    attn.register_forward_hook(lambda *_: calls.append(1))
    module = wrap(attn)
    x = torch.randn(2, 5, 16)
    y = module(x)  # training mode: dropout draws from its stream
    y.square().sum().backward()
    after = torch.rand(1)  # the extra passes must leave the RNG where it was
    return (y.detach(), attn.theta.grad.clone(), after), len(calls)


@pytest.mark.parametrize("factor, passes", [("2", 2), ("3", 3), ("1.5", 2)])
def test_slowed_attention_repeats_its_work_and_keeps_results(slowdown, factor, passes):
    plain, plain_calls = _attention_output_and_grad(lambda m: m)
    slowdown(f"attention={factor}")
    slowed, slowed_calls = _attention_output_and_grad(slowed_module)
    assert all(torch.equal(a, b) for a, b in zip(plain, slowed))
    assert (plain_calls, slowed_calls) == (1, passes)


def _train(optimizer_factory, wrap, steps=3):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    optimizer = wrap(optimizer_factory(model.parameters()))
    x, y = torch.randn(16, 6), torch.randn(16, 1)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()], optimizer


FACTORIES = {
    "superpositional": lambda ps: SuperpositionalAdam(ps, lr=1e-2, perturb="gaussian", scope="all", seed=3),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
}


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("factor, copies", [("2", 1), ("2.5", 2), ("3", 2)])
def test_slowed_optimizer_steps_copies_and_keeps_results(slowdown, name, factor, copies):
    plain, _ = _train(FACTORIES[name], lambda o: o)
    slowdown(f"optimizer={factor}")
    slowed, optimizer = _train(FACTORIES[name], slowed_optimizer)
    assert isinstance(optimizer, SlowedOptimizer) and len(optimizer._copies) == copies
    assert all(torch.equal(a, b) for a, b in zip(plain, slowed))
    # Each copy stepped as often as the real optimizer, on its own parameters.
    for scratch, pairs in optimizer._copies:
        assert pairs and all(real is not twin for real, twin in pairs)
        assert all(int(scratch.state[twin]["step"]) == 3 for _, twin in pairs)


def test_no_slowdown_returns_the_objects_themselves(slowdown):
    slowdown("")
    module, optimizer = torch.nn.Linear(2, 2), torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    assert slowed_module(module) is module and slowed_optimizer(optimizer) is optimizer


def test_hot_paths_know_nothing_of_slowdowns():
    import inspect

    from superpos_cli.models import attention
    from superpos_cli.optim import optimizer

    for module in (attention, optimizer):
        assert "slowdown" not in inspect.getsource(module).lower()


def test_slowdown_parsing(slowdown):
    slowdown("optimizer=2, attention=1.5")
    assert slowdown_factor("optimizer") == 2.0
    assert slowdown_factor("attention") == 1.5
    assert slowdown_factor("circuit") == 1.0
    for bad in ["optimizer", "optimizer=fast", "optimizer=0.5", "=2", "optimizer=nan"]:
        slowdown(bad)
        with pytest.raises(BadInput, match="SUPERPOS_TEST_SLOWDOWN"):
            slowdown_factor("optimizer")
