"""Transformer blocks with pluggable (quantum or classical) attention, and the
encoder classifier of the paper's text-classification experiment."""

from __future__ import annotations

import torch
from torch import nn

from superpos_cli.models.attention import QuantumAttention, prepare_attention
from superpos_cli.models.config import ModelConfig
from superpos_cli.models.dropout import StreamDropout


class Block(nn.Module):
    """Post-LN transformer layer, as torch.nn.TransformerEncoderLayer (the paper
    gives no details; post-LN is PyTorch's default encoder layer)."""

    def __init__(self, cfg: ModelConfig, causal: bool = False):
        super().__init__()
        self.attn = QuantumAttention(
            cfg.d_model, cfg.n_heads, cfg.dropout, causal=causal, **cfg.attention.attention_kwargs()
        )
        self.ff = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff),
            nn.ReLU(),
            StreamDropout(cfg.dropout),
            nn.Linear(cfg.d_ff, cfg.d_model),
        )
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.drop = StreamDropout(cfg.dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x, key_padding_mask=pad_mask)))  # (B, T, D)
        return self.norm2(x + self.drop(self.ff(x)))  # (B, T, D)


class TransformerClassifier(nn.Module):
    """Token + learned position embeddings, ``n_layers`` blocks, masked mean pool,
    linear head. Input ids (B, T) with 0 as padding; output logits (B, n_classes)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, n_classes: int, max_len: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.d_model, padding_idx=0)
        self.pos = nn.Embedding(max_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.drop = StreamDropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids.eq(0)  # (B, T), True where padding
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.drop(self.embed(ids) + self.pos(positions))  # (B, T, D)
        prepare_attention([block.attn for block in self.blocks])  # one coefficient pass for all layers
        for block in self.blocks:
            x = block(x, pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)  # (B, D)
        return self.head(pooled)  # (B, n_classes)
