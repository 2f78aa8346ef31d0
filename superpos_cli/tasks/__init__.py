"""Task registry: name -> builder from (seed, options).

Built-in tasks and those plugins register through the ``superpos.tasks`` entry
point (a callable ``builder(seed, options) -> Task``; an optional
``check(options)`` attribute validates options without building data). This
module imports no torch: the task modules load when a task is built.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable

from superpos_cli.errors import BadInput
from superpos_cli.models.config import AttentionConfig, ModelConfig
from superpos_cli.spec.options import OPTIONS, TASK_PROTOCOL
from superpos_cli.spec.registry import load_plugin, plugins
from superpos_cli.spec.registry import tasks as task_names
from superpos_cli.tasks.base import Task

PLUGIN_GROUP = "superpos.tasks"
# Paper protocol per task, applied beneath the user's optimizer flags (spec/arms.py).
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    task: {k: v for k, v in protocol.items() if OPTIONS[k].group == "optimizer"}
    for task, protocol in TASK_PROTOCOL.items()
}


def split_model_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split flat options into (task, model, attention) fields by dataclass field names."""
    model_names = {f.name for f in fields(ModelConfig)} - {"attention"}
    attention_names = {f.name for f in fields(AttentionConfig)}
    task_opts = {k: v for k, v in options.items() if k not in model_names | attention_names}
    model_opts = {k: v for k, v in options.items() if k in model_names}
    attention_opts = {k: v for k, v in options.items() if k in attention_names}
    return task_opts, model_opts, attention_opts


def _textcls_config(seed: int, options: dict[str, Any]):
    from superpos_cli.tasks.textcls import TextClsConfig

    task_opts, model_opts, attention_opts = split_model_options(options)
    try:
        model = ModelConfig(**model_opts, attention=AttentionConfig(**attention_opts))
        return TextClsConfig(seed=seed, model=model, **task_opts)
    except TypeError as err:
        raise BadInput(f"textcls: {err}") from None


def _build_textcls(seed: int, options: dict[str, Any]) -> Task:
    from superpos_cli.tasks.textcls import TextClsTask

    return TextClsTask(_textcls_config(seed, options))


def _build_gsm8k(seed: int, options: dict[str, Any]) -> Task:
    from superpos_cli.tasks.gsm8k import build_gsm8k_task

    return build_gsm8k_task(seed=seed, **options)


def _check_gsm8k(options: dict[str, Any]) -> None:
    from superpos_cli.tasks.gsm8k import gsm8k_config

    gsm8k_config(0, **options)


TASKS: dict[str, Callable[[int, dict[str, Any]], Task]] = {
    "textcls": _build_textcls,
    "gsm8k": _build_gsm8k,
}
_CHECKS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "textcls": lambda options: _textcls_config(0, options),
    "gsm8k": _check_gsm8k,
}


def _known(name: str) -> None:
    if name not in TASKS and name not in plugins(PLUGIN_GROUP):
        raise BadInput(f"unknown task {name!r}; allowed: {', '.join(task_names())}")


def build_task(name: str, seed: int, options: dict[str, Any] | None = None) -> Task:
    """The task ``name`` for ``seed`` (which draws its data or its split)."""
    _known(name)
    builder = TASKS.get(name) or load_plugin(PLUGIN_GROUP, name)
    return builder(seed, dict(options or {}))


def check_task_options(name: str, options: dict[str, Any]) -> None:
    """Build ``name``'s configuration from ``options`` without data or model (BadInput if invalid)."""
    _known(name)
    if name in _CHECKS:
        _CHECKS[name](dict(options))
        return
    check = getattr(load_plugin(PLUGIN_GROUP, name), "check", None)
    if check is not None:
        check(dict(options))


__all__ = ["TASKS", "OPTIMIZER_DEFAULTS", "Task", "build_task", "check_task_options"]
