"""Typed model configuration shared by every task's model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from superpos_cli.errors import BadInput
from superpos_cli.quantum.backends import BACKENDS
from superpos_cli.quantum.circuit import CircuitSpec

ATTENTION_KINDS = ("quantum", "classical")
PHI_INPUTS = ("raw", "scaled")


@dataclass(frozen=True)
class AttentionConfig(CircuitSpec):
    """How attention logits are formed (paper-spec §3).

    ``kind="classical"`` is the control arm: the same module with Phi switched off.
    The circuit fields (n_qubits, depth, encoding, entangler, readout, noise,
    noise_device, shots) are :class:`CircuitSpec`'s, inherited rather than re-declared,
    so they stay flat task_options keys with one declaration, default and check.
    """

    kind: str = "quantum"
    backend: str = "fourier"
    phi_input: str = "raw"
    per_head: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in ATTENTION_KINDS:
            raise BadInput(f"attention {self.kind!r} is not one of {', '.join(ATTENTION_KINDS)}")
        if self.phi_input not in PHI_INPUTS:
            raise BadInput(f"phi-input {self.phi_input!r} is not one of {', '.join(PHI_INPUTS)}")
        if self.backend not in BACKENDS:
            raise BadInput(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")

    def circuit_spec(self) -> CircuitSpec | None:
        """The CircuitSpec for quantum attention, or None for classical."""
        if self.kind == "classical":
            return None
        return CircuitSpec(**{f.name: getattr(self, f.name) for f in fields(CircuitSpec)})

    def attention_kwargs(self) -> dict[str, Any]:
        return dict(
            circuit=self.circuit_spec(),
            backend=self.backend,
            phi_input=self.phi_input,
            per_head=self.per_head,
        )


@dataclass(frozen=True)
class ModelConfig:
    """Transformer size; defaults are the paper's text-classification model."""

    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 128
    dropout: float = 0.1
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_ff"):
            if getattr(self, name) < 1:
                raise BadInput(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise BadInput(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise BadInput(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
