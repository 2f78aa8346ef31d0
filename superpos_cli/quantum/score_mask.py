"""Which attention scores are masked, and the logit they take: one description that
attention applies with ``masked_fill`` or hands to a circuit that masks in its own pass.

Scores are (B, H, T, T): position (b, h, i, j) is masked where key j of sequence b is
padding or, causal, where j > i (a future key). The C kernels of :mod:`.backends.trig_native`
read the same description (``key_padding`` as bytes, ``T``, ``heads``, ``causal``), so a
circuit that masks in its forward pass gives attention's ``masked_fill`` bits exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from superpos_cli.errors import BadInput


@dataclass(frozen=True, eq=False)
class ScoreMask:
    """key_padding (B, T) bool, True = padding, contiguous, or None; the logit ``fill``
    (the most negative finite value of the logits' dtype, not -inf: identical weights
    wherever a row keeps one key, and no NaN where a row keeps none)."""

    key_padding: torch.Tensor | None
    causal: bool
    heads: int
    T: int
    fill: float

    @classmethod
    def build(cls, key_padding_mask: torch.Tensor | None, causal: bool, B: int, heads: int, T: int,
              dtype: torch.dtype) -> "ScoreMask | None":
        """The mask of (B, heads, T, T) scores in ``dtype``, or None where nothing is masked."""
        if key_padding_mask is None and not causal:
            return None
        if key_padding_mask is not None:
            if key_padding_mask.shape != (B, T):
                raise BadInput(f"key_padding_mask must have shape {(B, T)}, got {tuple(key_padding_mask.shape)}")
            key_padding_mask = key_padding_mask.bool().contiguous()
        return cls(key_padding_mask, causal, heads, T, torch.finfo(dtype).min)

    def dense(self, device) -> torch.Tensor:
        """True where masked, broadcastable to (B, H, T, T): (B, 1, 1, T), (T, T) or (B, 1, T, T)."""
        mask = None if self.key_padding is None else self.key_padding[:, None, None, :]
        if self.causal:
            future = torch.ones(self.T, self.T, dtype=torch.bool, device=device).triu(1)  # (T, T)
            mask = future if mask is None else mask | future
        return mask

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, H, T, T) with the masked positions set to ``fill`` (out of place)."""
        return logits.masked_fill(self.dense(logits.device), self.fill)
