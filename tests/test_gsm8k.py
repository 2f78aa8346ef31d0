"""The gsm8k task: generator, loader, masking, truncation, metrics, and the loop hooks it uses."""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from superpos_cli.engine.loop import RunResult, TrainConfig, train
from superpos_cli.errors import BadInput
from superpos_cli.models.gpt import ByteTokenizer
from superpos_cli.tasks.gsm8k import (
    GSM8KConfig,
    GSM8KTask,
    build_gsm8k_task,
    encode_example,
    extract_answer,
    greedy_decode,
    read_gsm8k_jsonl as read_jsonl,
)
from superpos_cli.tasks.gsm8k_generator import generate_problems

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def paper_train_config(seed, **values):
    """The gsm8k protocol (spec/options.py TASK_PROTOCOL) with ``values`` on top."""
    from superpos_cli.experiments.plan import train_config
    from superpos_cli.spec.run import settings

    return train_config(settings({"task": "gsm8k", **values}), seed)


def arithmetic(expr: str) -> float:
    """Evaluate + - * / over numbers, nothing else."""

    def walk(node):
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            return OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        raise ValueError(f"not arithmetic: {expr}")

    return walk(ast.parse(expr, mode="eval").body)


def small_cfg(**kw) -> GSM8KConfig:
    base = dict(limit=24, eval_examples=2, max_new_tokens=4, val_loss_examples=4)
    base.update(kw)
    return GSM8KConfig(**base)


def write_jsonl(path: Path, rows: list) -> str:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return str(path)


# --- generator ---------------------------------------------------------------------------


def test_generator_is_seeded():
    assert generate_problems(30, 1) == generate_problems(30, 1)
    assert generate_problems(30, 1) != generate_problems(30, 2)


def test_generated_answers_are_correct_arithmetic():
    for problem in generate_problems(400, 7):
        calcs = re.findall(r"<<([^=>]+)=([^>]+)>>([\d.]+)", problem["answer"])
        assert len(calcs) >= 2, problem
        for expr, value, shown in calcs:
            assert arithmetic(expr) == float(value) == float(shown), (expr, value)
        last_line = problem["answer"].splitlines()[-1]
        assert re.fullmatch(r"#### \d+", last_line)
        assert extract_answer(problem["answer"]) == float(calcs[-1][1])
        assert "<<" not in problem["question"]


# --- answers and loading ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [("so\n#### 1,234", 1234.0), ("#### -7", -7.0), ("#### 0.25", 0.25), ("#### $12", 12.0),
     ("#### 3.5 apples", 3.5), ("no marker 42", None), ("####", None), ("#### 5\n#### 6", 5.0)],
)
def test_extract_answer(text, value):
    assert extract_answer(text) == value


def test_loader_reads_a_temp_file_and_limit(tmp_path):
    rows = [{"question": f"q{i}?", "answer": f"{i}+1=<<{i}+1={i + 1}>>{i + 1}\n#### {i + 1}"} for i in range(10)]
    problems, bad = read_jsonl(write_jsonl(tmp_path / "d.jsonl", rows), limit=4, skip_bad=False)
    assert bad == 0 and problems == rows[:4]


@pytest.mark.skipif(not REAL.is_file(), reason="the shared GSM8K copy is not present")
def test_loader_reads_the_real_format():
    problems, bad = read_jsonl(str(REAL), limit=50, skip_bad=False)
    assert len(problems) == 50 and bad == 0
    assert all(extract_answer(p["answer"]) is not None for p in problems)
    task = GSM8KTask(small_cfg(data_path=str(REAL), limit=50))
    assert task.describe()["source"] == str(REAL) and task.describe()["val_examples"] == 5


@pytest.mark.parametrize(
    "line, why",
    [("{not json", "not valid JSON"), ('{"question": "q"}', "question"), ('{"question": "q", "answer": "5"}', "####")],
)
def test_malformed_line_names_the_line(tmp_path, line, why):
    good = {"question": "q?", "answer": "#### 1"}
    path = write_jsonl(tmp_path / "d.jsonl", [good, good, line, good])
    with pytest.raises(BadInput, match=rf"line 3 .*{re.escape(why)}"):
        read_jsonl(path, limit=None, skip_bad=False)


def test_skip_bad_counts(tmp_path):
    good = {"question": "Two plus two?", "answer": "2+2=<<2+2=4>>4\n#### 4"}
    path = write_jsonl(tmp_path / "d.jsonl", [good, "oops", good, "", '{"question": 1}', good, good])
    task = GSM8KTask(small_cfg(data_path=path, skip_bad=True))
    info = task.describe()
    assert info["bad_lines_skipped"] == 2 and info["train_examples"] + info["val_examples"] == 4


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        GSM8KTask(small_cfg(data_path=str(tmp_path / "nope.jsonl")))
    with pytest.raises(BadInput, match="loss-on"):
        GSM8KConfig(loss_on="prompt")
    with pytest.raises(BadInput, match="--model"):
        build_gsm8k_task(lora_rank=4)
    with pytest.raises(BadInput, match="unknown option 'lr'"):
        build_gsm8k_task(lr=0.1)
    with pytest.raises(BadInput, match="built-in model only"):
        build_gsm8k_task(hf_model_path=str(tmp_path), kind="quantum")


def test_build_from_flat_cli_options():
    task = build_gsm8k_task(seed=5, limit=10, kind="quantum", n_qubits=2, d_model=32, loss_on="all")
    assert task.cfg.seed == 5 and task.cfg.loss_on == "all" and task.cfg.model.d_model == 32
    assert task.cfg.model.attention.kind == "quantum" and task.cfg.model.attention.n_qubits == 2
    assert build_gsm8k_task(limit=10).cfg.model.attention.kind == "classical"


