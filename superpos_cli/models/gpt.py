"""A small built-in decoder-only transformer and its byte-level tokenizer.

The stand-in for the paper's Llama-3.2-1B when no Hugging Face checkpoint is
given: nanoGPT-shaped (token + learned position embeddings, pre-LN blocks,
tied input/output embeddings), with :class:`QuantumAttention` in causal mode,
so ``attention.kind`` switches between classical and quantum attention exactly
as in the text-classification encoder.

Input ids (B, T) -> logits (B, T, vocab). Padding goes on the right: with causal
attention a real token never sees a later pad, so no padding mask is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from superpos_cli.errors import BadInput
from superpos_cli.models.attention import QuantumAttention, prepare_attention
from superpos_cli.models.config import AttentionConfig, ModelConfig
from superpos_cli.models.dropout import StreamDropout


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255, then three special tokens.

    No training, no vocabulary file: any text round-trips, and the id space is
    the same for every dataset and seed.
    """

    pad_id = 256
    bos_id = 257
    eos_id = 258
    vocab_size = 259

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def describe(self) -> dict[str, Any]:
        return {"kind": "bytes", "vocab_size": self.vocab_size}


@dataclass(frozen=True)
class GPTConfig(ModelConfig):
    """Size of the built-in GPT (ModelConfig's fields, validated there, plus the
    context). Attention defaults to classical: the paper fine-tunes a stock Llama,
    whose attention is classical; ``attention.kind="quantum"`` adds Phi."""

    d_ff: int = 256
    dropout: float = 0.0
    context: int = 2048  # learned positions; longer inputs must be cropped by the caller
    attention: AttentionConfig = field(default_factory=lambda: AttentionConfig(kind="classical"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.context < 1:
            raise BadInput(f"context must be >= 1, got {self.context}")


def _init_weights(module: nn.Module) -> None:
    """GPT-2's N(0, 0.02) for linear and embedding weights, zero biases. PyTorch's N(0, 1)
    embedding, tied to the head, would start the loss near 35 nats instead of ln(vocab);
    the circuit angles of quantum attention keep their own initialisation."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class DecoderBlock(nn.Module):
    """Pre-LN block: x + attn(ln(x)), then x + mlp(ln(x)) (GPT-2 / nanoGPT)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = QuantumAttention(
            cfg.d_model, cfg.n_heads, cfg.dropout, causal=True, **cfg.attention.attention_kwargs()
        )
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff),
            nn.GELU(),
            nn.Linear(cfg.d_ff, cfg.d_model),
            StreamDropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # (B, T, D)
        return x + self.mlp(self.ln2(x))  # (B, T, D)


class GPT(nn.Module):
    """Decoder-only language model over ``vocab_size`` ids."""

    def __init__(self, cfg: GPTConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = StreamDropout(cfg.dropout)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        self.head.weight = self.embed.weight  # weight tying, as GPT-2
        self.apply(_init_weights)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) with T <= context -> logits (B, T, vocab)."""
        T = ids.shape[1]
        if T > self.cfg.context:
            raise BadInput(f"sequence length {T} exceeds the model's context {self.cfg.context}")
        positions = torch.arange(T, device=ids.device)  # (T,)
        x = self.drop(self.embed(ids) + self.pos(positions))  # (B, T, D)
        prepare_attention([block.attn for block in self.blocks])  # one coefficient pass for all layers
        for block in self.blocks:
            x = block(x)  # (B, T, D)
        return self.head(self.ln_f(x))  # (B, T, V)
