"""Optimizers of arms: an :class:`ArmSpec` (spec/arms.py) -> a torch optimizer.

The presets, the arm syntax and every option's rule are declared in spec/ (torch-free,
checked before any work); this module only builds what an already checked arm names.
"""

from __future__ import annotations

import torch

from superpos_cli.optim.functional import torch_fused_adam_supports
from superpos_cli.spec.arms import PLUGIN_GROUP, PRESETS, ArmSpec, load_import_path_arm
from superpos_cli.spec.registry import load_plugin


def build_optimizer(arm: ArmSpec, model: torch.nn.Module, seed: int = 0) -> torch.optim.Optimizer:
    """The optimizer of ``arm`` over ``model``'s trainable parameters, in model order
    (the order SuperpositionalAdam's scope ``tensors`` counts)."""
    params = [p for p in model.parameters() if p.requires_grad]
    o = arm.options
    if arm.is_import_path:
        return load_import_path_arm(arm)(params, **o)
    if arm.preset not in PRESETS:
        return load_plugin(PLUGIN_GROUP, arm.preset).build(params, dict(o), seed)
    if arm.preset in ("adam", "adamw"):
        cls = torch.optim.Adam if arm.preset == "adam" else torch.optim.AdamW
        return cls(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                   weight_decay=o["weight_decay"], fused=_torch_fused(o["fused"], params))
    if arm.preset == "momentum":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
    from superpos_cli.optim.optimizer import SuperpositionalAdam

    return SuperpositionalAdam(
        params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"], weight_decay=o["weight_decay"],
        perturb=o["perturb"], perturb_scale=o["lambda"], scope=o["scope"], n_qubits=o["n_qubits"],
        eps_inside_sqrt=o["eps_inside"], perturb_unscaled=o["unscaled"], decoupled_weight_decay=not o["l2"],
        seed=seed, fused=o["fused"],
    )


def _torch_fused(fused: bool | None, params: list[torch.Tensor]) -> bool | None:
    """``fused`` for torch's Adam / AdamW: unset, torch's fused kernel wherever torch
    has one for these parameters (CPU, CUDA), the fastest of torch's own paths and
    the one SuperpositionalAdam's default builds on, so that a compare's cost column
    measures the sine term and not two implementations; elsewhere torch's default
    (foreach on CUDA, a per-tensor loop on CPU), which ``fused=false`` also picks."""
    if fused is not None:
        return fused
    return True if torch_fused_adam_supports(params) else None
