"""Optimizer presets and the arm syntax."""

import pytest
import torch

from superpos_cli import SuperpositionalAdam
from superpos_cli.errors import BadInput
from superpos_cli.optim.presets import build_optimizer
from superpos_cli.spec.arms import PRESETS, parse_arm


def test_sgd_preset_is_the_papers_superpositional_adam():
    arm = parse_arm("sgd")
    opt = build_optimizer(arm, torch.nn.Linear(3, 2))
    assert isinstance(opt, SuperpositionalAdam)
    group = opt.param_groups[0]
    assert group["perturb_scale"] == 0.5 and group["perturb"] == "sin" and group["lr"] == 1e-3


def test_precedence_preset_task_flag_arm():
    arm = parse_arm("sgd:lambda=0.1", overrides={"lambda": 0.3, "lr": 5e-4}, task_defaults={"lr": 2e-5})
    assert arm.options["lambda"] == 0.1  # the arm's own option wins
    assert arm.options["lr"] == 5e-4  # the global flag beats the task default
    assert parse_arm("adamw", task_defaults={"lr": 2e-5}).options["lr"] == 2e-5


def test_two_arms_of_one_preset_differ():
    a, b = parse_arm("sgd:lambda=0.1"), parse_arm("sgd:lambda=0.5,scope=all")
    assert a.name != b.name and a.options["scope"] == "tensors" and b.options["scope"] == "all"


def test_superpos_alias_and_key_aliases():
    arm = parse_arm("superpos:n-qubits=2,wd=0.1")
    assert arm.preset == "sgd" and arm.options["n_qubits"] == 2 and arm.options["weight_decay"] == 0.1


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds_and_steps(preset):
    model = torch.nn.Linear(4, 1)
    opt = build_optimizer(parse_arm(preset), model)
    model(torch.ones(2, 4)).sum().backward()
    before = model.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.weight)


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("adamx", {}, "unknown optimizer 'adamx'"),
        ("sgd:lambda=-1", {}, "lambda must be a number >= 0"),
        ("sgd", {"lr": 0}, "lr must be a number > 0"),
        ("sgd:n_qubits=0", {}, "n_qubits must be an integer >= 1"),
        ("sgd:perturb=tan", {}, "perturb must be one of sin, cos, gaussian, uniform, none, got 'tan'"),
        ("sgd:scope=half", {}, "scope must be one of tensors, coords, global, all, got 'half'"),
        ("sgd:lambda=abc", {}, "lambda must be a number >= 0, got 'abc'"),
        ("sgd:lambda", {}, "key=value"),
        ("sgd:colour=red", {}, "unknown optimizer option 'colour'"),
        ("adam:lambda=0.1", {}, "does not apply to optimizer 'adam'"),
        ("momentum:fused=true", {}, "does not apply to optimizer 'momentum'"),
    ],
)
def test_bad_arms_are_bad_input(text, overrides, message):
    with pytest.raises(BadInput, match=message):
        parse_arm(text, overrides)


@pytest.mark.parametrize("text, fused", [("adam", True), ("adamw", True), ("adam:fused=false", False),
                                         ("adamw:fused=true", True)])
def test_adam_presets_use_torchs_fused_kernel_unless_told(text, fused):
    """The Adam reference is torch's fused Adam where torch has it (CPU here), the
    kernel SuperpositionalAdam's small-model default also runs, so an arm's cost
    over it is the sine term's; the numbers equal torch's default loop to rounding."""
    torch.manual_seed(0)
    model, twin = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    opt = build_optimizer(parse_arm(text), model)
    assert type(opt).__name__ == ("Adam" if text.startswith("adam:") or text == "adam" else "AdamW")
    assert opt.defaults["fused"] is fused
    loop = type(opt)(twin.parameters(), lr=opt.defaults["lr"], weight_decay=opt.defaults["weight_decay"], foreach=False)
    x = torch.randn(8, 3)
    for o, m in ((opt, model), (loop, twin)):
        for _ in range(3):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
