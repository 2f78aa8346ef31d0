"""The torch device a task trains on: the text checked without torch (in the parent,
before any work), the device resolved with it (when a task is built).

``None`` is the task's default: gsm8k takes CUDA when the machine has it (its model
is the one that gains from a GPU), textcls the CPU (its 40k-parameter model runs
faster there: per-kernel launch costs dominate at its sizes).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from superpos_cli.errors import BadInput

if TYPE_CHECKING:
    import torch

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def check_torch_device(text: str | None) -> None:
    if text is not None and not _DEVICE.match(str(text)):
        raise BadInput(f"device must be cpu, cuda or cuda:N, got {text!r}")


def resolve_device(text: str | None, prefer_cuda: bool) -> "torch.device":
    """``text`` (or the default) as a torch.device this machine has; BadInput otherwise."""
    import torch

    check_torch_device(text)
    name = text or ("cuda" if prefer_cuda and torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"device {name!r}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BadInput(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
