import pytest
import torch
from torch import nn

from superpos_cli.errors import BadInput
from superpos_cli.models.attention import QuantumAttention
from superpos_cli.quantum import CircuitSpec
from superpos_cli.quantum.backends import fourier

D, H, B, T = 16, 4, 3, 6


@pytest.fixture(autouse=True)
def eager_fourier(monkeypatch):
    monkeypatch.setattr(fourier, "COMPILE", False)


def _pad_mask():
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, -2:] = True
    mask[2, -1] = True
    return mask


def test_classical_equals_multihead_attention():
    torch.manual_seed(0)
    ours = QuantumAttention(D, H).double()
    ref = nn.MultiheadAttention(D, H, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias)
    x = torch.randn(B, T, D, dtype=torch.float64)
    mask = _pad_mask()
    expected, _ = ref(x, x, x, key_padding_mask=mask, need_weights=False)
    assert torch.allclose(ours(x, key_padding_mask=mask), expected, atol=1e-12)
    causal = QuantumAttention(D, H, causal=True).double()
    causal.load_state_dict(ours.state_dict())
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    expected, _ = ref(x, x, x, attn_mask=future, need_weights=False)
    assert torch.allclose(causal(x), expected, atol=1e-12)


@pytest.mark.parametrize("backend", ["fourier", "torch"])
def test_masks_remove_padding_and_future(backend):
    torch.manual_seed(1)
    attn = QuantumAttention(D, H, circuit=CircuitSpec(), backend=backend, causal=True).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    mask = _pad_mask()
    y = attn(x, key_padding_mask=mask)
    x2 = x.clone()
    x2[0, -2:] += 5.0  # padded keys of row 0 change...
    x2[1, -1] += 5.0  # ...and the future of every earlier query of row 1
    y2 = attn(x2, key_padding_mask=mask)
    assert torch.allclose(y[0, :-2], y2[0, :-2], atol=1e-12)
    assert torch.allclose(y[1, :-1], y2[1, :-1], atol=1e-12)
    assert torch.allclose(y[2], y2[2])


@pytest.mark.parametrize("per_head", [False, True])
@pytest.mark.parametrize("phi_input", ["raw", "scaled"])
def test_phi_is_the_circuit_readout_and_chunking_is_exact(per_head, phi_input):
    torch.manual_seed(2)
    spec = CircuitSpec(3, 2)
    whole = QuantumAttention(D, H, circuit=spec, per_head=per_head, phi_input=phi_input).double()
    chunked = QuantumAttention(D, H, circuit=spec, per_head=per_head, phi_input=phi_input, chunk_elements=7).double()
    chunked.load_state_dict(whole.state_dict())
    torch_ref = QuantumAttention(D, H, circuit=spec, backend="torch", per_head=per_head, phi_input=phi_input).double()
    torch_ref.load_state_dict(whole.state_dict())
    classical = QuantumAttention(D, H).double()
    classical.load_state_dict(whole.state_dict(), strict=False)
    x = torch.randn(B, T, D, dtype=torch.float64)
    y = whole(x)
    assert torch.allclose(chunked(x), y, atol=1e-12)
    assert torch.allclose(torch_ref(x), y, atol=1e-10)
    assert not torch.allclose(classical(x), y)
    assert whole.theta.shape == ((H,) if per_head else ()) + (2, 3)


