"""A local Hugging Face causal-LM checkpoint as a superpos model (the paper's
Llama-3.2-1B-Instruct, or any ``AutoModelForCausalLM`` folder), optionally with LoRA.

Nothing is downloaded: ``path`` must be a folder written by ``save_pretrained``
(``config.json``, weights, tokenizer files). ``transformers`` and ``peft`` are the
``hf`` extra and are imported only here, lazily.

Weights are loaded, then cast to float32: the master weights stay fp32 whatever
the checkpoint's dtype; half precision, where wanted, is the task's autocast.
With ``lora_rank > 0`` the base weights are frozen and rank-``lora_rank`` adapters
(``lora_alpha = 2 * rank``, peft's ``"all-linear"`` targets: every linear layer
but the output head) are the only trainable parameters.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superpos_cli.errors import BadInput

HF_EXTRA = "install the hf extra: pip install 'superpos_cli[hf]'"


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BadInput(f"--model needs the {module!r} package; {HF_EXTRA}") from None


def _checkpoint_dir(path: str | Path) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise BadInput(f"--model {path}: no such folder (a local Hugging Face checkpoint is expected)")
    if not (folder / "config.json").is_file():
        raise BadInput(f"--model {path}: not a Hugging Face checkpoint (no config.json in the folder)")
    return folder


class HFTokenizer:
    """The checkpoint's tokenizer behind the interface the gsm8k task uses
    (``encode``, ``decode``, ``bos_id``, ``eos_id``, ``pad_id``, ``vocab_size``).

    ``bos_id`` is None when the tokenizer has no BOS token; ``pad_id`` falls back
    to EOS (padded positions carry no loss, so any id will do).
    """

    def __init__(self, path: str | Path):
        folder = _checkpoint_dir(path)
        transformers = _require("transformers")
        try:
            self.tok = transformers.AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError) as err:
            raise BadInput(f"--model {path}: cannot load its tokenizer ({err})") from None
        if self.tok.eos_token_id is None:
            raise BadInput(f"--model {path}: the tokenizer defines no EOS token")
        self.bos_id: int | None = self.tok.bos_token_id
        self.eos_id: int = self.tok.eos_token_id
        self.pad_id: int = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos_id
        self.vocab_size = len(self.tok)

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def describe(self) -> dict[str, Any]:
        return {"kind": type(self.tok).__name__, "vocab_size": self.vocab_size}


class HFCausalLM(nn.Module):
    """Wraps a transformers causal LM: ids (B, T) -> logits (B, T, V), like :class:`GPT`.

    Right padding needs no attention mask: causal attention never lets a real
    token see a later pad.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, use_cache=False).logits  # (B, T, V)


def load_causal_lm(path: str | Path, lora_rank: int = 0) -> HFCausalLM:
    """The checkpoint at ``path`` in float32, with LoRA adapters when ``lora_rank > 0``.

    LoRA matrices are initialised from the global torch RNG, so the loop's seed fixes them.
    """
    if lora_rank < 0:
        raise BadInput(f"lora-rank must be >= 0, got {lora_rank}")
    folder = _checkpoint_dir(path)
    transformers = _require("transformers")
    try:
        # An untrusted folder is data: safetensors, or torch.load(weights_only=True) for a
        # .bin checkpoint, and no code from the folder (said explicitly, not left to defaults).
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), weights_only=True,
                                                                  trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise BadInput(f"--model {path}: cannot load a causal LM from it ({err})") from None
    model = model.float()
    if lora_rank > 0:
        peft = _require("peft")
        config = peft.LoraConfig(
            r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0, target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        model = peft.get_peft_model(model, config)
    return HFCausalLM(model)
