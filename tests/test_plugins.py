"""Third-party extensions without forking superpos: entry-point plugins and import-path arms.

A plugin package is written into a temporary folder: a module and a
``*.dist-info`` folder whose ``entry_points.txt`` registers a perturbation
(``superpos.perturbations``), a task (``superpos.tasks``) and a preset
(``superpos.presets``). With that folder on ``PYTHONPATH``, the real CLI in a
subprocess must list, check and run them under the same protocol as the
built-ins. An import-path arm (``torch.optim.SGD:lr=0.1,momentum=0.9``) must
take exactly torch's own steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""A tiny superpos plugin: a perturbation, a task and a preset."""
import math

import torch
from torch import nn

from superpos_cli.errors import BadInput


def tanh_perturbation(theta, generator=None):
    """f(theta) = tanh(theta): deterministic."""
    return torch.tanh(theta)


tanh_perturbation.needs_generator = False


class TwoBlobs:
    """Two Gaussian blobs in 4-d, a linear model: 48 training and 32 validation points."""

    name = "blobs"
    target_metric = "val_accuracy"

    def __init__(self, seed, options):
        unknown = sorted(set(options) - {"batch_size"})
        if unknown:
            raise BadInput(f"blobs: unknown option {unknown[0]!r}")
        self.batch_size = options.get("batch_size", 16)
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(80) % 2
        x = torch.randn(80, 4, generator=g) + (2.0 * y - 1.0).unsqueeze(1)
        self.train_x, self.train_y, self.val_x, self.val_y = x[:48], y[:48], x[48:], y[48:]

    def build_model(self):
        return nn.Linear(4, 2)

    def steps_per_epoch(self):
        return math.ceil(len(self.train_x) / self.batch_size)

    def batches(self, generator):
        order = torch.randperm(len(self.train_x), generator=generator)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.train_x[idx], self.train_y[idx]

    def training_loss(self, model, batch):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    def evaluate(self, model):
        with torch.no_grad():
            logits = model(self.val_x)
            return {"val_accuracy": (logits.argmax(1) == self.val_y).float().mean().item(),
                    "val_loss": nn.functional.cross_entropy(logits, self.val_y).item()}

    def describe(self):
        return {"name": self.name, "batch_size": self.batch_size, "n_train": 48, "n_val": 32}


def build_blobs(seed, options):
    return TwoBlobs(seed, options)


def _check_blobs(options):
    TwoBlobs(0, options)


build_blobs.check = _check_blobs


class PlainSGD:
    """Preset ``plainsgd``: torch's SGD, with the spec's lr and momentum keys."""

    defaults = {"lr": 0.05, "momentum": 0.0}

    @staticmethod
    def build(params, options, seed):
        return torch.optim.SGD(params, lr=options["lr"], momentum=options["momentum"])