@pytest.mark.parametrize("backend", ["fourier", "torch"])
def test_gradients_reach_circuit_angles(backend):
    torch.manual_seed(3)
    attn = QuantumAttention(D, H, circuit=CircuitSpec(), backend=backend)
    attn(torch.randn(B, T, D)).square().sum().backward()
    for p in (attn.theta, attn.phi, attn.qkv.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_angles_follow_the_global_seed():
    torch.manual_seed(4)
    a = QuantumAttention(D, H, circuit=CircuitSpec())
    torch.manual_seed(4)
    b = QuantumAttention(D, H, circuit=CircuitSpec())
    assert torch.equal(a.theta, b.theta) and torch.equal(a.phi, b.phi)
    assert (a.theta.abs() <= torch.pi).all()


@pytest.mark.parametrize(
    "kwargs",
    [dict(backend="qiskit"), dict(backend="aer"), dict(backend="nope"), dict(phi_input="log"),
     dict(chunk_elements=0), dict(dropout=1.0)],
)
def test_bad_attention_values_raise_badinput(kwargs):
    with pytest.raises(BadInput):
        QuantumAttention(D, H, circuit=CircuitSpec(), **kwargs)
    with pytest.raises(BadInput):
        QuantumAttention(D, 3)


@pytest.mark.parametrize("readout", ["real", "prob"])
def test_prepare_attention_batches_layers_exactly(readout):
    from superpos_cli.models.attention import prepare_attention

    spec = CircuitSpec(n_qubits=2, depth=2, readout=readout)
    torch.manual_seed(0)
    layers = [QuantumAttention(D, H, circuit=spec).double() for _ in range(2)]
    x = torch.randn(B, T, D, dtype=torch.float64)

    def run(grouped):
        for layer in layers:
            layer.zero_grad()
        if grouped:
            prepare_attention(layers)
            assert all(layer._prepared is not None for layer in layers)
        y = layers[1](layers[0](x, _pad_mask()), _pad_mask())
        y.square().sum().backward()
        assert all(layer._prepared is None for layer in layers)
        return y.detach(), [p.grad.clone() for layer in layers for p in (layer.theta, layer.phi)]

    y_ref, g_ref = run(False)
    y, g = run(True)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_prepare_attention_ignores_stale_angles():
    from superpos_cli.models.attention import prepare_attention

    spec = CircuitSpec(n_qubits=2, depth=2)
    torch.manual_seed(0)
    layers = [QuantumAttention(D, H, circuit=spec).double() for _ in range(2)]
    x = torch.randn(B, T, D, dtype=torch.float64)
    prepare_attention(layers)
    with torch.no_grad():
        layers[0].theta.add_(0.5)  # an optimizer step between prepare and forward
    y = layers[0](x)
    layers[0]._prepared = None
    torch.testing.assert_close(y, layers[0](x), rtol=0, atol=0)


def test_noisy_layers_batch_exactly_and_shots_follow_the_seed():
    from superpos_cli.models.attention import prepare_attention

    spec = CircuitSpec(n_qubits=2, depth=2, readout="prob", noise="depolarizing:0.05,amplitude-damping:0.02")
    torch.manual_seed(0)
    layers = [QuantumAttention(D, H, circuit=spec).double() for _ in range(2)]
    x = torch.randn(B, T, D, dtype=torch.float64)

    def run(grouped):
        for layer in layers:
            layer.zero_grad()
        if grouped:
            prepare_attention(layers)
        y = layers[1](layers[0](x))
        y.square().sum().backward()
        return y.detach(), [p.grad.clone() for layer in layers for p in (layer.theta, layer.phi)]

    (y_ref, g_ref), (y, g) = run(False), run(True)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)

    sampled = CircuitSpec(n_qubits=2, depth=2, readout="prob", shots=64)
    outputs = []
    for _ in range(2):
        torch.manual_seed(5)
        outputs.append(QuantumAttention(D, H, circuit=sampled).double()(x))
    assert torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize("backend", ["torch", "qiskit"])
def test_noise_needs_a_backend_that_simulates_it(backend):
    with pytest.raises(BadInput):
        QuantumAttention(D, H, circuit=CircuitSpec(2, 1, readout="prob", noise="depolarizing:0.1"), backend=backend)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("causal", [False, True])
def test_mask_folded_into_the_c_kernels_gives_masked_fills_bits(monkeypatch, causal, dtype):
    """fourier's C pass applies attention's mask (and its backward) itself: the same bits
    as the unfolded kernel followed by masked_fill, with a fully padded row and left padding."""
    from superpos_cli.quantum.backends import trig_native

    if not trig_native.available(dtype):
        pytest.skip("no C compiler: the C kernels do not build")
    torch.manual_seed(0)
    attn = QuantumAttention(64, 4, circuit=CircuitSpec(n_qubits=4, depth=2), causal=causal).to(dtype)
    x = torch.randn(6, 21, 64, dtype=dtype, requires_grad=True)
    pad = torch.zeros(6, 21, dtype=torch.bool)
    pad[:, 15:] = True
    pad[2, 3:] = True
    pad[3] = True  # a row with no key: uniform weights, gradient only through masked_fill's zeros
    pad[4, :4] = True  # left padding
    masks_seen = []
    forward = trig_native.TrigKernels.forward

    def spy(self, *args, mask=None, **kwargs):
        masks_seen.append(mask)
        return forward(self, *args, mask=mask, **kwargs)

    monkeypatch.setattr(trig_native.TrigKernels, "forward", spy)
    results = []
    for folded in (True, False):
        monkeypatch.setattr(fourier.FourierCircuit, "takes_mask", folded)
        attn.zero_grad()
        x.grad = None
        y = attn(x, pad)
        y.square().sum().backward()
        results.append((y.detach(), x.grad, attn.theta.grad, attn.phi.grad))
    assert masks_seen[0] is not None and masks_seen[1] is None  # the folded pass, then the plain one
    for folded, plain in zip(*results):
        assert torch.equal(folded, plain)