# --- encoding -------------------------------------------------------------------------------


def test_answer_mask_covers_exactly_the_answer_tokens():
    tok = ByteTokenizer()
    question, answer = "How many?", "3+4=<<3+4=7>>7\n#### 7"
    enc = encode_example(tok, question, answer, "answer", 2048)
    assert enc.ids[0] == tok.bos_id and not enc.truncated
    assert enc.ids[enc.mask].tolist() == tok.encode(answer) + [tok.eos_id]
    assert tok.decode(enc.ids[~enc.mask].tolist()) == f"Question: {question}\nAnswer: "
    every = encode_example(tok, question, answer, "all", 2048)
    assert every.mask.tolist() == [False] + [True] * (len(every.ids) - 1)


def test_truncation_is_counted():
    full = GSM8KTask(small_cfg())
    lengths = sorted(len(e.ids) for e in full.train + full.val)
    context = lengths[len(lengths) // 2]
    task = GSM8KTask(small_cfg(context=context))
    assert all(len(e.ids) <= context for e in task.train + task.val)
    assert task.describe()["truncated_examples"] == sum(n > context for n in lengths) > 0
    with pytest.raises(BadInput, match="context"):
        GSM8KTask(small_cfg(context=8))  # even the prompt does not fit: no answer token left


def test_split_is_seeded_and_batches_count_loss_tokens():
    a, b = GSM8KTask(small_cfg(seed=3)), GSM8KTask(small_cfg(seed=3))
    assert a.val_problems == b.val_problems and len(a.val_problems) == 2  # round(24 * 0.1)
    ids, mask = next(a.batches(torch.Generator().manual_seed(0)))
    assert ids.shape == mask.shape and ids.shape[0] == 1
    assert a.batch_tokens((ids, mask)) == int(mask.sum()) > 0


# --- decoding -------------------------------------------------------------------------------


class Counter(nn.Module):
    """A fake LM that always predicts (last token + 1) mod V: decoding is known exactly."""

    def __init__(self, vocab: int = 10):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, ids):
        return nn.functional.one_hot((ids + 1) % self.vocab, self.vocab).float()  # (B, T, V)


def test_greedy_decode_batches_rows_of_different_lengths():
    out = greedy_decode(Counter(), [[1], [5, 6], [2, 3, 4]], max_new_tokens=4, eos_id=9, pad_id=0, context=64)
    assert out == [[2, 3, 4, 5], [7, 8, 9], [5, 6, 7, 8]]  # row 2 stops after EOS
    assert greedy_decode(Counter(), [[1, 2, 3]], 10, eos_id=99, pad_id=0, context=5) == [[4, 5]]


# --- training through the loop ----------------------------------------------------------------


def adamw(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)


def test_train_runs_with_final_metrics_tokens_and_grad_accum():
    task = GSM8KTask(small_cfg(limit=12))  # 11 training examples
    cfg = paper_train_config(0, grad_accum=3, evals_per_epoch=2)
    assert cfg.effective_warmup(4) == 1 and cfg.max_epochs == 1 and cfg.grad_clip == 1.0
    events = []
    result = train(task, adamw, cfg, progress=lambda e, info: events.append((e, info)))
    assert result.steps == 4  # ceil(11 / 3): the trailing group of two steps too
    assert math.isfinite(result.mean_train_loss)
    assert set(result.final_metrics) == {"val_loss", "val_accuracy"}
    assert "val_accuracy" not in result.evals[-1].metrics  # decoding runs once, at the end
    assert events[-1][0] == "epoch" and "val_accuracy" in events[-1][1]["metrics"]
    assert result.train_tokens == sum(int(e.mask.sum()) for e in task.train)
    assert result.tokens_per_s > 0
    again = RunResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.train_tokens == result.train_tokens and again.train_time_s == result.train_time_s


def test_paper_train_config_caps_warmup():
    cfg = paper_train_config(1)
    assert cfg.effective_warmup(180) == 18  # 10% of a 180-step run
    assert cfg.effective_warmup(45) == 5
    assert cfg.effective_warmup(40 * 180) == 500 and 0 < cfg.target < 1
    with pytest.raises(BadInput, match="grad_accum must be an integer >= 1"):
        paper_train_config(1, grad_accum=0)


class Regression:
    """A loop-only task: linear regression, one sample per batch, fixed order."""

    name, target_metric = "reg", None

    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g)
        self.batch = 1

    def build_model(self):
        return nn.Linear(3, 1)

    def steps_per_epoch(self):
        return math.ceil(len(self.x) / self.batch)

    def batches(self, generator):
        for s in range(0, len(self.x), self.batch):
            yield self.x[s : s + self.batch], self.y[s : s + self.batch]

    def training_loss(self, model, batch):
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    @torch.no_grad()
    def evaluate(self, model):
        return {"val_loss": float(nn.functional.mse_loss(model(self.x), self.y))}

    def describe(self):
        return {}


def test_grad_accum_equals_a_bigger_batch():
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)  # noqa: E731
    accumulated = Regression(6)
    big = Regression(6)
    big.batch = 3
    a = train(accumulated, sgd, TrainConfig(max_epochs=2, evals_per_epoch=2, grad_accum=3))
    b = train(big, sgd, TrainConfig(max_epochs=2, evals_per_epoch=2))
    assert a.steps == b.steps == 4
    assert a.final_metrics["val_loss"] == pytest.approx(b.final_metrics["val_loss"], rel=1e-6)
    assert [p.epoch for p in a.evals] == [p.epoch for p in b.evals] == [0.5, 1.0, 1.5, 2.0]
