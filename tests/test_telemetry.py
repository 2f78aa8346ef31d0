"""Perturbation telemetry: ||c Q|| / ||Adam's step|| on the scope, measured before a
step without touching it, checked against the steps torch.optim and the optimizer
actually take; a run with telemetry off trains bit for bit the same."""

import copy
import math

import pytest
import torch

from superpos_cli.engine.loop import TrainConfig, train
from superpos_cli.optim.optimizer import SuperpositionalAdam
from superpos_cli.tasks import build_task

SHAPES = [(5, 3), (7,), (4, 2), (6,), (3, 3)]  # 5 tensors, 45 coordinates


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g, dtype=torch.float64)) for s in SHAPES]


def _set_grads(params, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)


def _masks(opt: SuperpositionalAdam) -> list[torch.Tensor]:
    return [torch.arange(p.numel()).reshape(p.shape) < k for p, k in zip(opt.param_groups[0]["params"],
                                                                        opt.perturb_counts()[0])]


CASES = [
    dict(scope="tensors", n_qubits=2),
    dict(scope="coords", n_qubits=3),
    dict(scope="global", n_qubits=20),
    dict(scope="all", perturb_scale=0.1),
    dict(scope="tensors", weight_decay=0.1, decoupled_weight_decay=False),
    dict(scope="tensors", weight_decay=0.1, decoupled_weight_decay=True),
    dict(scope="coords", perturb_unscaled=True, perturb_scale=0.1),
    dict(scope="global", n_qubits=9, perturb="gaussian"),
    dict(scope="tensors", perturb="none"),
]


@pytest.mark.parametrize("options", CASES)
@pytest.mark.parametrize("foreach", [False, True])
def test_ratio_matches_the_steps_actually_taken(options, foreach):
    """Adam's step from torch.optim.Adam/AdamW, the perturbation's step from the
    optimizer with and without lambda; telemetry must match their norms' ratio."""
    options = {"lr": 0.05, "perturb_scale": 0.5, **options}
    params = _params()
    opt = SuperpositionalAdam(params, seed=3, foreach=foreach, fused=False, **options)
    decoupled = options.get("decoupled_weight_decay", True)
    ref_cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ref_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    ref = ref_cls(ref_params, lr=options["lr"], weight_decay=options.get("weight_decay", 0.0), foreach=False)
    for step in range(3):  # non-trivial moments and bias corrections
        _set_grads(params, step)
        _set_grads(ref_params, step)
        no_q = copy.deepcopy(opt)
        no_q.param_groups[0]["perturb_scale"] = 0.0
        before = [p.detach().clone() for p in params]
        sample = opt.perturbation_telemetry()
        ref.step()
        opt.step()
        no_q_params = no_q.param_groups[0]["params"]
        _set_grads(no_q_params, step)  # deepcopy leaves .grad behind
        no_q.step()
        masks = _masks(opt)
        wd = options.get("weight_decay", 0.0) if decoupled else 0.0
        # AdamW's update minus its decoupled decay is Adam's own step.
        adam = [b * (1 - options["lr"] * wd) - r.detach() for b, r in zip(before, ref_params)]
        perturb = [n.detach() - p.detach() for n, p in zip(no_q_params, params)]
        adam_norm = math.sqrt(sum(float(a[m].square().sum()) for a, m in zip(adam, masks)))
        perturb_norm = math.sqrt(sum(float(q[m].square().sum()) for q, m in zip(perturb, masks)))
        assert sample["perturb_ratio"] == pytest.approx(perturb_norm / adam_norm, rel=1e-7, abs=1e-12)
        selected = sum(int(m.sum()) for m in masks)
        assert sample["scope_share"] == selected / sum(p.numel() for p in params)
        # The reference Adam and ours agree, so the copies stayed in lockstep.
        for r, n in zip(ref_params, no_q_params):
            torch.testing.assert_close(r.detach(), n.detach(), rtol=1e-12, atol=1e-12)
        for r, p in zip(ref_params, params):
            r.data.copy_(p.detach())  # follow the perturbed trajectory


@pytest.mark.parametrize("perturb", ["sin", "gaussian"])
def test_telemetry_writes_nothing_and_draws_nothing(perturb):
    a, b = _params(), _params()
    opt_a = SuperpositionalAdam(a, seed=1, scope="all", perturb=perturb, fused=False)
    opt_b = SuperpositionalAdam(b, seed=1, scope="all", perturb=perturb, fused=False)
    for step in range(3):
        _set_grads(a, step)
        _set_grads(b, step)
        opt_a.perturbation_telemetry()
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        assert torch.equal(pa, pb)
    assert torch.equal(opt_a._generator.get_state(), opt_b._generator.get_state())


def test_ratio_is_zero_without_q_and_share_counts_the_scope():
    params = _params()
    _set_grads(params, 0)
    sample = SuperpositionalAdam(params, perturb_scale=0.0, scope="tensors", n_qubits=2).perturbation_telemetry()
    assert sample == {"perturb_ratio": 0.0, "scope_share": (15 + 7) / 45}


TINY = {"n_train": 128, "n_val": 32, "kind": "classical"}


def _train(make, telemetry: bool):
    models = []

    def build(model):
        models.append(model)
        return make(model)

    result = train(build_task("textcls", 0, TINY), build, TrainConfig(max_epochs=2, evals_per_epoch=3, seed=0),
                   telemetry=telemetry)
    return result, [p.detach().clone() for p in models[0].parameters()]


@pytest.mark.parametrize("perturb", ["sin", "gaussian"])
def test_a_run_with_and_without_telemetry_is_bit_identical(perturb):
    def make(model):
        return SuperpositionalAdam(model.parameters(), lr=1e-2, perturb=perturb, seed=0)

    on, on_params = _train(make, True)
    off, off_params = _train(make, False)
    assert [(p.train_loss, p.metrics) for p in on.evals] == [(p.train_loss, p.metrics) for p in off.evals]
    assert [e.train_loss for e in on.epochs] == [e.train_loss for e in off.epochs]
    assert all(torch.equal(a, b) for a, b in zip(on_params, off_params))
    assert all(p.perturb_ratio is not None and p.perturb_ratio > 0 for p in on.evals)
    assert all(p.perturb_ratio is None for p in off.evals)
    ratios = sorted(p.perturb_ratio for p in on.evals[:3])
    assert on.epochs[0].perturb_ratio == ratios[1]  # median of the epoch's 3 windows
    assert on.epochs[0].scope_share == on.evals[0].scope_share


def test_optimizers_without_telemetry_record_none():
    result, _ = _train(lambda model: torch.optim.Adam(model.parameters(), lr=1e-2), True)
    assert all(p.perturb_ratio is None and p.scope_share is None for p in result.evals)
    assert all(e.perturb_ratio is None for e in result.epochs)
