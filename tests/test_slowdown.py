"""SUPERPOS_TEST_SLOWDOWN makes a part do more work without changing any result."""

import torch

from superpos_cli.models.attention import QuantumAttention
from superpos_cli.quantum import CircuitSpec
from superpos_cli.slowdown import slowdown_factor


def _attention_output_and_grad():
    torch.manual_seed(0)
    attn = QuantumAttention(16, 2, dropout=0.3, circuit=CircuitSpec(n_qubits=2, depth=1), backend="torch")
    x = torch.randn(2, 5, 16)
    y = attn(x)  # training mode: dropout draws from the global RNG
    y.square().sum().backward()
    after = torch.rand(1)  # the extra passes must leave the RNG where it was
    return y.detach(), attn.theta.grad.clone(), after


def test_attention_slowdown_keeps_results(monkeypatch):
    plain = _attention_output_and_grad()
    monkeypatch.setenv("SUPERPOS_TEST_SLOWDOWN", "attention=2")
    slowdown_factor.cache_clear()
    try:
        assert slowdown_factor("attention") == 2.0
        slowed = _attention_output_and_grad()
    finally:
        monkeypatch.delenv("SUPERPOS_TEST_SLOWDOWN")
        slowdown_factor.cache_clear()
    assert all(torch.equal(a, b) for a, b in zip(plain, slowed))
