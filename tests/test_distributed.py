"""Data-parallel training (engine/distributed.py): two CPU processes over gloo
train the same numbers as one process with the same global batch."""

from __future__ import annotations

import json
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from superpos_cli.engine import distributed
from superpos_cli.engine.loop import TrainConfig, train
from superpos_cli.errors import BadInput
from superpos_cli.optim.presets import build_optimizer
from superpos_cli.spec.arms import parse_arm
from superpos_cli.tasks import build_task

# limit 15: 2 held out, 13 to train; 2 per rank x 2 ranks = global batches of 4,
# the last holding one example, so rank 1 meets an empty shard once per epoch.
OPTIONS = {"limit": 15, "n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "context": 256,
           "eval_examples": 0, "val_loss_examples": 2}
PER_RANK = 2
ARM = "sgd:lr=0.003,lambda=0.5"  # perturbed: the optimizer's generator must agree across ranks
CFG = TrainConfig(max_epochs=2, evals_per_epoch=2, grad_clip=1.0, seed=3)


def _train(batch_size: int) -> dict:
    arm = parse_arm(ARM)
    task = build_task("gsm8k", CFG.seed, {**OPTIONS, "batch_size": batch_size})
    return train(task, lambda model: build_optimizer(arm, model, seed=CFG.seed), CFG).to_dict()


def _numbers(result: dict) -> dict:
    return {
        "train_losses": [e["train_loss"] for e in result["evals"]] + [e["train_loss"] for e in result["epochs"]],
        "val_losses": [e["metrics"]["val_loss"] for e in result["evals"]],
        "steps": result["steps"],
        "train_tokens": result["train_tokens"],
    }


def _rank_main(rank: int, world: int, port: int, out: str) -> None:
    """One torchrun-like rank: torchrun's variables, then the ordinary loop."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ddp = distributed.init_from_env()
    assert ddp == distributed.Distributed(rank, world, rank)
    result = _train(PER_RANK)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_train_the_single_process_numbers(tmp_path):
    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    alone = _numbers(_train(2 * PER_RANK))
    assert alone["steps"] == 2 * math.ceil(13 / 4)
    # Both ranks report the same run (identical parameters: identical held-out losses) ...
    assert _numbers(ranks[0]) == _numbers(ranks[1])
    # ... and it is the single process's, to float tolerance (sums split over ranks round differently).
    got = _numbers(ranks[0])
    assert (got["steps"], got["train_tokens"]) == (alone["steps"], alone["train_tokens"])
    for key in ("train_losses", "val_losses"):
        assert got[key] == pytest.approx(alone[key], rel=1e-5, abs=1e-6), key
    assert alone["val_losses"][-1] < alone["val_losses"][0] - 0.05  # it trained: the comparison has teeth


def _rows(ids: torch.Tensor, mask: torch.Tensor) -> list[tuple[int, ...]]:
    """The examples of a padded batch with a loss token, padding stripped."""
    return [tuple(row[: int(m.nonzero().max()) + 1].tolist()) for row, m in zip(ids, mask) if m.any()]


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_see_disjoint_shards_that_make_up_the_global_batch(world):
    task = build_task("gsm8k", 0, {**OPTIONS, "batch_size": PER_RANK})
    alone = build_task("gsm8k", 0, {**OPTIONS, "batch_size": PER_RANK * world})
    assert task.steps_per_epoch(world=world) == alone.steps_per_epoch() == math.ceil(13 / (PER_RANK * world))
    shards = [list(task.batches(torch.Generator().manual_seed(7), rank=r, world=world)) for r in range(world)]
    whole = list(alone.batches(torch.Generator().manual_seed(7)))
    assert all(len(s) == len(whole) for s in shards)  # every rank steps every global batch
    for step, batch in enumerate(whole):
        parts = [_rows(*s[step]) for s in shards]
        assert sorted(sum(parts, [])) == sorted(_rows(*batch))  # together: the global batch, once each
    seen = [row for s in shards for b in s for row in _rows(*b)]
    assert len(seen) == len(set(seen)) == 13  # disjoint, and the epoch covered


def test_alone_the_helpers_are_the_identity():
    assert distributed.current() is None and distributed.init_from_env() is None
    loss = torch.tensor(2.5, requires_grad=True)
    assert distributed.share_loss(loss, 7, None) == (loss, 2.5, 7)


def test_a_task_that_cannot_shard_is_bad_input():
    task = build_task("textcls", 0, {"n_train": 8, "n_val": 8})
    with pytest.raises(BadInput, match="cannot train on several processes"):
        distributed.steps_per_epoch(task, distributed.Distributed(0, 2, 0))
