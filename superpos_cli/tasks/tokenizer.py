"""A word-level tokenizer built from a training split.

Whitespace-separated, lower-cased words; every word of the training split gets
an id, words never seen in training map to ``<unk>``. Id 0 is padding.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

PAD, UNK = "<pad>", "<unk>"


def split_words(text: str) -> list[str]:
    return text.lower().split()


@dataclass(frozen=True)
class WordTokenizer:
    vocab: dict[str, int]

    @classmethod
    def from_texts(cls, texts: list[str], max_vocab: int | None = None) -> "WordTokenizer":
        # Most frequent first, ties broken alphabetically, so the vocabulary is
        # a pure function of the training split.
        counts = Counter(word for text in texts for word in split_words(text))
        ordered = sorted(counts, key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            ordered = ordered[: max(0, max_vocab - 2)]
        vocab = {PAD: 0, UNK: 1}
        for word in ordered:
            vocab[word] = len(vocab)
        return cls(vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode_batch(self, texts: list[str], max_len: int) -> torch.Tensor:
        """Token ids, right-padded with 0 and truncated to ``max_len``: (N, T)."""
        unk = self.vocab[UNK]
        # An empty text becomes one <unk> so no row is all padding (attention
        # over zero keys and mean-pooling over zero tokens are undefined).
        rows = [[self.vocab.get(w, unk) for w in split_words(t)][:max_len] or [unk] for t in texts]
        width = max(1, max((len(r) for r in rows), default=1))
        ids = torch.zeros(len(rows), width, dtype=torch.long)  # (N, T)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids
