"""Task registry: name -> builder from (seed, options)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable

from superpos_cli.errors import BadInput
from superpos_cli.models.config import AttentionConfig, ModelConfig
from superpos_cli.tasks.base import Task

# Paper protocol per task, applied beneath the user's optimizer flags (presets.py).
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "textcls": {"lr": 1e-3, "weight_decay": 0.0},
    "gsm8k": {"lr": 2e-5, "weight_decay": 0.01},
}


def split_model_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split flat options into (task, model, attention) fields by dataclass field names."""
    model_names = {f.name for f in fields(ModelConfig)} - {"attention"}
    attention_names = {f.name for f in fields(AttentionConfig)}
    task_opts = {k: v for k, v in options.items() if k not in model_names | attention_names}
    model_opts = {k: v for k, v in options.items() if k in model_names}
    attention_opts = {k: v for k, v in options.items() if k in attention_names}
    return task_opts, model_opts, attention_opts


def _build_textcls(seed: int, options: dict[str, Any]) -> Task:
    from superpos_cli.tasks.textcls import TextClsConfig, TextClsTask

    task_opts, model_opts, attention_opts = split_model_options(options)
    model = ModelConfig(**model_opts, attention=AttentionConfig(**attention_opts))
    try:
        cfg = TextClsConfig(seed=seed, model=model, **task_opts)
    except TypeError as err:
        raise BadInput(f"textcls: {err}") from None
    return TextClsTask(cfg)


def _build_gsm8k(seed: int, options: dict[str, Any]) -> Task:
    from superpos_cli.tasks.gsm8k import build_gsm8k_task

    return build_gsm8k_task(seed=seed, **options)


TASKS: dict[str, Callable[[int, dict[str, Any]], Task]] = {
    "textcls": _build_textcls,
    "gsm8k": _build_gsm8k,
}


def build_task(name: str, seed: int, options: dict[str, Any] | None = None) -> Task:
    """The task ``name`` for ``seed`` (which draws its data or its split)."""
    if name not in TASKS:
        raise BadInput(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    return TASKS[name](seed, dict(options or {}))


__all__ = ["TASKS", "OPTIMIZER_DEFAULTS", "Task", "build_task"]
