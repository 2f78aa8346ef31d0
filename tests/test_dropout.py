"""StreamDropout: torch's dropout semantics, masks from a seeded stream of its own."""

import io
import math

import pytest
import torch
from torch import nn

from superpos_cli.models.dropout import StreamDropout, fork_streams
from superpos_cli.models.config import AttentionConfig, ModelConfig
from superpos_cli.models.transformer import TransformerClassifier


def _drop(p, seed=0):
    torch.manual_seed(seed)
    return StreamDropout(p)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_keeps_each_element_with_probability_one_minus_p_scaled_as_torch(p, dtype):
    """Kept share within 5 binomial SDs of 1 - p, the same as torch.nn.Dropout's draw
    on the same input; kept values x / (1 - p) exactly as torch computes them."""
    x = torch.rand(400, 1000, dtype=dtype) + 0.5  # never 0, so a zero is a drop
    y = _drop(p)(x)
    n = x.numel()
    kept = y.ne(0)
    sd = math.sqrt(n * p * (1 - p))
    assert abs(int(kept.sum()) - n * (1 - p)) < 5 * sd
    torch.manual_seed(0)
    reference = nn.Dropout(p)(x)
    assert abs(int(kept.sum()) - int(reference.ne(0).sum())) < 5 * math.sqrt(2) * sd
    torch.testing.assert_close(y[kept], x[kept] * (1 / (1 - p)))  # 1/(1-p) in x's precision
    # independent elements: neighbours' drops are uncorrelated
    a, b = kept.flatten()[:-1].double(), kept.flatten()[1:].double()
    assert abs(float(((a - a.mean()) * (b - b.mean())).mean()) / (p * (1 - p))) < 5 / math.sqrt(n)


def test_backward_is_the_mask_and_eval_is_identity():
    drop = _drop(0.4)
    x = torch.randn(64, 33, requires_grad=True)
    y = drop(x)
    g = torch.randn_like(y)
    y.backward(g)
    mask = (y.detach() / x.detach()).nan_to_num()
    torch.testing.assert_close(x.grad, g * mask)
    drop.eval()
    assert drop(x) is x


def test_seeded_by_the_global_rng_at_build_and_never_drawing_from_it_in_training():
    x = torch.ones(10_000)
    a, b, c = _drop(0.5, seed=1)(x), _drop(0.5, seed=1)(x), _drop(0.5, seed=2)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    drop = _drop(0.5)
    state = torch.get_rng_state()
    drop(x)
    assert torch.equal(state, torch.get_rng_state())


def test_without_dropout_the_initialisation_stream_is_torchs():
    """p = 0 draws no seed: a model without dropout initialises as with nn.Dropout(0)."""
    torch.manual_seed(3)
    StreamDropout(0.0)
    after = torch.rand(3)
    torch.manual_seed(3)
    nn.Dropout(0.0)
    assert torch.equal(after, torch.rand(3))
    assert StreamDropout(0.0)(torch.ones(5)).eq(1).all()


CLASSICAL = ModelConfig(attention=AttentionConfig(kind="classical"))


def test_state_dict_resumes_the_stream_through_a_weights_only_checkpoint():
    torch.manual_seed(0)
    model = TransformerClassifier(CLASSICAL, 20, 2, 8)
    ids = torch.randint(1, 20, (4, 8))
    model.train()
    model(ids)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    expected = model(ids)
    torch.manual_seed(5)  # another initialisation and other streams ...
    other = TransformerClassifier(CLASSICAL, 20, 2, 8)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=True))  # ... until the checkpoint is loaded
    other.train()
    torch.testing.assert_close(other(ids), expected, rtol=0, atol=0)


def test_fork_streams_repeats_the_draws():
    drop = _drop(0.5)
    x = torch.ones(1000)
    with fork_streams(drop):
        first = drop(x)
    assert torch.equal(drop(x), first)
    assert not torch.equal(drop(x), first)


def test_other_dtypes_use_torchs_dropout():
    torch.manual_seed(0)
    y = StreamDropout(0.5)(torch.ones(10_000, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and 0.4 < float(y.ne(0).float().mean()) < 0.6
