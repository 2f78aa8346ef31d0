"""Multi-head attention with the quantum logit term of paper-spec §3.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + Phi) V
    Phi[b, h, i, j] = readout(C(s[b, h, i, j]))      one circuit per score

s is the raw score (Q K^T)[b, h, i, j] (``phi_input="raw"``, default) or the scaled
one (``"scaled"``). ``circuit=None`` switches Phi off: the classical control arm runs
the same projections and the same code path, and equals standard multi-head
attention (torch.nn.MultiheadAttention with the same weights).

The circuit runs on a backend through its Protocol only
(:class:`superpos_cli.quantum.backends.base.Backend`: ``supports``, ``prepare``,
``prepare_many``, and the prepared circuit's ``evaluate``). Noise and shots are part
of the :class:`CircuitSpec`; a spec with ``shots`` samples from a generator this
module owns, seeded from the global torch RNG when the module is built.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Iterator

import torch
from torch import nn

from superpos_cli.errors import BadInput
from superpos_cli.models.config import PHI_INPUTS
from superpos_cli.models.dropout import StreamDropout
from superpos_cli.quantum import CircuitSpec, get_backend
from superpos_cli.quantum.memory import chunk_scores
from superpos_cli.quantum.score_mask import ScoreMask

# The bytes this trial may use (``--max-memory`` divided among the parallel trials), or
# None: set around a trial by :func:`memory_budget`, read when attention chunks scores.
# A per-process resource setting like torch's thread count: it changes how scores
# are split into backend calls, not the values (the evaluation is elementwise); the
# angles' gradients then sum per-chunk parts, equal to float rounding, and with shots
# the draws follow the chunks. Default runs never split: a textcls step's 2**19
# scores per layer fit any budget above ~50 MB.
_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("superpos_memory_budget", default=None)


@contextlib.contextmanager
def memory_budget(bytes_: int | None) -> Iterator[None]:
    """Quantum attention built or run inside chunks its scores to fit ``bytes_``."""
    token = _BUDGET.set(bytes_)
    try:
        yield
    finally:
        _BUDGET.reset(token)


class QuantumAttention(nn.Module):
    """Self-attention over (B, T, D) with an optional learned circuit term Phi.

    theta, phi (the circuit angles) are (depth, n_qubits), shared by all heads, or
    (n_heads, depth, n_qubits) with ``per_head``; initialised uniform(-pi, pi) from
    the global torch RNG, so ``torch.manual_seed`` fixes them. Phi is evaluated in
    chunks of at most ``chunk_elements`` scores so that the backend's temporaries
    stay bounded; None (the default) sizes the chunk from the trial's memory budget
    (:func:`memory_budget`, ``--max-memory``), at most 2**22 scores.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        *,
        circuit: CircuitSpec | None = None,
        backend: str = "fourier",
        phi_input: str = "raw",
        per_head: bool = False,
        causal: bool = False,
        chunk_elements: int | None = None,
    ):
        super().__init__()
        if n_heads < 1 or d_model < 1 or d_model % n_heads:
            raise BadInput(f"d_model {d_model} must be a positive multiple of n_heads {n_heads}")
        if not 0.0 <= dropout < 1.0:
            raise BadInput(f"dropout must be in [0, 1), got {dropout}")
        if phi_input not in PHI_INPUTS:
            raise BadInput(f"phi_input {phi_input!r} is not one of {', '.join(PHI_INPUTS)}")
        if chunk_elements is not None and chunk_elements < 1:
            raise BadInput(f"chunk_elements must be >= 1, got {chunk_elements}")
        impl = get_backend(backend)
        if circuit is not None:
            if not impl.differentiable:
                raise BadInput(f"backend {backend!r} has no autograd; a trainable attention needs 'torch' or 'fourier'")
            reason = impl.supports(circuit)
            if reason is not None:
                raise BadInput(reason)
        self._backend = impl
        self.d_model, self.n_heads, self.d_k = d_model, n_heads, d_model // n_heads
        self.circuit, self.backend, self.phi_input = circuit, backend, phi_input
        self.per_head, self.causal, self.chunk_elements = per_head, causal, chunk_elements
        self.qkv = nn.Linear(d_model, 3 * d_model)  # rows: W_q, W_k, W_v, as MultiheadAttention
        self.out = nn.Linear(d_model, d_model)
        self.attn_drop = StreamDropout(dropout)
        self._prepared = None  # (circuit, theta, phi, versions) from prepare_attention, used once
        self._options = {}  # the backend's prepare options
        if circuit is not None:
            shape = ((n_heads,) if per_head else ()) + (circuit.depth, circuit.n_qubits)
            self.theta = nn.Parameter((torch.rand(shape) * 2 - 1) * math.pi)
            self.phi = nn.Parameter((torch.rand(shape) * 2 - 1) * math.pi)
            if circuit.shots is not None:
                # Drawn only with shots, so noiseless runs keep their RNG stream.
                seed = int(torch.randint(2**62, (1,)))
                self._options["generator"] = torch.Generator().manual_seed(seed)
        else:
            self.register_parameter("theta", None)
            self.register_parameter("phi", None)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), key_padding_mask (B, T) bool with True = padding -> (B, T, D)."""
        # Explicit ops rather than F.scaled_dot_product_attention, for both arms: Phi
        # needs the raw scores, and the classical control must run the same path so
        # that a quantum/classical ratio measures Phi alone. (SDPA alone would run the
        # classical arm 1.1-3x faster at textcls's T~17 and 1.9-2.6x at T=64 on CPU;
        # as Phi's carrier, through attn_mask, it saved nothing in evaluation: 0.77-1.22x.)
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.d_k).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, d_k)
        scores = q @ k.transpose(-2, -1)  # (B, H, T, T), raw Q K^T
        scale = 1.0 / math.sqrt(self.d_k)
        mask = ScoreMask.build(key_padding_mask, self.causal, B, self.n_heads, T, scores.dtype)
        if self.circuit is None:
            logits = scores * scale  # (B, H, T, T)
        elif self.phi_input == "raw":
            logits, mask = self._with_phi(scores, scale, mask)  # scores * scale + Phi(scores), (B, H, T, T)
        else:
            logits, mask = self._with_phi(scores * scale, 1.0, mask)  # (B, H, T, T)
        if mask is not None:  # not yet applied by the circuit
            logits = mask.apply(logits)
        weights = self.attn_drop(torch.softmax(logits, dim=-1))  # (B, H, T, T)
        y = (weights @ v).transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.out(y)

    def _with_phi(self, inputs: torch.Tensor, alpha: float, mask: ScoreMask | None):
        """(alpha * inputs + readout(C(inputs)) elementwise (B, H, T, T), the part of ``mask``
        still to apply: None where the circuit applied it).

        The backends fold alpha * inputs into their pass over the scores (one kernel
        for fourier), saving a full read and write of the logits each way; a circuit that
        ``takes_mask`` folds attention's mask in as well (the fourier C kernels: its
        masked_fill and that fill's backward, two more passes each way).
        """
        if not self.per_head:
            circuit = self._take_prepared() or self._backend.prepare(self.circuit, self.theta, self.phi, **self._options)
            if mask is not None and getattr(circuit, "takes_mask", False) and inputs.numel() <= self._chunk(inputs):
                return circuit.evaluate(inputs, alpha, mask=mask), None
            return self._chunked(circuit, inputs, alpha), mask
        heads = [
            self._chunked(self._backend.prepare(self.circuit, self.theta[h], self.phi[h], **self._options),
                          inputs[:, h], alpha)
            for h in range(self.n_heads)
        ]
        return torch.stack(heads, dim=1), mask  # (B, H, T, T)

    def _take_prepared(self):
        """The circuit :func:`prepare_attention` made for this forward, if still valid (once)."""
        held = self._prepared
        if held is None:
            return None
        object.__setattr__(self, "_prepared", None)  # a plain attribute: nn.Module's hook not needed
        circuit, theta, phi, versions = held
        params = self._parameters
        if theta is not params["theta"] or phi is not params["phi"] or versions != (theta._version, phi._version):
            return None
        return circuit

    def _chunk(self, inputs: torch.Tensor) -> int:
        """Scores per backend call."""
        if self.chunk_elements is not None:
            return self.chunk_elements
        return chunk_scores(self.circuit, self.backend, _BUDGET.get(), inputs.element_size())

    def _chunked(self, circuit, inputs: torch.Tensor, alpha: float) -> torch.Tensor:
        chunk = self._chunk(inputs)
        if inputs.numel() <= chunk:
            return circuit.evaluate(inputs, alpha)
        parts = inputs.reshape(-1).split(chunk)
        return torch.cat([circuit.evaluate(part, alpha) for part in parts]).view(inputs.shape)


def prepare_attention(modules) -> None:
    """Prepare the circuits of several quantum attention layers in one call per spec.

    Layers with the same circuit spec and backend (shared angles, float32 or float64
    alike) are prepared by one ``prepare_many``: on the fourier backend one batched
    simulation gives their coefficients and, in backward, their angle gradients. Each
    layer's next forward uses its circuit (once, and only while its angles are
    unchanged). Layers with per-head angles or shots (each owns its generator)
    prepare as usual in forward.
    """
    if not torch.is_grad_enabled():
        return  # no-grad evaluation reuses cached coefficients per layer instead
    # Parameters read from _parameters and _prepared set with object.__setattr__: this runs
    # every training step, and nn.Module's attribute hooks cost more than the rest of it.
    groups: dict[tuple, list] = {}
    for m in modules:
        if not isinstance(m, QuantumAttention) or m.circuit is None or m.per_head or m.circuit.shots is not None:
            continue
        theta, phi = m._parameters["theta"], m._parameters["phi"]
        if (theta.requires_grad or phi.requires_grad) and theta.dtype == phi.dtype:
            groups.setdefault((m.circuit, m.backend, theta.dtype, theta.device), []).append((m, theta, phi))
    for members in groups.values():
        first = members[0][0]
        circuits = first._backend.prepare_many(first.circuit, [(theta, phi) for _, theta, phi in members])
        for (m, theta, phi), circuit in zip(members, circuits):
            object.__setattr__(m, "_prepared", (circuit, theta, phi, (theta._version, phi._version)))
