"""The built-in GPT: shapes, causality (classical and quantum attention), initial loss, tokenizer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from superpos_cli.errors import BadInput
from superpos_cli.models.config import AttentionConfig
from superpos_cli.models.gpt import GPT, ByteTokenizer, GPTConfig


def tiny(kind: str = "classical", **kw) -> GPT:
    torch.manual_seed(0)
    attention = AttentionConfig(kind=kind, n_qubits=2, depth=1)
    cfg = GPTConfig(d_model=16, n_heads=2, d_ff=32, context=32, attention=attention, **kw)
    return GPT(cfg, ByteTokenizer.vocab_size).eval()


@pytest.mark.parametrize("kind", ["classical", "quantum"])
def test_shapes_and_causal_mask(kind):
    model = tiny(kind)
    ids = torch.randint(0, 256, (3, 12))
    logits = model(ids)
    assert logits.shape == (3, 12, ByteTokenizer.vocab_size)
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 256  # alter every token from position 7 on
    after = model(changed)
    torch.testing.assert_close(after[:, :7], logits[:, :7], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, 7:], logits[:, 7:])


def test_right_padding_does_not_change_real_positions():
    model = tiny()
    ids = torch.randint(0, 256, (1, 9))
    padded = torch.cat([ids, torch.full((1, 5), ByteTokenizer.pad_id)], dim=1)  # (1, 14)
    torch.testing.assert_close(model(padded)[:, :9], model(ids), rtol=0, atol=1e-6)


def test_initial_loss_is_near_uniform():
    model = tiny()
    ids = torch.randint(0, 256, (4, 20))
    with torch.no_grad():
        loss = F.cross_entropy(model(ids)[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    assert abs(float(loss) - math.log(ByteTokenizer.vocab_size)) < 0.2
    assert model.head.weight is model.embed.weight


def test_context_and_config_are_checked():
    with pytest.raises(BadInput, match="context"):
        tiny()(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(BadInput, match="divisible"):
        GPTConfig(d_model=10, n_heads=4)
    assert GPTConfig().attention.kind == "classical"


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    text = "Tom pays $3 × 4 = <<3*4=12>>12 €\n#### 12"
    assert tok.decode(tok.encode(text) + [tok.eos_id, tok.pad_id]) == text
    assert max(tok.encode(text)) < 256 and len({tok.pad_id, tok.bos_id, tok.eos_id}) == 3
