"""The same contracts on CUDA: run where a GPU is (``pytest -m cuda``,
benchmarks/gpu_check.sh), skipped with a message everywhere else. CPU CI never
has a GPU, so nothing else may depend on these.

CUDA results are compared with their CPU counterparts to float tolerance, never
bit for bit (README, Determinism).
"""

from __future__ import annotations

import io

import pytest
import torch

from superpos_cli.models.attention import QuantumAttention
from superpos_cli.optim.optimizer import SuperpositionalAdam
from superpos_cli.quantum import CircuitSpec

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]


def _mlp(device, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(device)


def _train(model, optimizer, steps=20):
    generator = torch.Generator().manual_seed(123)
    device = next(model.parameters()).device
    x = torch.randn(64, 4, generator=generator).to(device)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0], device=device)).sin().unsqueeze(1)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return [p.detach().cpu() for p in model.parameters()]


@pytest.mark.parametrize("path", [{"foreach": False}, {"foreach": True}, {"fused": True}])
def test_neutral_settings_match_torch_adam_on_cuda(path):
    reference = _mlp("cuda")
    expected = _train(reference, torch.optim.Adam(reference.parameters(), lr=1e-2))
    model = _mlp("cuda")
    got = _train(model, SuperpositionalAdam(model.parameters(), lr=1e-2, perturb_scale=0.0, scope="all", **path))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_cuda_step_equals_the_cpu_step_to_float_tolerance():
    runs = []
    for device in ("cpu", "cuda"):
        model = _mlp(device)
        runs.append(_train(model, SuperpositionalAdam(model.parameters(), lr=1e-2, perturb_scale=0.5, scope="all")))
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_compiled_step_equals_eager_on_cuda():
    eager_model, compiled_model = _mlp("cuda"), _mlp("cuda")
    eager = SuperpositionalAdam(eager_model.parameters(), lr=1e-2, perturb_scale=0.5)
    compiled = SuperpositionalAdam(compiled_model.parameters(), lr=1e-2, perturb_scale=0.5)
    step = torch.compile(compiled.step)
    x = torch.randn(32, 4, device="cuda")
    for _ in range(5):
        for model, opt, run in ((eager_model, eager, eager.step), (compiled_model, compiled, step)):
            opt.zero_grad()
            model(x).square().mean().backward()
            run()
    for a, b in zip(eager_model.parameters(), compiled_model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_grad_scaler_skips_an_inf_step_on_cuda():
    model = _mlp("cuda")
    optimizer = SuperpositionalAdam(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cuda")
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(torch.randn(8, 4, device="cuda")).sum()
    scaler.scale(loss).backward()
    next(model.parameters()).grad[0, 0] = float("inf")
    scaler.step(optimizer)
    scaler.update()
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)


def test_state_dict_round_trip_on_cuda_with_weights_only():
    model = _mlp("cuda")
    optimizer = SuperpositionalAdam(model.parameters(), lr=1e-2, perturb="gaussian")
    _train(model, optimizer, steps=3)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    copy = SuperpositionalAdam(model.parameters(), lr=1e-2, perturb="gaussian")
    copy.load_state_dict(state)
    for group in copy.state.values():
        for value in group.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                assert value.device.type == "cuda"


@pytest.mark.parametrize("backend", ["fourier", "torch"])
def test_quantum_attention_on_cuda_equals_cpu(backend):
    torch.manual_seed(0)
    cpu = QuantumAttention(16, 2, circuit=CircuitSpec(), backend=backend)
    gpu = QuantumAttention(16, 2, circuit=CircuitSpec(), backend=backend).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(4, 24, 16)
    y_cpu, y_gpu = cpu(x), gpu(x.cuda())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-4, rtol=1e-4)
    y_cpu.sum().backward()
    y_gpu.sum().backward()
    torch.testing.assert_close(gpu.theta.grad.cpu(), cpu.theta.grad, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("task, options", [
    ("textcls", {"device": "cuda", "n_train": 64, "n_val": 32}),
    ("gsm8k", {"device": "cuda", "limit": 8, "n_layers": 1, "d_model": 32}),  # bf16 autocast on CUDA
])
def test_a_task_trains_on_cuda(task, options):
    from superpos_cli.experiments.trials import TrialSpec, run_trial
    from superpos_cli.engine.loop import TrainConfig
    from superpos_cli.spec.arms import parse_arm

    record = run_trial(TrialSpec(task, options, parse_arm("sgd", {}, {}), TrainConfig(seed=0, max_epochs=1)))
    assert record["status"] == "ok"
    assert record["task_description"]["device"].startswith("cuda")


def test_default_path_on_cuda_compiles_nothing_below_its_threshold():
    # On CUDA the compiled single pass pays only from 2**28 coordinates (optimizer.py,
    # measured on an H200): a 4.2M-coordinate model runs torch's fused Adam plus a
    # foreach pass for Q, and agrees with the compiled path to float tolerance.
    runs = {}
    for fused in (None, True):
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(1024, 1024, device="cuda")) for _ in range(4)]
        optimizer = SuperpositionalAdam(params, lr=1e-2, perturb_scale=0.5, scope="tensors", fused=fused)
        group = optimizer.param_groups[0]
        assert optimizer._paths(group, list(group["params"]), optimizer.perturb_counts()[0])[2] == (fused is True)
        for step in range(3):
            for p in params:
                p.grad = torch.sin(p.detach() * (step + 1))
            optimizer.step()
        runs[fused] = [p.detach().cpu() for p in params]
    for a, b in zip(runs[None], runs[True]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
