"""Task ``gsm8k``: causal-LM fine-tuning on grade-school math, the paper's second experiment.

Data. GSM8K-format JSONL, one ``{"question": str, "answer": str}`` a line, the
answer ending in ``#### <number>``: a user's file (``data_path``), or, without
one, superpos's own seeded generator of GSM8K-style multi-step arithmetic
problems (:mod:`superpos_cli.tasks.gsm8k_generator`; ``n_generated`` of them).
``limit`` keeps the first N examples; a held-out split of ``val_fraction``
(at least one example) is carved with ``seed``. Malformed lines raise BadInput
naming the line, or with ``skip_bad`` are skipped and counted (``describe()``).

Prompt and loss. Each example is the token sequence

    [BOS] encode("Question: {question}\\nAnswer: ") encode(answer) [EOS]

(BOS only where the tokenizer has one). The loss is next-token cross-entropy,
averaged over the answer tokens and EOS (``loss_on="answer"``, default) or over
every token after BOS (``loss_on="all"``). Examples longer than ``context`` are
cut to their first ``context`` tokens and counted; one left with no loss token
is dropped and counted. Held-out ``val_loss`` always uses answer tokens.

Models. The built-in :class:`~superpos_cli.models.gpt.GPT` over bytes (the
default), or a local Hugging Face checkpoint (``hf_model_path``, e.g.
Llama-3.2-1B-Instruct as in the paper) with optional LoRA (``lora_rank``).

Metrics. ``val_loss`` at every evaluation (the first ``val_loss_examples``
held-out problems); once after training, ``val_accuracy``: exact match of the
number after ``####`` in a greedy continuation of the first ``eval_examples``
held-out prompts, at most ``max_new_tokens`` new tokens (256: every generated
answer fits in bytes, at most 216; real GSM8K answers fit as subword tokens
about 95% of the time, as bytes only about half the time). No accuracy target:
``target_metric`` is None. The paper's metric is the mean training loss over
the epoch (``RunResult.mean_train_loss``); it reports no accuracy.

The paper's protocol (paper-spec §4), which spec/options.py's TASK_PROTOCOL
encodes: one epoch, batch 1 (``grad_accum`` batches per optimizer
step, default 1: the paper gives none), AdamW lr 2e-5, weight decay 0.01,
500 warmup steps then linear decay to 0, gradient clipping 1.0, context 2048.
superpos departures, ours: the warmup is capped at 10% of the run's optimizer
steps, so a small run (``limit``) is not all warmup; weights are float32, and on
a CUDA ``device`` the forward runs under bf16 autocast (the paper says fp16;
bf16 needs no loss scaling, which the loop does not do). On CPU: plain fp32.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from superpos_cli.errors import BadInput
from superpos_cli.models.config import AttentionConfig
from superpos_cli.tasks.device import resolve_device
from superpos_cli.models.gpt import GPT, ByteTokenizer, GPTConfig
from superpos_cli.tasks.datafiles import extract_answer, read_gsm8k_jsonl
from superpos_cli.tasks.gsm8k_generator import generate_problems

PROMPT_TEMPLATE = "Question: {question}\nAnswer: "
LOSS_ON = ("answer", "all")
DECODE_BATCH = 4  # prompts decoded together; larger batches pad to the longest row and gain nothing on CPU



@dataclass(frozen=True)
class GSM8KConfig:
    """Data, model and evaluation of the gsm8k task (module docstring)."""

    data_path: str | None = None
    n_generated: int = 1000  # generated problems when data_path is None (before limit)
    limit: int | None = None
    seed: int = 0
    val_fraction: float = 0.1
    loss_on: str = "answer"
    skip_bad: bool = False
    context: int = 2048
    batch_size: int = 1
    model: GPTConfig = field(default_factory=GPTConfig)  # built-in model; its context is set to ``context``
    hf_model_path: str | None = None
    lora_rank: int = 0
    val_loss_examples: int = 50  # held-out problems scored by val_loss
    eval_examples: int = 20  # held-out problems decoded for val_accuracy
    max_new_tokens: int = 256
    device: str | None = None  # None: cuda when available, else cpu (tasks/device.py)

    def __post_init__(self) -> None:
        if self.loss_on not in LOSS_ON:
            raise BadInput(f"loss-on {self.loss_on!r} is not one of {', '.join(LOSS_ON)}")
        if self.limit is not None and self.limit < 2:
            raise BadInput(f"limit must be >= 2 (one training and one held-out example), got {self.limit}")
        if self.n_generated < 2:
            raise BadInput(f"n_generated must be >= 2, got {self.n_generated}")
        if not 0.0 < self.val_fraction < 1.0:
            raise BadInput(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("context", "batch_size", "val_loss_examples", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise BadInput(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_examples < 0:
            raise BadInput(f"eval_examples must be >= 0, got {self.eval_examples}")
        if self.lora_rank < 0:
            raise BadInput(f"lora-rank must be >= 0, got {self.lora_rank}")
        if self.lora_rank and not self.hf_model_path:
            raise BadInput("--lora-rank needs --model PATH (LoRA adapts a Hugging Face checkpoint)")
        resolve_device(self.device, prefer_cuda=True)


@dataclass
class Encoded:
    """One tokenized example: ids (T,) and loss mask (T,), True where ids[t] is a target."""

    ids: torch.Tensor
    mask: torch.Tensor
    truncated: bool


def encode_example(tokenizer, question: str, answer: str, loss_on: str, context: int) -> Encoded:
    """[BOS] prompt answer [EOS], cut to ``context`` tokens; the mask marks the answer
    tokens and EOS (``"answer"``) or every token after the first (``"all"``)."""
    head = ([tokenizer.bos_id] if tokenizer.bos_id is not None else []) + tokenizer.encode(
        PROMPT_TEMPLATE.format(question=question)
    )
    tail = tokenizer.encode(answer) + [tokenizer.eos_id]
    ids = torch.tensor(head + tail, dtype=torch.long)  # (T,)
    mask = torch.zeros(len(ids), dtype=torch.bool)  # (T,)
    mask[len(head) if loss_on == "answer" else 1 :] = True
    truncated = len(ids) > context
    return Encoded(ids[:context], mask[:context], truncated)


def _pad(examples: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and mask (B, T), padding never a target."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros(len(examples), width, dtype=torch.bool)  # (B, T)
    for row, e in enumerate(examples):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = e.mask
    return ids, mask


@torch.no_grad()
def greedy_decode(
    model: nn.Module, prompts: list[list[int]], max_new_tokens: int, eos_id: int, pad_id: int, context: int
) -> list[list[int]]:
    """Greedy continuations of several prompts at once, each stopping after ``eos_id``,
    ``max_new_tokens`` or at ``context`` tokens: the new ids of each.

    All rows sit right-padded in one (B, T) tensor, and every step reads each row's
    logits at its own last position: causal attention keeps the pads to its right
    from mattering, so any model mapping ids (B, T) -> logits (B, T, V) works, with
    no KV cache and no position ids.
    """
    device = next(model.parameters()).device
    prompts = [p[-(context - 1) :] for p in prompts]  # leave room for at least one new token
    lengths = torch.tensor([len(p) for p in prompts], device=device)  # (B,)
    width = min(context, int(lengths.max()) + max_new_tokens)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)  # (B, W)
    for row, p in enumerate(prompts):
        ids[row, : len(p)] = torch.tensor(p, dtype=torch.long)
    rows = torch.arange(len(prompts), device=device)  # (B,)
    active = torch.ones(len(prompts), dtype=torch.bool, device=device)  # (B,)
    new: list[list[int]] = [[] for _ in prompts]
    for _ in range(max_new_tokens):
        live = active & lengths.lt(width)  # (B,)
        if not live.any():
            break
        read = ids[:, : int(lengths[live].max())]  # (B, T); finished rows may be cut short
        logits = model(read)  # (B, T, V)
        nxt = logits[rows, (lengths - 1).clamp_max(read.shape[1] - 1)].argmax(-1)  # (B,), next tokens
        for row in live.nonzero().flatten().tolist():
            token = int(nxt[row])
            new[row].append(token)
            ids[row, lengths[row]] = token
            active[row] = token != eos_id
        lengths = lengths + live.long()
    return new


class GSM8KTask:
    """Fine-tuning a causal LM on GSM8K-format problems (module docstring)."""

    name = "gsm8k"
    target_metric = None

    def __init__(self, cfg: GSM8KConfig):
        self.cfg = cfg
        self.device = resolve_device(cfg.device, prefer_cuda=True)
        if cfg.hf_model_path:
            from superpos_cli.models.hf import HFTokenizer

            self.tokenizer = HFTokenizer(cfg.hf_model_path)
        else:
            self.tokenizer = ByteTokenizer()
        if cfg.data_path:
            problems, self.bad_lines = read_gsm8k_jsonl(cfg.data_path, cfg.limit, cfg.skip_bad)
        else:
            problems, self.bad_lines = generate_problems(cfg.limit or cfg.n_generated, cfg.seed), 0
        if len(problems) < 2:
            raise BadInput(f"gsm8k needs at least 2 examples (train + held-out), got {len(problems)}")
        random.Random(cfg.seed).shuffle(problems)
        n_val = min(len(problems) - 1, max(1, round(len(problems) * cfg.val_fraction)))
        self.val_problems, train_problems = problems[:n_val], problems[n_val:]

        def encode(problem: dict[str, str], loss_on: str) -> Encoded:
            return encode_example(self.tokenizer, problem["question"], problem["answer"], loss_on, cfg.context)

        train = [encode(p, cfg.loss_on) for p in train_problems]
        val = [encode(p, "answer") for p in self.val_problems[: cfg.val_loss_examples]]
        self.truncated = sum(e.truncated for e in train + val)
        self.train = [e for e in train if e.mask.any()]
        self.val = [e for e in val if e.mask.any()]
        self.dropped = len(train) + len(val) - len(self.train) - len(self.val)
        if not self.train or not self.val:
            raise BadInput(f"context {cfg.context} leaves no answer token to learn from; raise --context")

    def build_model(self) -> nn.Module:
        if self.cfg.hf_model_path:
            from superpos_cli.models.hf import load_causal_lm

            model = load_causal_lm(self.cfg.hf_model_path, self.cfg.lora_rank)
        else:
            model = GPT(replace(self.cfg.model, context=self.cfg.context), self.tokenizer.vocab_size)
        return model.to(self.device)

    def steps_per_epoch(self, world: int = 1) -> int:
        """Batches per epoch (optimizer steps when grad_accum is 1), on each of
        ``world`` data-parallel ranks."""
        return math.ceil(len(self.train) / (self.cfg.batch_size * world))

    def batches(self, generator: torch.Generator, rank: int = 0,
                world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of padded (ids, mask) batches; with ``world`` ranks, rank
        ``rank``'s shard of each global batch of ``batch_size * world`` examples
        (engine/distributed.py). A rank the last global batch leaves without an
        example gets one with no loss token, so it still steps with the others."""
        order = torch.randperm(len(self.train), generator=generator).tolist()
        size = self.cfg.batch_size * world
        for start in range(0, len(order), size):
            shard = order[start : start + size][rank::world]
            ids, mask = _pad([self.train[i] for i in shard or order[start : start + 1]], self.tokenizer.pad_id)
            yield ids, mask if shard else torch.zeros_like(mask)

    def batch_tokens(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        """Loss tokens in ``batch`` (the tokens/s the loop reports)."""
        return int(batch[1].sum())

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def _token_losses(self, model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every loss token: (N,), N = targets in the batch."""
        ids, mask = ids.to(self.device), mask.to(self.device)
        with self._autocast():
            logits = model(ids)  # (B, T, V)
        targets = mask[:, 1:]  # (B, T-1): position t predicts token t+1
        return F.cross_entropy(logits[:, :-1][targets].float(), ids[:, 1:][targets], reduction="none")  # (N,)

    def training_loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        losses = self._token_losses(model, *batch)
        return losses.mean() if len(losses) else losses.sum()  # no loss token (an empty shard): 0, zero gradients

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        total, count = 0.0, 0
        for start in range(0, len(self.val), 16):
            losses = self._token_losses(model, *_pad(self.val[start : start + 16], self.tokenizer.pad_id))
            total += float(losses.sum())
            count += len(losses)
        return {"val_loss": total / count}

    @torch.no_grad()
    def final_metrics(self, model: nn.Module) -> dict[str, float]:
        """``val_accuracy``: exact match of the greedy answer's final number (module docstring)."""
        problems = self.val_problems[: self.cfg.eval_examples]
        if not problems:
            return {}
        tok = self.tokenizer
        bos = [tok.bos_id] if tok.bos_id is not None else []
        prompts = [bos + tok.encode(PROMPT_TEMPLATE.format(question=p["question"])) for p in problems]
        outputs: list[list[int]] = []
        for start in range(0, len(prompts), DECODE_BATCH):
            with self._autocast():
                outputs += greedy_decode(model, prompts[start : start + DECODE_BATCH], self.cfg.max_new_tokens,
                                         tok.eos_id, tok.pad_id, self.cfg.context)
        correct = 0
        for problem, new in zip(problems, outputs):
            guess = extract_answer(tok.decode(new))
            correct += guess is not None and guess == extract_answer(problem["answer"])
        return {"val_accuracy": correct / len(problems)}

    def describe(self) -> dict[str, Any]:
        info = asdict(self.cfg)
        info.update(
            task=self.name,
            device=str(self.device),
            source=self.cfg.data_path or "generated",
            tokenizer=self.tokenizer.describe(),
            prompt_template=PROMPT_TEMPLATE,
            train_examples=len(self.train),
            val_examples=len(self.val_problems),
            val_loss_examples=len(self.val),
            bad_lines_skipped=self.bad_lines,
            truncated_examples=self.truncated,
            dropped_examples=self.dropped,
        )
        return info


def gsm8k_config(seed: int = 0, **options: Any) -> GSM8KConfig:
    """The task from flat options, as the CLI's ``task_options`` gives them: any
    :class:`GSM8KConfig` field (``data_path``, ``limit``, ``hf_model_path``,
    ``lora_rank``, ``loss_on``, ``skip_bad``, ``context``, ``device`` ...), and for
    the built-in model any :class:`GPTConfig` field (``n_layers``, ``d_model`` ...)
    or :class:`AttentionConfig` field (``kind``, ``n_qubits``, ``depth``,
    ``backend``, ``phi_input``, ``per_head`` ...). ``grad_accum`` is not a task
    option: it is part of the training protocol (spec/options.py TASK_PROTOCOL)."""
    gpt_names = {f.name for f in fields(GPTConfig)} - {"attention", "context"}
    attention_names = {f.name for f in fields(AttentionConfig)}
    task_names = {f.name for f in fields(GSM8KConfig)} - {"seed", "model"}
    allowed = task_names | gpt_names | attention_names
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise BadInput(f"gsm8k: unknown option {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    model_opts = sorted(set(options) & (gpt_names | attention_names))
    if model_opts and options.get("hf_model_path"):
        raise BadInput(f"gsm8k: {model_opts[0]!r} applies to the built-in model only, not to a --model checkpoint")
    pick = lambda names: {k: v for k, v in options.items() if k in names}  # noqa: E731
    try:
        attention = AttentionConfig(**{"kind": "classical", **pick(attention_names)})
        gpt = GPTConfig(attention=attention, **pick(gpt_names))
        return GSM8KConfig(seed=seed, model=gpt, **pick(task_names))
    except TypeError as err:  # a value of the wrong type met a comparison in validation
        raise BadInput(f"gsm8k: {err}") from None


def build_gsm8k_task(seed: int = 0, **options: Any) -> GSM8KTask:
    """The task of :func:`gsm8k_config`'s configuration (reads or generates its data)."""
    return GSM8KTask(gsm8k_config(seed, **options))
