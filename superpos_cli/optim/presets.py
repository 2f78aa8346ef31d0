"""Optimizer presets for the CLI, and the arm syntax ``PRESET[:key=value,...]``.

``sgd`` is the paper's "Superpositional Gradient Descent" (SuperpositionalAdam,
lambda 0.5); classic stochastic gradient descent is ``momentum``. ``superpos`` is
an alias of ``sgd``. Several arms of one preset differ by their options, e.g.
``sgd:lambda=0.1`` and ``sgd:lambda=0.5,scope=all``.

Precedence, lowest first: preset defaults, the task's defaults (the paper used
lr 1e-3 for text classification, lr 2e-5 and weight decay 0.01 for GSM8K), the
command's global flags (``--lr``, ``--lambda``, ...), the arm's own options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from superpos_cli.errors import BadInput

# Option name -> (type, help). Keys are the arm-syntax names; the CLI flag is --key.
OPTIONS: dict[str, tuple[type, str]] = {
    "lr": (float, "learning rate (> 0)"),
    "weight_decay": (float, "weight decay (>= 0); decoupled unless l2"),
    "beta1": (float, "first-moment decay in [0, 1)"),
    "beta2": (float, "second-moment decay in [0, 1)"),
    "eps": (float, "denominator epsilon (> 0)"),
    "momentum": (float, "momentum of the classic SGD preset"),
    "lambda": (float, "perturbation scale lambda (>= 0)"),
    "perturb": (str, "perturbation function: sin, cos, gaussian, uniform, none"),
    "scope": (str, "coordinates perturbed: tensors, coords, global, all"),
    "n_qubits": (int, "n_qubits of the scope (>= 1)"),
    "eps_inside": (bool, "eps inside the square root: sqrt(v + eps)"),
    "unscaled": (bool, "lambda*Q not multiplied by lr"),
    "l2": (bool, "coupled L2 weight decay instead of decoupled"),
    "fused": (bool, "use the fused single-pass step where available"),
}
ALIASES = {"n-qubits": "n_qubits", "qubits": "n_qubits", "weight-decay": "weight_decay", "wd": "weight_decay",
           "eps-inside": "eps_inside", "perturb_scale": "lambda", "lam": "lambda"}

PRESETS: dict[str, dict[str, Any]] = {
    # fused None: the optimizer's own default path.
    "adam": {"lr": 1e-3, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "fused": None},
    "adamw": {"lr": 1e-3, "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "fused": None},
    "sgd": {"lr": 1e-3, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "lambda": 0.5,
            "perturb": "sin", "scope": "tensors", "n_qubits": 4, "eps_inside": False, "unscaled": False,
            "l2": False, "fused": None},
    "momentum": {"lr": 1e-2, "weight_decay": 0.0, "momentum": 0.9},
}
PRESET_ALIASES = {"superpos": "sgd"}


@dataclass(frozen=True)
class ArmSpec:
    """One arm of a comparison: a preset with fully resolved options."""

    name: str
    preset: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "options": dict(sorted(self.options.items()))}


def _coerce(key: str, raw: Any) -> Any:
    kind, _ = OPTIONS[key]
    if isinstance(raw, kind) and not (kind is not bool and isinstance(raw, bool)):
        return raw
    text = str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(text)
    except ValueError:
        raise BadInput(f"optimizer option {key}={text!r} is not a valid {kind.__name__}") from None


def normalise_key(key: str) -> str:
    key = key.strip().lower()
    key = ALIASES.get(key, key).replace("-", "_")
    if key not in OPTIONS:
        raise BadInput(f"unknown optimizer option {key!r}; allowed: {', '.join(OPTIONS)}")
    return key


def parse_arm(text: str, overrides: dict[str, Any] | None = None, task_defaults: dict[str, Any] | None = None) -> ArmSpec:
    """``"sgd:lambda=0.1,scope=all"`` -> ArmSpec, applying the precedence above."""
    preset, _, rest = text.strip().partition(":")
    preset = PRESET_ALIASES.get(preset.lower(), preset.lower())
    if preset not in PRESETS:
        raise BadInput(f"unknown optimizer {preset!r}; allowed: {', '.join([*PRESETS, *PRESET_ALIASES])}")
    options = dict(PRESETS[preset])
    arm_options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise BadInput(f"optimizer option {item!r} in {text!r} must look like key=value")
        arm_options[normalise_key(key)] = value
    for layer in (task_defaults or {}, overrides or {}, arm_options):
        for key, value in layer.items():
            key = normalise_key(key)
            value = _coerce(key, value)
            _check(key, value)
            if key in options:
                options[key] = value
            elif layer is arm_options:
                raise BadInput(f"option {key!r} does not apply to optimizer {preset!r}")
    return ArmSpec(name=text.strip(), preset=preset, options=options)


def _check(key: str, value: Any) -> None:
    """Range of one option; applied to every value given, even one a preset ignores,
    so ``compare adam --lambda -1`` is an error rather than silently unused."""
    if key == "lr" and value <= 0:
        raise BadInput(f"lr must be > 0, got {value}")
    if key in ("weight_decay", "momentum") and value < 0:
        raise BadInput(f"{key.replace('_', ' ')} must be >= 0, got {value}")
    if key in ("beta1", "beta2") and not 0.0 <= value < 1.0:
        raise BadInput(f"{key} must be in [0, 1), got {value}")
    if key == "eps" and value <= 0:
        raise BadInput(f"eps must be > 0, got {value}")
    if key == "lambda" and value < 0:
        raise BadInput(f"lambda must be >= 0, got {value}")
    if key == "n_qubits" and value < 1:
        raise BadInput(f"n_qubits must be >= 1, got {value}")
    if key == "perturb":
        from superpos_cli.optim.perturbations import PERTURBATIONS

        if value not in PERTURBATIONS:
            raise BadInput(f"perturb {value!r} is not one of {', '.join(PERTURBATIONS)}")
    if key == "scope":
        from superpos_cli.optim.optimizer import SCOPES

        if value not in SCOPES:
            raise BadInput(f"scope {value!r} is not one of {', '.join(SCOPES)}")


def build_optimizer(arm: ArmSpec, model: torch.nn.Module, seed: int = 0) -> torch.optim.Optimizer:
    """The optimizer of ``arm`` over ``model``'s trainable parameters, in model order
    (the order SuperpositionalAdam's scope ``tensors`` counts)."""
    params = [p for p in model.parameters() if p.requires_grad]
    o = arm.options
    if arm.preset in ("adam", "adamw"):
        cls = torch.optim.Adam if arm.preset == "adam" else torch.optim.AdamW
        return cls(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                   weight_decay=o["weight_decay"], fused=o["fused"])
    if arm.preset == "momentum":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
    from superpos_cli.optim.optimizer import SuperpositionalAdam

    return SuperpositionalAdam(
        params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"], weight_decay=o["weight_decay"],
        perturb=o["perturb"], perturb_scale=o["lambda"], scope=o["scope"], n_qubits=o["n_qubits"],
        eps_inside_sqrt=o["eps_inside"], perturb_unscaled=o["unscaled"], decoupled_weight_decay=not o["l2"],
        seed=seed, fused=o["fused"],
    )