PLAIN_SGD = PlainSGD()
'''

ENTRY_POINTS = """\
[superpos.perturbations]
tanh = superpos_testplugin:tanh_perturbation

[superpos.tasks]
blobs = superpos_testplugin:build_blobs

[superpos.presets]
plainsgd = superpos_testplugin:PLAIN_SGD
"""

TINY = ["--max-epochs", "1", "--evals-per-epoch", "2", "--json"]  # train keeps no store; compare gets --no-store


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    (root / "superpos_testplugin.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "superpos_testplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: superpos-testplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def _superpos(args: list[str], plugin: Path | None, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SUPERPOS_STORE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    paths = [str(plugin)] if plugin is not None else []
    env["PYTHONPATH"] = os.pathsep.join(paths + [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-m", "superpos_cli", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)


def _json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_plugin_task_preset_and_perturbation_run_under_the_protocol(plugin_path, tmp_path):
    doc = _json(_superpos(["compare", "plainsgd", "sgd:perturb=tanh,lambda=0.1", "adam", "--task", "blobs",
                           "--seeds", "1", "--jobs", "1", "--no-store", *TINY], plugin_path, tmp_path))
    assert doc["task"] == "blobs" and [arm["name"] for arm in doc["arms"]] == [
        "plainsgd", "sgd:perturb=tanh,lambda=0.1", "adam"]
    assert doc["metric"] == "epochs_to_target" and doc["failed"] == []
    by_name = {arm["name"]: arm for arm in doc["arms"]}
    assert by_name["plainsgd"]["config"]["options"] == {"lr": 0.05, "momentum": 0.0}
    assert by_name["sgd:perturb=tanh,lambda=0.1"]["config"]["options"]["perturb"] == "tanh"
    for arm in doc["arms"]:  # the blobs are separable: every arm learns something in one epoch
        assert 0.5 < arm["final_accuracy"]["mean"] <= 1.0


def test_plugin_perturbation_changes_the_steps_and_train_reports_it(plugin_path, tmp_path):
    """The plugin perturbation changes the run against perturb none at lambda 0.5, and
    lambda 0 makes the two identical (the perturbation is all that differs)."""
    arms = ["sgd:perturb=tanh,lambda=0.5", "sgd:perturb=none,lambda=0.5", "sgd:perturb=tanh,lambda=0",
            "sgd:perturb=none,lambda=0"]
    doc = _json(_superpos(["compare", *arms, "--task", "blobs", "--lr", "0.05", "--seeds", "1", "--jobs", "1",
                           "--no-store", *TINY], plugin_path, tmp_path))
    runs = {arm["name"]: (arm["curves"], arm["mean_train_loss"]["mean"]) for arm in doc["arms"]}
    assert runs[arms[0]] != runs[arms[1]]
    assert runs[arms[2]] == runs[arms[3]]
    record = _json(_superpos(["train", "--task", "blobs", "--optim", arms[0], "--lr", "0.05", *TINY],
                             plugin_path, tmp_path))
    assert record["config"]["task"] == "blobs" and record["config"]["optimizer"]["options"]["perturb"] == "tanh"
    assert record["result"]["mean_train_loss"] == pytest.approx(runs[arms[0]][1])  # train and compare agree


def test_plugin_names_are_checked_like_built_ins(plugin_path, tmp_path):
    cases = [
        (["compare", "adam", "--task", "blobz"], "task must be one of textcls, gsm8k, blobs, got 'blobz'"),
        (["compare", "sgd", "--perturb", "tanx"], "perturb must be one of sin, cos, gaussian, uniform, none, tanh"),
        (["compare", "plainsgdx"], "unknown optimizer 'plainsgdx'"),
        (["compare", "plainsgd:lambda=0.1"], "option 'lambda' does not apply to optimizer 'plainsgd'"),
        (["compare", "plainsgd:momentum=-1"], "momentum must be a number >= 0, got '-1'"),
        (["compare", "adam", "--task", "blobs", "--n-train", "5"], "--n-train applies to task textcls, not blobs"),
    ]
    for args, phrase in cases:
        done = _superpos([*args, "--no-store"], plugin_path, tmp_path)
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1 and phrase in lines[0], (args, done.stderr[-2000:])
    # the plugin's own check runs in the parent, before any trial
    done = _superpos(["compare", "adam", "--task", "blobs", "--d-model", "8", "--n-heads", "2", "--no-store"],
                     plugin_path, tmp_path)
    assert done.returncode == 2 and done.stderr.splitlines() == ["error: blobs: unknown option 'd_model'"], done.stderr
    # without the plugin on the path its names are unknown
    done = _superpos(["compare", "adam", "--task", "blobs", "--no-store"], None, tmp_path)
    assert done.returncode == 2 and "task must be one of textcls, gsm8k, got 'blobs'" in done.stderr


# --------------------------------------------------------------------------- import-path arms


def test_import_path_arm_takes_torch_sgds_own_steps(tiny_jsonl):
    """``torch.optim.SGD:lr=0.1,momentum=0.9`` builds torch's SGD with exactly those
    keywords; a few steps equal torch.optim.SGD run by hand."""
    from superpos_cli.optim.presets import build_optimizer
    from superpos_cli.spec.arms import parse_arm

    arm = parse_arm("torch.optim.SGD:lr=0.1,momentum=0.9")
    assert arm.is_import_path and arm.options == {"lr": 0.1, "momentum": 0.9}

    def steps(make) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
        opt = make(model)
        x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        return [p.detach().clone() for p in model.parameters()]

    ours = steps(lambda model: build_optimizer(arm, model))
    theirs = steps(lambda model: torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    assert type(build_optimizer(arm, torch.nn.Linear(2, 2))) is torch.optim.SGD
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_import_path_arm_end_to_end(tiny_jsonl, tmp_path):
    """compare with an import-path arm next to a preset: the record keeps the class and
    its keywords; a global --lr reaches the class only where the arm did not set it."""
    doc = _json(_superpos(["compare", "torch.optim.SGD:lr=0.1,momentum=0.9", "torch.optim.Adam", "--data",
                           str(tiny_jsonl), "--attention", "classical", "--lr", "0.002", "--seeds", "1", "--jobs",
                           "1", "--no-store", *TINY], None, tmp_path))
    sgd, adam = doc["arms"]
    assert sgd["config"]["preset"] == "torch.optim.SGD" and sgd["config"]["options"] == {"lr": 0.1, "momentum": 0.9}
    assert adam["config"]["options"] == {"lr": 0.002}
    for arm in doc["arms"]:
        assert len(arm["epochs_to_target"]["per_seed"]) == 1


@pytest.mark.parametrize("arm, phrase", [
    ("torch.optim.Nope", "cannot import torch.optim.Nope"),
    ("json.JSONDecoder", "is not a torch.optim.Optimizer subclass"),
    ("torch.optim.SGD:lr=0.1,colour=3", "does not take these keywords"),
    ("torch.optim.SGD:lr=fast", "is not a Python literal"),
    ("no_such_package_x.Opt", "cannot import no_such_package_x.Opt"),
])
def test_bad_import_path_arms_are_one_line(arm, phrase, tiny_jsonl):
    from typer.testing import CliRunner

    from superpos_cli.cli.app import app

    result = CliRunner().invoke(app, ["compare", arm, "--data", str(tiny_jsonl), "--no-store"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and phrase in lines[0], result.output[-2000:]
