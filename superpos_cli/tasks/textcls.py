"""Task ``textcls``: sequence classification, the paper's first experiment.

The paper never describes its dataset, so superpos defines its own, seeded and
documented ("synthetic sentiment with negation"):

* Each example is a sentence of ``min_words``..``max_words`` (8..16) words:
  filler words ``w0``..``w{n_fillers-1}`` (10 of them) with 1, 3 or 5 cue words
  spliced in at random positions.
* Cue words carry a polarity: 8 positive (``good``, ``great``, ...) and 8
  negative (``bad``, ``poor``, ...). With probability ``negation_rate`` (0 by
  default; raise it for a harder task) a cue is preceded by ``not``, which flips
  its polarity.
* The label is 1 when the summed polarity is positive (an odd number of cues
  means it is never zero), 0 otherwise; then a fraction ``label_noise`` (3%) of
  labels is flipped at random, in training and validation alike, so no model
  can score much above ``1 - label_noise`` on validation.
* 600 training and 400 validation examples: few enough that an epoch is 19
  steps of batch 32, so Adam needs several epochs to count cues reliably, and
  the model overfits the noisy labels a little once it has, as in the paper's
  curves.

Calibration (README): Adam with the paper's model reaches 90% validation
accuracy in about 4-6 epochs (median over seeds) and ends at 90-93%. The
dataset is drawn from the run's seed, so paired arms see the same data.

With ``data_path`` the same model trains on a user's JSONL
(``{"text": str, "label": int|str}``) or CSV (``text,label`` columns) file; a
validation split is carved out with the seed and the vocabulary is built from
the training split only: its ``max_vocab`` (20,000) most frequent words, ties
alphabetical; every other word becomes ``<unk>``, counted per split in
``describe()["unknown_tokens"]`` (train shows it; records keep it).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from superpos_cli.errors import BadInput
from superpos_cli.models.config import ModelConfig
from superpos_cli.models.transformer import TransformerClassifier
from superpos_cli.tasks.datafiles import label_order, read_textcls_rows
from superpos_cli.tasks.device import resolve_device
from superpos_cli.tasks.tokenizer import WordTokenizer

POSITIVE = ("good", "great", "fine", "nice", "superb", "happy", "love", "best")
NEGATIVE = ("bad", "poor", "awful", "sad", "worst", "hate", "ugly", "boring")
NEGATOR = "not"


@dataclass(frozen=True)
class TextClsConfig:
    """Data of the textcls task. ``seed`` draws the data (synthetic) or the split (file)."""

    n_train: int = 600
    n_val: int = 400
    min_words: int = 8
    max_words: int = 16
    n_fillers: int = 10
    negation_rate: float = 0.0
    label_noise: float = 0.03
    batch_size: int = 32
    data_path: str | None = None
    val_fraction: float = 0.2
    max_len: int = 64
    seed: int = 0
    device: str | None = None  # None: cpu (tasks/device.py)
    # Vocabulary cap (with <pad> and <unk>): a 10k-sentence corpus has ~20k distinct
    # words, most seen once; their embeddings would be most of the model and untrained.
    max_vocab: int = 20000
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_val < 1:
            raise BadInput(f"n_train and n_val must be >= 1, got {self.n_train}, {self.n_val}")
        if not 1 <= self.min_words <= self.max_words:
            raise BadInput(f"need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}")
        if not 0.0 <= self.label_noise < 0.5:
            raise BadInput(f"label_noise must be in [0, 0.5), got {self.label_noise}")
        if not 0.0 < self.val_fraction < 1.0:
            raise BadInput(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.batch_size < 1:
            raise BadInput(f"batch size must be >= 1, got {self.batch_size}")
        if self.max_vocab < 3:
            raise BadInput(f"max_vocab must be >= 3 (<pad>, <unk> and a word), got {self.max_vocab}")
        resolve_device(self.device, prefer_cuda=False)


def synthetic_examples(cfg: TextClsConfig, n: int, rng: random.Random) -> list[tuple[str, int]]:
    """``n`` (text, label) pairs of the documented synthetic sentiment language."""
    examples = []
    for _ in range(n):
        # Segments, so a later cue is never spliced between "not" and its cue word.
        segments = [[f"w{rng.randrange(cfg.n_fillers)}"] for _ in range(rng.randint(cfg.min_words, cfg.max_words))]
        score = 0
        for _ in range(rng.choice((1, 3, 5))):
            polarity = rng.choice((1, -1))
            cue = [rng.choice(POSITIVE if polarity > 0 else NEGATIVE)]
            if rng.random() < cfg.negation_rate:
                cue = [NEGATOR] + cue
                polarity = -polarity
            segments.insert(rng.randint(0, len(segments)), cue)
            score += polarity
        label = int(score > 0)
        if rng.random() < cfg.label_noise:
            label = 1 - label
        examples.append((" ".join(word for segment in segments for word in segment), label))
    return examples


def file_examples(cfg: TextClsConfig) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[str]]:
    """Train and validation (text, label-index) pairs from ``cfg.data_path``, and the label names."""
    rows = read_textcls_rows(Path(cfg.data_path))
    names = label_order({str(label) for _, label in rows})
    if len(names) < 2:
        raise BadInput(f"--data {cfg.data_path}: needs at least 2 distinct labels, found {len(names)}")
    index = {name: i for i, name in enumerate(names)}
    pairs = [(text, index[str(label)]) for text, label in rows]
    random.Random(cfg.seed).shuffle(pairs)
    n_val = max(1, round(len(pairs) * cfg.val_fraction))
    if n_val >= len(pairs):
        raise BadInput(f"--data {cfg.data_path}: {len(pairs)} examples are too few to carve a validation split")
    return pairs[n_val:], pairs[:n_val], names


def _unknown(ids: torch.Tensor) -> dict[str, float]:
    """{"count": <unk> tokens, "share": of all non-padding tokens} of ids (N, T)."""
    real = int(ids.ne(0).sum())
    count = int(ids.eq(1).sum())
    return {"count": count, "share": count / real if real else 0.0}


# Validation rows per no-grad forward pass: large enough that per-op overhead is
# small, small enough that sorting by length leaves little padding in each chunk.
EVAL_ROWS = 128


def length_chunks(ids: torch.Tensor, rows: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Right-padded ids (N, T) as chunks of at most ``rows`` rows in order of length
    (stable), each trimmed to its longest row, and that order (N,)."""
    lengths = ids.ne(0).sum(1)  # (N,)
    order = torch.sort(lengths, stable=True).indices  # (N,)
    chunks = [ids[idx, : max(1, int(lengths[idx].max()))] for idx in order.split(rows)]  # (<= rows, <= T) each
    return chunks, order


