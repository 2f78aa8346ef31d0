"""The run spec: every option, one name, one meaning, one rule, from every source.

For each option in ``spec.options.OPTIONS`` a good value goes in through
``train``, ``compare`` and ``ablate`` (the real CLI, its run function replaced by
one that keeps the trials it is given) and through a TOML suite, and must reach
the same place of the first trial (task options, arm options, TrainConfig, seeds)
from all four. A bad value must fail from each with the option's own message
(``Option.parse``'s text), exit 2. Then: the spec's name lists equal the
registries of the code that implements them, and every documented default is
the engine's own.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from superpos_cli.cli.app import app
from superpos_cli.errors import BadInput
from superpos_cli.spec import registry
from superpos_cli.spec.arms import PRESETS
from superpos_cli.spec.option import Option
from superpos_cli.spec.options import OPTIONS, TASK_PROTOCOL

runner = CliRunner()

# Values an option needs beside it (option name -> other options' values).
CONTEXT: dict[str, dict[str, Any]] = {
    "noise": {"readout": "prob"},
    "noise_device": {"readout": "prob"},
    "shots": {"readout": "prob"},
}
# Good values the generic rule below cannot guess (a valid combination, a real name).
GOOD: dict[str, Any] = {
    "d_model": 32,  # divisible by the default 4 heads
    "lora_rank": 0,  # > 0 needs --model
    "noise": "depolarizing:0.01",
    "noise_device": "fake_brisbane",
    "device": "cpu",
}
# Options each command does not take (cli/{train,compare,ablate}.py's exclude).
NOT_IN = {"train": {"seeds", "seed_offset"}, "compare": {"seed"}, "ablate": {"seed"}, "suite": {"seed"}}


def _good(option: Option, tmp_path: Path) -> Any:
    if option.name in GOOD:
        return GOOD[option.name]
    if option.kind is Path:
        if option.path_kind == "dir":
            folder = tmp_path / "checkpoint"
            folder.mkdir(exist_ok=True)
            (folder / "config.json").write_text("{}")
            return str(folder)
        data = tmp_path / "good.jsonl"
        data.write_text("".join(json.dumps({"text": f"w{i} {'good' if i % 2 else 'bad'}", "label": i % 2}) + "\n"
                                for i in range(16)))
        return str(data)
    if option.kind is bool:
        return not bool(option.default)
    if option.choices is not None:
        choices = option.allowed_choices()
        return next((c for c in reversed(choices) if c != option.default), choices[0])
    low = option.low if option.low is not None else 0
    if option.kind is int:
        value = int(low) + 1
        return value if option.high is None or value <= option.high else int(low)
    if option.high is not None:
        return (low + option.high) / 2
    return low + 0.25


def _bad(option: Option) -> Any:
    if option.kind is bool:
        return "maybe"
    if option.kind is Path:
        return "/nonexistent/superpos-test-file"
    if option.choices is not None:
        return "no-such-name"
    if option.kind is str:
        return "bogus:0.1" if option.name == "noise" else "no_such_thing_x"
    if option.low is not None:
        return option.low - 1 if option.kind is int else option.low - 0.5
    return option.high + 1


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def _flag(option: Option, value: Any, axis: bool = False) -> list[str]:
    if option.kind is bool and not axis:
        return [option.flag if value else f"--no-{option.flag[2:]}"]
    return [option.flag, _text(value)]


def _context(option: Option) -> dict[str, Any]:
    values = dict(CONTEXT.get(option.name, {}))
    if option.tasks is not None:
        values["task"] = option.tasks[0]
    if option.name == "model":
        values["task"] = "gsm8k"
    return values


def _arm(option: Option) -> str:
    return "momentum" if option.name == "momentum" else "sgd"


class Captured:
    """Replaces the run function of train/compare/ablate; keeps what it was given."""

    def __init__(self, monkeypatch):
        self.spec = None
        # Imported first, so a module that binds run_trial by name at import time
        # (the executor) binds the real one, not this test's stand-in for good.
        import superpos_cli.experiments.executor  # noqa: F401

        monkeypatch.setattr("superpos_cli.experiments.trials.run_trial", self._trial)
        monkeypatch.setattr("superpos_cli.experiments.compare.run_compare", self._sweep)
        monkeypatch.setattr("superpos_cli.experiments.ablate.run_ablate", self._sweep)

    def _trial(self, spec, progress=None):
        self.spec = spec
        return {"status": "ok"}

    def _sweep(self, spec, **kwargs):
        self.spec = spec
        return {"failed": []}

    def first_trial(self):
        return self.spec if not hasattr(self.spec, "trials") else self.spec.trials()[0]


def _invoke(command: str, option: Option, value: Any, tmp_path: Path, axis: bool = False):
    """Run ``command`` with ``option`` = ``value`` (and its context); the CLI result."""
    context = {OPTIONS[k]: v for k, v in _context(option).items()}
    arm = _arm(option)
    if command == "suite":
        lines = ['[suites.s]', 'kind = "compare"', f'arms = ["{arm}"]']
        lines += [f"{o.name} = {_toml(v)}" for o, v in {**context, option: value}.items()]
        path = tmp_path / "suites.toml"
        path.write_text("\n".join(lines) + "\n")
        return runner.invoke(app, ["compare", "--suite", "s", "--suites-file", str(path), "--no-store", "--jobs",
                                   "1", "--json"])
    args = [command] + (["--optim", arm] if command in ("train", "ablate") else [arm])
    if command != "train":
        args += ["--no-store", "--jobs", "1"]
    for other, other_value in context.items():
        args += _flag(other, other_value, axis=command == "ablate" and other.axis)
    args += _flag(option, value, axis=axis)
    if command == "ablate" and not axis and option.name != "grad_accum":
        args += ["--grad-accum", "1"]  # an axis of one value, the default: the cell is the base
    return runner.invoke(app, args + ["--json"])


def _commands(option: Option) -> list[str]:
    return [c for c in ("train", "compare", "ablate", "suite") if option.name not in NOT_IN[c]]


def _where(trial, option: Option):
    """Where ``option`` lands in a trial (or its sweep), by its group."""
    if option.name == "task":
        return trial.task
    if option.group in ("task", "model"):
        return trial.task_options[option.dest]
    if option.group == "optimizer":
        return trial.arm.options[option.dest]
    if option.group == "train":
        return getattr(trial.train, option.dest)
    return trial.seed


def _trial_key(trial) -> tuple:
    train = {k: v for k, v in asdict(trial.train).items() if k != "seed"}
    return repr((trial.task, sorted(trial.task_options.items()), trial.arm.preset, sorted(trial.arm.options.items()),
                 sorted(train.items())))


def _good_or_skip(option: Option, tmp_path: Path) -> Any:
    value = _good(option, tmp_path)
    try:
        return option.parse(_text(value))
    except BadInput as err:  # e.g. a device name whose optional extra is not installed
        pytest.skip(f"no good value of {option.name} on this machine ({err})")


@pytest.mark.parametrize("name", list(OPTIONS))
def test_every_source_accepts_a_good_value_into_the_same_place(name, tmp_path, monkeypatch):
    option = OPTIONS[name]
    value = _good_or_skip(option, tmp_path)
    captured = Captured(monkeypatch)
    trials = {}
    for command in _commands(option):
        captured.spec = None
        result = _invoke(command, option, value, tmp_path, axis=command == "ablate" and option.axis)
        assert result.exit_code == 0, (command, result.output[-1500:])
        if option.name in ("seeds", "seed_offset"):
            count = value if option.name == "seeds" else OPTIONS["seeds"].default
            offset = value if option.name == "seed_offset" else 0
            assert captured.spec.seeds == list(range(offset, offset + count)), command
        trial = captured.first_trial()
        if option.name != "seeds":  # the count of seeds is in no single trial
            assert _where(trial, option) == value, command
        trials[command] = _trial_key(trial)
    first = next(iter(trials.values()))
    assert all(key == first for key in trials.values()), trials  # the same trial from every source


def _core(option: Option, raw: Any) -> str:
    """The option's own message for ``raw``, without the "got ..." part (which shows
    text as text and a TOML value with its type)."""
    with pytest.raises(BadInput) as err:
        option.parse(raw)
    return str(err.value).split(", got ")[0]


@pytest.mark.parametrize("name", list(OPTIONS))
def test_every_source_rejects_a_bad_value_with_the_same_message(name, tmp_path, monkeypatch):
    option = OPTIONS[name]
    bad = _bad(option)
    core = _core(option, _text(bad))
    Captured(monkeypatch)  # nothing may run; if something did, it would pass silently
    sources = []
    for command in _commands(option):
        axis = command == "ablate" and option.axis
        if command in ("train", "compare", "ablate") and option.kind is bool and not axis:
            continue  # a --flag/--no-flag pair: no value to get wrong
        toml_value = 3 if option.kind is bool else bad
        sources.append((command, _invoke(command, option, toml_value if command == "suite" else bad, tmp_path, axis)))
    if option.group == "optimizer":  # an arm's own key=value
        sources.append(("arm", runner.invoke(app, ["compare", f"{_arm(option)}:{option.name}={_text(bad)}",
                                                   "--no-store"])))
    assert sources
    for source, result in sources:
        assert result.exit_code == 2, (source, result.output[-1500:])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (source, result.output)
        assert core in lines[0], (source, lines[0], core)


def test_each_command_has_a_flag_per_option_it_takes():
    import typer

    group = typer.main.get_command(app)
    for command in ("train", "compare", "ablate"):
        flags = {opt for param in group.commands[command].params for opt in param.opts}
        missing = {o.name for o in OPTIONS.values() if o.flag not in flags}
        assert missing == NOT_IN[command], command
    assert set(GOOD) | set(CONTEXT) <= set(OPTIONS)  # the tables above name real options


# --------------------------------------------------------------------------- registries


def test_name_lists_equal_the_implementations_registries():
    from superpos_cli.models import config as model_config
    from superpos_cli.optim import optimizer, perturbations
    from superpos_cli.quantum import circuit
    from superpos_cli.quantum.backends import BACKENDS
    from superpos_cli.tasks import TASKS

    assert registry.BUILTIN_PERTURBATIONS == tuple(perturbations.PERTURBATIONS)
    assert registry.SCOPES == optimizer.SCOPES
    assert registry.ENCODINGS == circuit.ENCODINGS
    assert registry.ENTANGLERS == circuit.ENTANGLERS
    assert registry.READOUTS == circuit.READOUTS
    assert registry.ATTENTION_KINDS == model_config.ATTENTION_KINDS
    assert registry.PHI_INPUTS == model_config.PHI_INPUTS
    assert registry.BUILTIN_TASKS == tuple(TASKS)
    assert set(registry.ATTENTION_BACKENDS) <= set(BACKENDS)


@pytest.mark.parametrize("backend", registry.ATTENTION_BACKENDS)
def test_every_attention_backend_trains_inside_attention(backend, monkeypatch):
    """Forward and backward through quantum attention with ``backend``: a name the
    spec allows for --backend must work where --backend is used (fourier eager:
    its compiled kernels are tests/test_attention.py's business)."""
    import torch

    from superpos_cli.models.attention import QuantumAttention
    from superpos_cli.models.config import AttentionConfig
    from superpos_cli.quantum.backends import fourier

    monkeypatch.setattr(fourier, "COMPILE", False)

    torch.manual_seed(0)
    config = AttentionConfig(kind="quantum", backend=backend, n_qubits=2, depth=1)
    attention = QuantumAttention(16, 2, dropout=0.0, **config.attention_kwargs())
    x = torch.randn(2, 5, 16, requires_grad=True)
    out = attention(x)
    out.sum().backward()
    assert out.shape == (2, 5, 16) and torch.isfinite(x.grad).all()


def test_schedules_and_loss_on_are_the_engines():
    from superpos_cli.engine import loop
    from superpos_cli.tasks import gsm8k

    for schedule in registry.SCHEDULES:
        loop.TrainConfig(schedule=schedule)
    for loss_on in registry.LOSS_ON:
        gsm8k.GSM8KConfig(loss_on=loss_on, model=gsm8k.GPTConfig(attention=_classical()))


def _classical():
    from superpos_cli.models.config import AttentionConfig

    return AttentionConfig(kind="classical")


# --------------------------------------------------------------------------- defaults


def _engine_defaults(task: str) -> dict[str, Any]:
    """dest -> the engine's own default for ``task`` (dataclass defaults, the task's
    protocol on top, as a trial would see them)."""
    from superpos_cli.engine.loop import TrainConfig
    from superpos_cli.models.config import AttentionConfig, ModelConfig
    from superpos_cli.tasks.gsm8k import GPTConfig, GSM8KConfig
    from superpos_cli.tasks.textcls import TextClsConfig

    out: dict[str, Any] = {}
    if task == "textcls":
        for cls in (TextClsConfig, ModelConfig, AttentionConfig):
            out.update({f.name: getattr(cls(), f.name) for f in fields(cls)})
    else:
        attention = AttentionConfig(kind="classical")  # gsm8k_config's default kind
        for obj in (GSM8KConfig(model=GPTConfig(attention=attention)), GPTConfig(attention=attention), attention):
            out.update({f.name: getattr(obj, f.name) for f in fields(obj)})
    out.update({f.name: getattr(TrainConfig(), f.name) for f in fields(TrainConfig)})
    out.update({OPTIONS[k].dest: v for k, v in TASK_PROTOCOL[task].items()})
    return out


def _same(documented: str, value: Any) -> bool:
    if documented == "none":
        return value is None
    if isinstance(value, bool):
        return documented == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(documented) == float(value)
        except ValueError:
            return False
    return documented == str(value)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_documented_default_is_the_engines(name):
    option = OPTIONS[name]
    if option.group == "optimizer":
        preset = "momentum" if name == "momentum" else "sgd"
        if option.default is not None:
            assert PRESETS[preset][option.dest] == option.default
        for task, protocol in TASK_PROTOCOL.items():  # "the task's: 1e-3 textcls, 2e-5 gsm8k"
            found = re.search(rf"(\S+) {task}\b", option.default_text)
            if found:
                assert _same(found.group(1).rstrip(","), protocol.get(name, PRESETS[preset].get(option.dest))), task
        return
    if option.group == "seeds" or option.kind is Path or option.name == "task":
        assert option.default is None or option.default == 0 or option.name in ("seeds", "task")
        return
    for task in ("textcls", "gsm8k"):
        if not option.applies_to(task):
            continue
        engine = _engine_defaults(task)
        if option.default is not None:
            assert option.dest in engine, f"{name}: no engine field {option.dest!r} for {task}"
            assert engine[option.dest] == option.default, (name, task, engine[option.dest])
        found = re.search(rf"(\S+) {task}\b", option.default_text)
        if found:
            assert _same(found.group(1).rstrip(","), engine[option.dest]), (name, task, engine[option.dest])


def test_every_option_says_what_it_accepts_and_its_default():
    for option in OPTIONS.values():
        assert option.help.strip() and option.group in ("task", "model", "optimizer", "train", "seeds")
        assert option.allowed() and option.describe_default()
        if option.default is not None and option.kind is not Path:
            assert option.parse(_text(option.default)) == option.default, option.name
        if option.off is not None:
            assert option.axis and option.parse(_text(option.off)) == option.off, option.name
