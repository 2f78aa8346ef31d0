"""The training loop: interpolation, censoring, schedules, determinism."""

import pytest
import torch

from superpos_cli.engine.loop import RunResult, TrainConfig, crossing_epoch, lr_multiplier, train
from superpos_cli.errors import BadInput
from superpos_cli.tasks import build_task

TINY = {"n_train": 256, "n_val": 64, "kind": "classical"}


@pytest.mark.parametrize(
    "points, target, expected",
    [
        ([(0, 0.5), (1, 0.8), (2, 1.0)], 0.9, 1.5),  # halfway between 0.8 and 1.0
        ([(0, 0.5), (0.1, 0.95)], 0.9, 0.1 * 0.4 / 0.45),
        ([(0, 0.95), (1, 0.99)], 0.9, 0.0),  # already there before training
        ([(0, 0.5), (1, 0.89), (2, 0.7)], 0.9, None),  # censored: never reached
        ([(0, 0.5), (1, 0.9)], 0.9, 1.0),  # exactly on target counts
        ([(0, 0.5), (1, 0.95), (2, 0.5), (3, 0.99)], 0.9, 0.4 / 0.45),  # the first crossing, not the last
    ],
)
def test_crossing_epoch_interpolates_first_crossing(points, target, expected):
    got = crossing_epoch(points, target)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_warmup_linear_schedule_shape():
    factor = lr_multiplier(TrainConfig(schedule="warmup-linear", warmup_steps=4), total_steps=12)
    values = [factor(s) for s in range(12)]
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(1 / 8)
    assert all(a >= b for a, b in zip(values[3:], values[4:]))


@pytest.mark.parametrize("bad", [{"max_epochs": 0}, {"target": 1.0}, {"target": 0.0}, {"grad_clip": -1.0},
                                 {"schedule": "cosine"}, {"evals_per_epoch": 0}, {"evals_after_target": 0}])
def test_train_config_rejects_bad_values(bad):
    with pytest.raises(BadInput):
        TrainConfig(**bad)


def _run(seed=0, **cfg):
    task = build_task("textcls", seed, TINY)
    config = TrainConfig(**{"max_epochs": 2, "evals_per_epoch": 4, "seed": seed, **cfg})
    return train(task, lambda m: torch.optim.Adam(m.parameters(), lr=1e-2), config)


def test_loop_records_evals_and_epochs():
    result = _run()
    assert len(result.evals) == 8  # 4 per epoch, 2 epochs
    assert [e.epoch for e in result.epochs] == [1, 2]
    assert result.evals[-1].epoch == pytest.approx(2.0)
    assert result.steps == 2 * 8  # 256 examples / batch 32
    assert all(e.train_time_s > 0 for e in result.epochs)
    assert result.final_metrics == result.evals[-1].metrics
    assert 0.0 <= result.final_metrics["val_accuracy"] <= 1.0


def test_same_seed_same_numbers_other_seed_differs():
    a, b, c = _run(0), _run(0), _run(1)
    assert [p.metrics for p in a.evals] == [p.metrics for p in b.evals]
    assert [e.train_loss for e in a.epochs] == [e.train_loss for e in b.epochs]
    assert [e.train_loss for e in a.epochs] != [e.train_loss for e in c.epochs]


def test_grad_clip_changes_the_trajectory():
    plain, clipped = _run(0), _run(0, grad_clip=1e-3)
    assert [e.train_loss for e in plain.epochs][-1] != [e.train_loss for e in clipped.epochs][-1]


def test_run_result_round_trips_through_dict():
    result = _run()
    again = RunResult.from_dict(result.to_dict())
    assert again.to_dict() == result.to_dict()


@pytest.mark.parametrize("after", [1, 2])
def test_evaluations_thin_out_once_the_target_is_reached(after):
    """Dense until the first evaluation at or above the target, then ``after`` per
    epoch (its end among them); every trained number and epochs-to-target equal the
    dense run's."""
    sparse, dense = (_run(max_epochs=4, target=0.6, evals_after_target=n) for n in (after, 4))
    reached = next(p.epoch for p in dense.evals if p.metrics["val_accuracy"] >= 0.6)
    assert reached < 3, "the tiny run should reach 60% early"
    assert sparse.epochs_to_target == dense.epochs_to_target is not None
    assert [(e.train_loss, e.metrics) for e in sparse.epochs] == [(e.train_loss, e.metrics) for e in dense.epochs]
    before = [p.epoch for p in dense.evals if p.epoch <= reached]
    later = [p.epoch for p in sparse.evals if p.epoch > reached]
    assert [p.epoch for p in sparse.evals if p.epoch <= reached] == before
    grid = {e + k / after for e in range(4) for k in range(1, after + 1)}
    assert later and all(any(abs(x - g) < 1e-9 for g in grid) for x in later)
    assert {int(e) for e in later if e == int(e)} >= set(range(int(reached) + 1, 5))  # every epoch ends on one


def test_seeds_curves_meet_on_one_grid():
    """Seeds that reached the target at different times carry different epochs; the
    plots interpolate each onto their union (within the span all cover)."""
    from superpos_cli.experiments.plots import on_common_grid

    x, y = on_common_grid([[(0, 0.5), (0.5, 0.7), (1, 0.9), (2, 0.95)], [(0, 0.4), (1, 0.8), (1.5, 0.9), (2, 1.0)]])
    assert x.tolist() == [0, 0.5, 1, 1.5, 2]
    assert y.ravel().tolist() == pytest.approx([0.5, 0.7, 0.9, 0.925, 0.95, 0.4, 0.6, 0.8, 0.9, 1.0])