class TextClsTask:
    """Classification of word sequences by :class:`TransformerClassifier`."""

    name = "textcls"
    target_metric = "val_accuracy"

    def __init__(self, cfg: TextClsConfig):
        self.cfg = cfg
        if cfg.data_path:
            train, val, self.label_names = file_examples(cfg)
        else:
            rng = random.Random(cfg.seed)
            train = synthetic_examples(cfg, cfg.n_train, rng)
            val = synthetic_examples(cfg, cfg.n_val, rng)
            self.label_names = ["0", "1"]
        self.device = resolve_device(cfg.device, prefer_cuda=False)
        self.tokenizer = WordTokenizer.from_texts([text for text, _ in train], cfg.max_vocab)
        self.train_ids = self.tokenizer.encode_batch([t for t, _ in train], cfg.max_len)  # (N, T)
        self.train_labels = torch.tensor([y for _, y in train])  # (N,)
        self.val_ids = self.tokenizer.encode_batch([t for t, _ in val], cfg.max_len)  # (M, T)
        self.val_labels = torch.tensor([y for _, y in val])  # (M,)
        chunks, order = length_chunks(self.val_ids, EVAL_ROWS)
        self._val_chunks = [chunk.to(self.device) for chunk in chunks]
        # <unk> (id 1) among the real tokens of each split, and its share.
        self.unknown_tokens = {name: _unknown(ids) for name, ids in (("train", self.train_ids), ("val", self.val_ids))}
        self._val_chunk_labels = self.val_labels[order].to(self.device)  # (M,), the chunks' row order

    def build_model(self) -> nn.Module:
        max_len = max(self.train_ids.shape[1], self.val_ids.shape[1])
        return TransformerClassifier(self.cfg.model, len(self.tokenizer), len(self.label_names), max_len).to(self.device)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_labels) / self.cfg.batch_size)

    def batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.train_labels), generator=generator)
        for start in range(0, len(order), self.cfg.batch_size):
            idx = order[start : start + self.cfg.batch_size]
            ids = self.train_ids[idx]
            width = int(ids.ne(0).sum(1).max())  # trim shared padding
            yield ids[:, :width].to(self.device), self.train_labels[idx].to(self.device)

    def training_loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, labels = batch
        return F.cross_entropy(model(ids), labels)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        # Rows in order of length, each chunk trimmed to its longest row: the same
        # numbers as one padded pass to float rounding (padding is masked out), for
        # about a third less work on the synthetic set.
        logits = torch.cat([model(chunk) for chunk in self._val_chunks])  # (M, C)
        labels = self._val_chunk_labels  # (M,)
        return {
            "val_accuracy": float(logits.argmax(1).eq(labels).float().mean()),
            "val_loss": float(F.cross_entropy(logits, labels)),
        }

    def describe(self) -> dict[str, Any]:
        info = asdict(self.cfg)
        info.update(task=self.name, device=str(self.device), unknown_tokens=self.unknown_tokens, vocab_size=len(self.tokenizer), n_classes=len(self.label_names),
                    train_examples=len(self.train_labels), val_examples=len(self.val_labels))
        return info
