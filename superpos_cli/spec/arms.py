"""Optimizer arms: presets and the arm syntax, parsed and checked without torch.

Two spellings, which cannot clash (a preset name never holds a dot):

* ``PRESET[:key=value,...]``: a preset with options, keys and rules from
  spec/options.py's optimizer group, e.g. ``sgd:lambda=0.1,scope=all``.
* ``package.module.Class[:key=value,...]``: any importable
  ``torch.optim.Optimizer`` subclass with keyword arguments as Python literals,
  e.g. ``torch.optim.SGD:lr=0.1,momentum=0.9`` or
  ``pytorch_optimizer.Lion:lr=1e-4,betas=(0.9,0.99)``. Global flags that the
  class's signature accepts (``--lr``, ``--weight-decay``) apply; the task's
  protocol does not (the class's own defaults stand).

``sgd`` is the paper's "Superpositional Gradient Descent" (SuperpositionalAdam,
lambda 0.5); classic stochastic gradient descent is ``momentum``; ``superpos`` is
an alias of ``sgd``. Plugins add presets through the ``superpos.presets`` entry
point: an object with ``defaults`` (dict of optimizer option names to values)
and ``build(params, options, seed) -> torch.optim.Optimizer``.

Precedence for presets, lowest first: preset defaults, the task's protocol, the
command's global flags, the arm's own options.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from superpos_cli.errors import BadInput
from superpos_cli.spec.options import option_named
from superpos_cli.spec.registry import load_plugin, plugins

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
PLUGIN_GROUP = "superpos.presets"


@dataclass(frozen=True)
class ArmSpec:
    """One arm of a comparison: a preset (or import path) with fully resolved options
    (keys are the options' ``dest``, e.g. ``unscaled``)."""

    name: str
    preset: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_import_path(self) -> bool:
        return "." in self.preset

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "options": dict(sorted(self.options.items()))}


def preset_names() -> tuple[str, ...]:
    return (*PRESETS, *PRESET_ALIASES, *(n for n in plugins(PLUGIN_GROUP) if n not in PRESETS))


def preset_defaults(preset: str) -> dict[str, Any]:
    if preset in PRESETS:
        return dict(PRESETS[preset])
    return dict(load_plugin(PLUGIN_GROUP, preset).defaults)


def optimizer_option(key: str):
    """The optimizer option spelled ``key`` (name, alias or flag spelling)."""
    option = option_named(key)
    if option is None or option.group != "optimizer":
        from superpos_cli.spec.options import in_group

        names = ", ".join(o.name for o in in_group("optimizer"))
        raise BadInput(f"unknown optimizer option {key.strip()!r}; allowed: {names}")
    return option


def split_items(text: str) -> list[str]:
    """``"a=1,b=(1,2)"`` -> ["a=1", "b=(1,2)"]: commas inside brackets stay."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def _key_values(text: str, rest: str) -> list[tuple[str, str]]:
    pairs = []
    for item in split_items(rest):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise BadInput(f"optimizer option {item!r} in {text!r} must look like key=value")
        pairs.append((key.strip(), value.strip()))
    return pairs


def parse_arm(text: str, overrides: dict[str, Any] | None = None,
              task_defaults: dict[str, Any] | None = None) -> ArmSpec:
    """``"sgd:lambda=0.1"`` -> ArmSpec, applying the precedence of the module docstring.

    ``overrides`` are global values already parsed (option name -> value);
    ``task_defaults`` the task's protocol (option name -> value). Every value is
    checked by its option's rule, even one this preset ignores, so
    ``compare adam --lambda -1`` is an error rather than silently unused.
    """
    head, _, rest = text.strip().partition(":")
    head = head.strip()
    if not head:
        raise BadInput(f"arm {text!r} names no optimizer; give a preset ({', '.join(preset_names())}) "
                       "or an import path such as torch.optim.SGD")
    if "." in head:
        return _import_path_arm(text.strip(), head, rest, overrides or {})
    preset = PRESET_ALIASES.get(head.lower(), head.lower())
    if preset not in PRESETS and preset not in plugins(PLUGIN_GROUP):
        raise BadInput(f"unknown optimizer {head!r}; allowed: {', '.join(preset_names())}, "
                       "or an import path such as torch.optim.SGD")
    options = preset_defaults(preset)
    protocol = {k: v for k, v in (task_defaults or {}).items() if optimizer_option_or_none(k)}
    for layer in (protocol, overrides or {}):
        for key, value in layer.items():
            option = optimizer_option(key)
            value = option.parse(value)
            if option.dest in options:
                options[option.dest] = value
    for key, raw in _key_values(text, rest):
        option = optimizer_option(key)
        value = option.parse(raw)
        if option.dest not in options:
            raise BadInput(f"option {option.name!r} does not apply to optimizer {preset!r} "
                           f"(it takes {', '.join(sorted(options))})")
        options[option.dest] = value
    return ArmSpec(name=text.strip(), preset=preset, options=options)


def optimizer_option_or_none(key: str):
    option = option_named(key)
    return option if option is not None and option.group == "optimizer" else None


def _import_path_arm(text: str, path: str, rest: str, overrides: dict[str, Any]) -> ArmSpec:
    """An arm naming an optimizer class by import path; keyword values are Python
    literals (``ast.literal_eval``: numbers, strings, tuples; ``true``/``false`` too)."""
    kwargs: dict[str, Any] = {}
    for key, raw in _key_values(text, rest):
        if not key.isidentifier():
            raise BadInput(f"keyword {key!r} in {text!r} is not a Python identifier")
        lowered = raw.lower()
        if lowered in ("true", "false"):
            kwargs[key] = lowered == "true"
            continue
        try:
            kwargs[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise BadInput(f"keyword {key}={raw!r} in {text!r} is not a Python literal "
                           "(a number, string, boolean or tuple)") from None
    for name in ("lr", "weight_decay"):
        if name in overrides and name not in kwargs:
            kwargs[name] = overrides[name]
    return ArmSpec(name=text, preset=path, options=kwargs)


def load_import_path_arm(arm: ArmSpec) -> type:
    """The optimizer class of an import-path arm, after checking that it is a
    ``torch.optim.Optimizer`` subclass whose signature takes the arm's keywords
    (imports the class's package, and so torch)."""
    import importlib
    import inspect

    import torch

    module_name, _, class_name = arm.preset.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise BadInput(f"arm {arm.name!r}: cannot import {arm.preset} ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise BadInput(f"arm {arm.name!r}: {arm.preset} is not a torch.optim.Optimizer subclass")
    try:
        inspect.signature(cls).bind([torch.zeros(1)], **arm.options)
    except TypeError as err:
        raise BadInput(f"arm {arm.name!r}: {arm.preset} does not take these keywords ({err})") from None
    return cls
